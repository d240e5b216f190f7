"""The runtime: config, environment, database, clock and delivery platforms in one place.

Handlers and jobs receive a Runtime; tests build one against a throwaway database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import AppConfig, load_config
from bot.config.env import Env
from bot.ratelimit import RateLimiter
from bot.store import Database
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.outbox import Deliverer


@dataclass
class Runtime:
    config: AppConfig
    env: Env
    db: Database
    clock: Callable[[], datetime] = utcnow
    # Delivery platforms by name ("slack", "teams", "playground"), filled by the server.
    platforms: dict[str, Deliverer] = field(default_factory=dict)
    # Set by the outbox sender so enqueuers can wake it for prompt delivery.
    outbox_wakeup: Callable[[], None] | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    # Simulated time ("as if it were", `--at`): the clock was set by someone, not kept by
    # the world. Such runs are never "late", their audit rows and claims are marked, and
    # retention keeps to ``real_clock``.
    simulated: bool = False
    real_clock: Callable[[], datetime] | None = None

    def now(self) -> datetime:
        return self.clock()

    def real_now(self) -> datetime:
        """The world's time, even under a simulated clock."""
        return self.real_clock() if self.real_clock else self.clock()

    @property
    def tz(self) -> str:
        return self.config.org.timezone

    @classmethod
    def create(
        cls,
        config: AppConfig | Path | str | None = None,
        env: Env | None = None,
        *,
        pool_size: int = 10,
    ) -> Runtime:
        env = env or Env.from_environ()
        cfg = config if isinstance(config, AppConfig) else load_config(config)
        return cls(config=cfg, env=env, db=Database(env.database_url, pool_size=pool_size))

    def frozen_at(self, at: datetime) -> Runtime:
        """The same runtime with the clock stopped at ``at`` (simulated if this one is)."""
        return replace(self, clock=lambda: at)

    def as_if(self, at: datetime) -> Runtime:
        """The same runtime, simulated: stopped at ``at``, which someone chose."""
        return self.simulated_clock(lambda: at)

    def simulated_clock(self, clock: Callable[[], datetime]) -> Runtime:
        return replace(self, clock=clock, simulated=True, real_clock=self.real_now)

    async def close(self) -> None:
        for platform in self.platforms.values():
            await platform.close()
        await self.db.dispose()
