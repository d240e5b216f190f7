"""Persistence: tables, migrations, engines."""

from bot.store.database import Database, NotMigratedError

__all__ = ["Database", "NotMigratedError"]
