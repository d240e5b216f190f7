"""The HTTP server: one aiohttp app for Slack, Teams, the ingest webhook and the playground.

Each integration mounts its own routes when it is configured. The scheduler and the
outbox sender run in the same process unless disabled (`serve --no-scheduler`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from bot import logs, metrics
from bot.enforcement.ops import VendorOpsSender
from bot.outbox import OutboxSender, refresh_gauges
from bot.platforms import attach_deliverers
from bot.runtime import Runtime
from bot.scheduling.runner import run_due
from bot.store import UNAVAILABLE

log = logging.getLogger("tokencoach.server")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


FORWARDING = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


def _host_of(header: str | None) -> str | None:
    """The host name in a Host header ('127.0.0.1:3978', '[::1]:3978', 'localhost')."""
    if not header:
        return None
    try:
        host = URL.build(scheme="http", authority=header).host
    except (ValueError, TypeError):
        return None
    return host.strip("[]") if host else None


def local_refusal(request: web.Request) -> str | None:
    """Why a request may not reach an unauthenticated local-only endpoint (the playground,
    Teams emulator mode), or None (else a phrase: "the playground " + it): the peer must
    be loopback, no proxy may have forwarded
    it (a reverse proxy on this host connects from loopback too), and the Host header must
    name loopback (so a DNS-rebinding page in a browser cannot reach it)."""
    if not is_loopback(request.remote or ""):
        return "only answers this computer"
    if any(h in request.headers for h in FORWARDING):
        return "does not answer through a proxy"
    host = _host_of(request.host)
    if not host or not is_loopback(host):
        return "only answers http://127.0.0.1 or http://localhost (the Host header)"
    return None


def is_loopback_url(url: str) -> bool:
    """An http(s) URL whose host is loopback (by address or 'localhost')."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return False
    return parsed.scheme in ("http", "https") and is_loopback((parsed.host or "").strip("[]"))


class BodyTooLarge(web.HTTPRequestEntityTooLarge):
    def __init__(self, limit: int, actual: int | None = None):
        super().__init__(max_size=limit, actual_size=actual or limit + 1,
                         text=f"request body over {limit:,} bytes")


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refused (413) past ``limit`` bytes before more is read: from the
    Content-Length header when there is one, else as the chunks arrive."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit, request.content_length)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, size)
        chunks.append(chunk)
    return b"".join(chunks)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, metrics, and a plain JSON answer instead of a stack trace."""
    rid = request.headers.get("X-Request-Id") or logs.new_request_id()
    logs.request_id.set(rid)
    route = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else "unmatched"
    )
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except UNAVAILABLE as exc:
        # The database is unreachable or overloaded: fail fast with a retryable answer.
        log.warning("dependency unavailable", extra={"route": route, "error": repr(exc)})
        status = 503
        return web.json_response(
            {"error": "temporarily unavailable, please try again in a moment", "request_id": rid},
            status=503,
            headers={"Retry-After": "5"},
        )
    except Exception:
        log.exception("unhandled error", extra={"route": route})
        return web.json_response({"error": "internal error", "request_id": rid}, status=500)
    finally:
        metrics.HTTP_REQUESTS.labels(route, str(status)).inc()
        if route != "/metrics":
            log.debug(
                "request",
                extra={
                    "route": route,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )


async def healthz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        await asyncio.wait_for(rt.db.ping(), timeout=3)
    except Exception as exc:
        return web.json_response(
            {"status": "error", "db": "unreachable", "detail": type(exc).__name__}, status=503
        )
    return web.json_response(
        {"status": "ok", "db": "ok", "dialect": rt.db.dialect, "platforms": sorted(rt.platforms)}
    )


async def metrics_view(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        await refresh_gauges(rt)
        from bot.usage.lag import refresh_lag

        await refresh_lag(rt)
    except Exception:  # metrics must answer even when the database does not
        log.warning("could not refresh database gauges", exc_info=True)
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class Background:
    """The scheduler tick and the outbox and vendor-ops senders, started and stopped with the app.

    Stopping is graceful: no new tick starts, the running tick ends after its current job,
    the senders after their current round; only what is still running after GRACE_SECONDS
    is cancelled. A task cancelled in the middle of a database call is how a shutdown
    right after start once logged a rolled-back connection as an error (issue #22).
    """

    GRACE_SECONDS = 8.0

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.sender = OutboxSender(rt)
        self.vendor_ops = VendorOpsSender(rt)
        self._tasks: list[asyncio.Task[None]] = []
        self._tick: asyncio.Task[None] | None = None
        self._stopping = False

    async def tick(self) -> None:
        try:
            await run_due(self.rt, stopping=lambda: self._stopping)
        except Exception:
            log.exception("scheduler tick failed")

    async def _due(self) -> None:
        """The scheduler's job: start a tick unless one runs (the scheduler cancels its
        own jobs when it shuts down; a tick is ours to wait for)."""
        if self._stopping or (self._tick is not None and not self._tick.done()):
            return
        self._tick = asyncio.create_task(self.tick())
        self._tasks = [t for t in self._tasks if not t.done()] + [self._tick]

    async def start(self) -> None:
        seconds = self.rt.config.schedules.tick_seconds
        # One tick job: each run claims whatever is due, so missed periods are caught up
        # on start and replicas never double up (the claim rows decide).
        self.scheduler.add_job(
            self._due,
            "interval",
            seconds=seconds,
            id="tick",
            coalesce=True,
            max_instances=1,
            next_run_time=None,
        )
        self.scheduler.start()
        self._tasks.append(asyncio.create_task(self.sender.run()))
        self._tasks.append(asyncio.create_task(self.vendor_ops.run()))
        await self._due()  # catch up right away

    async def stop(self) -> None:
        self._stopping = True
        self.scheduler.shutdown(wait=False)
        self.sender.stop()
        self.vendor_ops.stop()
        running = [t for t in self._tasks if not t.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=self.GRACE_SECONDS)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def build_app(
    rt: Runtime, *, playground: bool = False, background: bool = True, chat: bool = True
) -> web.Application:
    max_mb = rt.config.sources.webhook.max_body_mb
    # The webhook's limit; /slack/events and /api/messages read theirs (read_limited).
    app = web.Application(middlewares=[observe], client_max_size=max_mb * 1024 * 1024)
    logs.quiet_bad_requests()
    app[RUNTIME] = rt
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    attach_deliverers(rt)

    from bot import charts_http, links

    charts_http.mount(app, rt)
    links.mount(app, rt)
    if chat and rt.env.slack_enabled:
        from bot.slack.routes import mount as mount_slack

        mount_slack(app, rt)
    if chat and rt.env.teams_enabled:
        from bot.teams.routes import mount as mount_teams

        mount_teams(app, rt)
    if chat and rt.config.sources.webhook.enabled:
        from bot.usage.webhook import mount as mount_webhook

        mount_webhook(app, rt)
    if playground:
        from bot.playground.routes import mount as mount_playground

        mount_playground(app, rt)

    bg = Background(rt) if background else None

    async def on_startup(_app: web.Application) -> None:
        if bg:
            await bg.start()

    async def on_cleanup(_app: web.Application) -> None:
        if bg:
            await bg.stop()
        await rt.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
