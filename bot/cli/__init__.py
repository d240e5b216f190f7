"""The `tokencoach` command line (also `python -m bot`)."""

from __future__ import annotations

import click

from bot.cli.common import GlobalOptions, cli_errors
from bot.cli.data import balance, db, demo, ingest
from bot.cli.limits import limits
from bot.cli.ops import audit, check, digest, jobs
from bot.cli.reports import audit_usage
from bot.cli.serve import serve, worker
from bot.cli.teams import teams_package


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="app.yaml to use (default: $TOKENCOACH_CONFIG or ./app.yaml).",
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Default: INFO for serve and worker, WARNING for other commands.",
)
@click.option(
    "--log-format",
    default=None,
    type=click.Choice(["json", "text"]),
    help="Default: json for serve and worker, text for other commands.",
)
@click.version_option(package_name="tokencoach")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, log_level: str | None, log_format: str | None
) -> None:
    """tokencoach: token balances, sandbox budgets, nudges and digests in Slack and Teams."""
    ctx.obj = GlobalOptions(
        config_path=config_path,
        log_level=log_level.upper() if log_level else None,
        log_format=log_format,
    )


for command in (serve, worker, demo, db, ingest, balance, digest, jobs, check, audit, audit_usage,
                limits):
    cli.add_command(command)
cli.add_command(teams_package)


def main() -> None:
    with cli_errors():
        cli(prog_name="tokencoach")
