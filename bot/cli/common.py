"""Shared CLI plumbing: loading the runtime and turning known failures into clear exits."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console

from bot.config import ConfigError
from bot.config.env import Env
from bot.logs import setup_logging
from bot.runtime import Runtime
from bot.store import NotMigratedError
from bot.timeutil import parse_at, parse_since

T = TypeVar("T")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


# Long-running services log JSON at INFO for a log pipeline; a command someone typed
# prints its own readable output and logs only warnings, as text.
SERVICES = ("serve", "worker")


@dataclass
class GlobalOptions:
    config_path: str | None
    log_level: str | None  # None: INFO for services, WARNING for commands
    log_format: str | None  # None: json for services, text for commands


def runtime(ctx: click.Context, *, pool_size: int = 10) -> Runtime:
    opts: GlobalOptions = ctx.find_root().obj
    env = Env.from_environ()
    service = ctx.info_name in SERVICES
    setup_logging(
        level=opts.log_level or ("INFO" if service else "WARNING"),
        json_logs=(opts.log_format or ("json" if service else "text")) == "json",
        secrets=env.secrets(),
    )
    return Runtime.create(opts.config_path, env, pool_size=pool_size)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def at_option(value: str | None, rt: Runtime, *, hint: str = "--at") -> datetime | None:
    """A time given on the command line (ISO, read in the org's zone when naive)."""
    if value is None:
        return None
    try:
        return parse_at(value, rt.tz)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO time like 2026-11-23T09:00", param_hint=hint
        ) from None


def since_option(value: str | None, rt: Runtime, *, hint: str = "--since") -> datetime | None:
    """A start time: ISO (`2026-11-23`, `2026-11-23T09:00`), `today`, `yesterday`, or an age
    like `7d`, `12h`, `2w` (days and weeks count from midnight, org time)."""
    if value is None:
        return None
    try:
        return parse_since(value, rt.now(), rt.tz)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time: use a date (2026-11-23), a time (2026-11-23T09:00), "
            "today, yesterday, or an age like 7d, 12h or 2w",
            param_hint=hint,
        ) from None


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known failures become one clear message and exit code 2, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        err_console.print(
            f"[bold red]Invalid configuration[/] ({len(exc.issues)} problem"
            f"{'s' if len(exc.issues) != 1 else ''}):"
        )
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        sys.exit(2)
    except NotMigratedError as exc:
        err_console.print(f"[bold red]Database not ready:[/] {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError, OperationalError

        if isinstance(exc, OperationalError | DBAPIError | ConnectionError | OSError):
            url = os.environ.get("DATABASE_URL", "the default SQLite file")
            err_console.print(
                f"[bold red]Cannot reach the database[/] ({_safe_url(url)}): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            )
            sys.exit(2)
        raise


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "DATABASE_URL"
