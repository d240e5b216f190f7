"""a directory version, bumped by triggers, so ingest can cache who owns what

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Every webhook POST used to load the whole directory (people and provider identities) to
attribute its records: about 100 ms at 50,000 people. Now each process keeps the loaded
directory and reloads it only when this counter moved. Triggers bump it, so every writer
(directory sync, discovered API-key owners, an operator's manual SQL) is covered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the attribution depends on: people's email and team, and every identity row.
WATCHED = (("people", "INSERT"), ("people", "DELETE"), ("people", "UPDATE OF email, team_id"),
           ("identities", "INSERT"), ("identities", "DELETE"), ("identities", "UPDATE"))
BUMP = "UPDATE directory_version SET version = version + 1 WHERE id = 1"


def _trigger_name(table: str, event: str) -> str:
    return f"trg_{table}_{event.split()[0].lower()}_directory_version"


def upgrade() -> None:
    op.create_table(
        "directory_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_version")),
    )
    op.execute("INSERT INTO directory_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        # Statement-level: a sync updating 50,000 people bumps it once.
        op.execute("CREATE FUNCTION bump_directory_version() RETURNS trigger "
                   f"LANGUAGE plpgsql AS $$ BEGIN {BUMP}; RETURN NULL; END $$")
        for table, event in WATCHED:
            op.execute(f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version()")
    else:
        # SQLite has row-level triggers only; a bump is a one-row update.
        for table, event in WATCHED:
            op.execute(f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                       f"FOR EACH ROW BEGIN {BUMP}; END")


def downgrade() -> None:
    for table, event in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)}"
                   + (f" ON {table}" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS bump_directory_version()")
    op.drop_table("directory_version")
