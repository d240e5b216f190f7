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
from bot.timeutil import parse_at

T = TypeVar("T")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class GlobalOptions:
    config_path: str | None
    log_level: str
    json_logs: bool


def runtime(ctx: click.Context, *, pool_size: int = 10) -> Runtime:
    opts: GlobalOptions = ctx.find_root().obj
    env = Env.from_environ()
    setup_logging(level=opts.log_level, json_logs=opts.json_logs, secrets=env.secrets())
    return Runtime.create(opts.config_path, env, pool_size=pool_size)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def at_option(value: str | None, rt: Runtime) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_at(value, rt.tz)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO time like 2026-11-23T09:00", param_hint="--at"
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
