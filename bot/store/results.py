"""Typed access to what a DML statement did."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.engine import CursorResult, Result


def affected(result: Result[Any]) -> int:
    """Rows matched by an INSERT/UPDATE/DELETE (what makes a conditional update a lock)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)
