"""`teams-package`: the zip to upload in Teams (Apps → Manage your apps → Upload)."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.common import console, err_console, runtime


@click.command("teams-package")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tokencoach-teams.zip"),
    show_default=True,
    help="Where to write the zip.",
)
@click.option(
    "--source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Folder with manifest.json and the icons (default: teams/).",
)
@click.pass_context
def teams_package(ctx: click.Context, out_path: Path, source: Path | None) -> None:
    """Build the Teams app package with MICROSOFT_APP_ID filled in."""
    from bot.teams.package import SOURCE, PackageError, build

    rt = runtime(ctx)
    app_id = rt.env.microsoft_app_id
    if not app_id:
        err_console.print("[bold red]Set MICROSOFT_APP_ID[/] (the bot's Microsoft Entra app id)")
        raise SystemExit(2)
    try:
        built = build(
            app_id, out_path, source=source or SOURCE, public_url=rt.config.server.public_url
        )
    except PackageError as exc:
        err_console.print(f"[bold red]Cannot build the package:[/] {exc}")
        raise SystemExit(2) from None
    console.print(
        f"wrote {built} (bot {app_id}); upload it in Teams: Apps → Manage your apps → Upload an app"
    )
