"""Persistence: tables, migrations, engines."""

from bot.store.database import UNAVAILABLE, Database, NotMigratedError

__all__ = ["UNAVAILABLE", "Database", "NotMigratedError"]
