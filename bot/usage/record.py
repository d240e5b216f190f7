"""The neutral usage record every source produces before attribution and pricing.

Token semantics: ``input_tokens`` are *uncached* input tokens (billed at the input rate);
``cache_read_tokens`` and ``cache_write_tokens`` are billed at their own rates. Sources
whose input count includes cached tokens (OpenAI) subtract them when they build a record.
No prompt or completion text exists anywhere in this type, by design.

``billing`` carries what changes a record's price beyond those four counts (audio and
image tokens, 1-hour cache writes, web searches, the service tier, the long-context band).
Its token fields are *breakdowns*: they are already counted in the totals above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from hashlib import blake2b


def record_key(source: str, *parts: object) -> bytes:
    """16-byte natural key: the same source + grouping always gives the same key."""
    text = "\x1f".join([source] + ["" if p is None else str(p) for p in parts])
    return blake2b(text.encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Billing:
    audio_input: int = 0  # of input_tokens
    image_input: int = 0  # of input_tokens
    audio_cache_read: int = 0  # of cache_read_tokens
    image_cache_read: int = 0  # of cache_read_tokens
    audio_output: int = 0  # of output_tokens
    image_output: int = 0  # of output_tokens
    cache_write_1h: int = 0  # of cache_write_tokens (the rest are 5-minute writes)
    web_search_requests: int = 0  # billed per search, on top of the tokens
    tier: str | None = None  # "batch", "flex", "priority", ...; None: standard pricing
    long_context: bool = False  # the provider's long-context price band


@dataclass(slots=True)
class RawUsage:
    key: bytes
    source: str
    occurred_at: datetime  # aware UTC; a bucket's start
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    tool_calls: int = 0
    cost_micros: int | None = None  # the provider's own cost at this grain, if given
    category: str | None = None  # explicit category from the source
    user: str | None = None  # email or provider user id
    user_kind: str = "email"  # "email", or the identity kind of a provider user id
    api_key: str | None = None
    project: str | None = None
    workspace: str | None = None
    team: str | None = None  # provider-side team id (LiteLLM)
    tags: tuple[str, ...] = field(default=())
    product: str | None = None  # an agent product (claude_code, codex, ...) when known
    billing: Billing | None = None  # priced dimensions beyond the four token counts


_TEXT_FIELDS = ("source", "provider", "model", "user", "api_key", "project", "workspace",
                "team", "category", "product")


def unstorable_text(r: RawUsage) -> str | None:
    """Why a record's text can't be stored as it is, or None.

    A NUL character (PostgreSQL refuses it in text; SQLite would keep it and compare it
    differently) or a lone surrogate (no database can encode it) in any text field. Checked
    for every record before it is written, so one bad row is refused by itself instead of
    failing its whole batch, the same way on both backends."""
    # One string of every field (None reads "None": harmless here); per-record hot path.
    joined = (f"{r.source}{r.provider}{r.model}{r.user}{r.api_key}{r.project}{r.workspace}"
              f"{r.team}{r.category}{r.product}")
    if "\x00" not in joined and (joined.isascii() or _encodes(joined)):
        return None
    for name in _TEXT_FIELDS:
        value = getattr(r, name)
        if value and "\x00" in value:
            return f"{name} contains a NUL character"
        if value and not _encodes(value):
            return f"{name} contains a lone surrogate (not valid Unicode text)"
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
