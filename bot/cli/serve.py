"""`serve` and `worker`."""

from __future__ import annotations

import os

import click
from aiohttp import web

from bot.cli.common import console, err_console, runtime
from bot.directory import sync_directory
from bot.runtime import Runtime
from bot.server import build_app, is_loopback


async def _prepare(rt: Runtime) -> None:
    await rt.db.ensure_migrated()
    await sync_directory(rt)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=3978, show_default=True, type=int)
@click.option(
    "--playground/--no-playground",
    default=None,
    help="Serve the local playground (default: only when no Slack or Teams "
    "credentials are configured). Always loopback-only.",
)
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Do not run jobs or send the outbox here (run `tokencoach worker`).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, playground: bool | None, no_scheduler: bool
) -> None:
    """Run the bot: Slack, Teams, the ingest webhook, jobs and the outbox in one process."""
    if playground:
        os.environ["TOKENCOACH_PLAYGROUND"] = "1"  # every process enqueues for it too
    rt = runtime(ctx)
    has_chat = rt.env.slack_enabled or rt.env.teams_enabled
    use_playground = playground if playground is not None else not has_chat
    if use_playground and not is_loopback(host):
        if playground:
            err_console.print(
                "[bold red]The playground only binds to loopback[/]: use "
                "--host 127.0.0.1 (it has no authentication)."
            )
            raise SystemExit(2)
        use_playground = False
    if rt.env.teams_emulator and not rt.env.microsoft_app_id and not is_loopback(host):
        err_console.print(
            "[bold red]Teams emulator mode is unauthenticated[/]: bind to "
            "127.0.0.1 or set MICROSOFT_APP_ID."
        )
        raise SystemExit(2)

    async def make_app() -> web.Application:
        await _prepare(rt)
        app = build_app(rt, playground=use_playground, background=not no_scheduler)
        if rt.env.slack_enabled and rt.env.slack_app_token:
            from bot.slack.socket import start_socket_mode

            await start_socket_mode(app, rt)
        return app

    where = f"http://{host}:{port}"
    parts = [
        p
        for p, on in (
            ("Slack", rt.env.slack_enabled),
            ("Teams", rt.env.teams_enabled),
            ("playground", use_playground),
        )
        if on
    ]
    console.print(
        f"tokencoach serving on {where} ({', '.join(parts) or 'no chat platform'})"
        + (f" — open {where}/ for the playground" if use_playground else "")
    )
    web.run_app(make_app(), host=host, port=port, print=None, access_log=None, shutdown_timeout=10)


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address for /healthz and /metrics."
)
@click.option("--port", default=3979, show_default=True, type=int)
@click.pass_context
def worker(ctx: click.Context, host: str, port: int) -> None:
    """Run only the scheduler and the outbox sender (no chat endpoints)."""
    rt = runtime(ctx)

    async def make_app() -> web.Application:
        await _prepare(rt)
        return build_app(rt, background=True, chat=False)

    console.print(f"tokencoach worker running (health on http://{host}:{port}/healthz)")
    web.run_app(make_app(), host=host, port=port, print=None, access_log=None, shutdown_timeout=10)
