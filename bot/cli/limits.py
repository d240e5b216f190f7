"""`limits sync|show|ops|retry`: the limits vendors enforce, and tokencoach's writes."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from bot.cli.common import console, err_console, run, runtime
from bot.directory import person_by_email, sync_directory
from bot.money import fmt_usd


@click.group()
def limits() -> None:
    """Vendor-enforced limits (Claude Enterprise, LiteLLM): read, show, and the write queue."""


@limits.command("sync")
@click.pass_context
def limits_sync(ctx: click.Context) -> None:
    """Read every enabled vendor's limits now, repair drift, and send queued writes."""
    from bot.enforcement import litellm, ops, sync
    from bot.enforcement.http import VendorError

    rt = runtime(ctx)

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            await sync_directory(rt)  # members are matched to the directory's people
            cfg = rt.config.enforcement
            if not (cfg.claude_enterprise.enabled or cfg.litellm.enabled):
                err_console.print("No vendor is enabled: set enforcement.claude_enterprise."
                                  "enabled or enforcement.litellm.enabled in app.yaml.")
                return 2
            code = 0
            for name, step in (("claude_enterprise", sync.sync_claude),
                               ("litellm", litellm.push_caps)):
                if not getattr(cfg, name).enabled:
                    continue
                try:
                    console.print(f"{name}: {await step(rt)}")
                except VendorError as exc:
                    err_console.print(f"[bold red]{name}:[/] {escape(str(exc))}")
                    code = 1
            console.print(f"vendor ops: {(await ops.drain(rt)).as_dict() or 'none due'}")
            return code
        finally:
            await rt.close()

    sys.exit(run(go()))


@limits.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def limits_show(ctx: click.Context, email: str, as_json: bool) -> None:
    """Print EMAIL's vendor-enforced limits as last read."""
    from bot.enforcement.views import enforced_limits_for

    rt = runtime(ctx)

    async def go() -> int:
        try:
            async with rt.db.reader() as s:
                person = await person_by_email(s, email.strip().lower())
                if person is None:
                    err_console.print(f"[bold red]No person {escape(email)!r}[/] in the "
                                      "directory.")
                    return 2
                views = (await enforced_limits_for(s, [person.id]))[person.id]
        finally:
            await rt.close()
        if as_json:
            click.echo(json.dumps({"email": person.email,
                                   "enforced_limits": [v.as_json() for v in views]}, indent=2))
            return 0
        if not views:
            console.print(f"{person.email}: no vendor-enforced limit known (run "
                          "`tokencoach limits sync`).")
            return 0
        table = Table("vendor", "period", "limit", "used", "left", "from", "as of")
        for v in views:
            table.add_row(
                v.vendor_name, v.period,
                "no limit" if v.amount_micros is None else fmt_usd(v.amount_micros),
                fmt_usd(v.spent_micros),
                "" if v.remaining_micros is None else fmt_usd(v.remaining_micros),
                " ".join(x for x in (v.inherited_from, v.source_detail) if x),
                v.as_of.strftime("%Y-%m-%d %H:%M UTC"))
        console.print(table)
        return 0

    sys.exit(run(go()))


@limits.command("ops")
@click.option("--status", help="Only ops in this status (pending, running, done, dry_run, "
              "skipped, failed).")
@click.option("--limit", type=int, default=50, show_default=True)
@click.pass_context
def limits_ops(ctx: click.Context, status: str | None, limit: int) -> None:
    """List the queue of writes to vendors, newest first."""
    from bot.store.tables import VendorOp

    rt = runtime(ctx)

    async def go() -> int:
        try:
            async with rt.db.reader() as s:
                q = select(VendorOp).order_by(VendorOp.id.desc()).limit(limit)
                if status:
                    q = q.where(VendorOp.status == status)
                rows = (await s.scalars(q)).all()
        finally:
            await rt.close()
        table = Table("id", "vendor", "kind", "subject", "by", "status", "tries", "error")
        for op in rows:
            table.add_row(str(op.id), op.vendor, op.kind, op.subject or "", op.actor,
                          op.status, str(op.attempts), escape((op.last_error or "")[:80]))
        console.print(table if rows else "no vendor ops")
        return 0

    sys.exit(run(go()))


@limits.command("retry")
@click.argument("op_id", type=int)
@click.pass_context
def limits_retry(ctx: click.Context, op_id: int) -> None:
    """Queue failed vendor op OP_ID again (once its cause is fixed)."""
    from bot.enforcement import ops

    rt = runtime(ctx)

    async def go() -> int:
        try:
            if not await ops.retry(rt, op_id):
                err_console.print(f"[bold red]No failed vendor op #{op_id}.[/]")
                return 2
            stats = await ops.drain(rt)
        finally:
            await rt.close()
        console.print(f"vendor op #{op_id} queued again; {stats.as_dict() or 'nothing ran'}")
        return 0

    sys.exit(run(go()))
