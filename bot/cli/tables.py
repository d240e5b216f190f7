"""Tables that stay readable in an 80-column terminal: text folds, numbers never shrink."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Column


def text(header: str, **kw: object) -> Column:
    """A text column: wraps at spaces, folds long words (emails), never cuts."""
    return Column(header, overflow="fold", **kw)  # type: ignore[arg-type]


def fixed(header: str, values: Sequence[str], *, right: bool = False) -> Column:
    """A column of numbers, times or keys: kept on one line, as wide as its widest cell."""
    width = max([*(len(line) for line in header.split("\n")), *(len(v) for v in values)])
    return Column(header, no_wrap=True, min_width=width, justify="right" if right else "left")
