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
    """The scheduler tick and the outbox and vendor-ops senders, started and stopped
    with the app."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.sender = OutboxSender(rt)
        self.vendor_ops = VendorOpsSender(rt)
        self._tasks: list[asyncio.Task[None]] = []

    async def tick(self) -> None:
        try:
            await run_due(self.rt)
        except Exception:
            log.exception("scheduler tick failed")

    async def start(self) -> None:
        seconds = self.rt.config.schedules.tick_seconds
        # One tick job: each run claims whatever is due, so missed periods are caught up
        # on start and replicas never double up (the claim rows decide).
        self.scheduler.add_job(
            self.tick,
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
        self._tasks.append(asyncio.create_task(self.tick()))  # catch up right away

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        self.sender.stop()
        self.vendor_ops.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def build_app(
    rt: Runtime, *, playground: bool = False, background: bool = True, chat: bool = True
) -> web.Application:
    max_mb = rt.config.sources.webhook.max_body_mb
    app = web.Application(middlewares=[observe], client_max_size=max_mb * 1024 * 1024)
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
