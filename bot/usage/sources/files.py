"""CSV and JSONL usage records (the file and webhook schema in the README).

Fields: occurred_at (ISO 8601), user (email or provider user id), model, input_tokens,
output_tokens; optional provider, cache_read_tokens, cache_write_tokens, requests,
cost_usd, category, tool_calls, project, api_key, tags, id (idempotency key).

Bad rows are reported with their line number and reason; good rows are kept. Fields
not listed (a stray prompt or completion, say) are ignored: nothing else is stored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bot.money import to_micros
from bot.usage.record import RawUsage, record_key

SOURCE = "import"
MAX_TOKENS = 10**12


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class RowInvalid(ValueError):
    pass


def guess_provider(model: str) -> str:
    m = model.lower()
    if m.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "codex")):
        return "openai"
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith(("gemini", "gemma")):
        return "google"
    if m.startswith("deepseek"):
        return "deepseek"
    if m.startswith(("mistral", "codestral", "ministral")):
        return "mistral"
    return "other"


def _int(d: dict[str, Any], name: str, default: int | None = None) -> int:
    value = d.get(name)
    if value is None or value == "":
        if default is None:
            raise RowInvalid(f"{name} is required")
        return default
    if isinstance(value, bool):
        raise RowInvalid(f"{name} must be a whole number")
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise RowInvalid(f"{name} must be a whole number, got {value!r}") from None
    if not 0 <= number <= MAX_TOKENS:
        raise RowInvalid(f"{name} must be between 0 and {MAX_TOKENS}")
    return number


def _text(d: dict[str, Any], name: str, limit: int = 255) -> str | None:
    value = d.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise RowInvalid(f"{name} must be text")
    text = str(value).strip()
    if len(text) > limit:
        raise RowInvalid(f"{name} is longer than {limit} characters")
    return text or None


def _when(value: Any) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise RowInvalid("occurred_at is required (ISO 8601, e.g. 2026-11-02T14:00:00Z)")
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RowInvalid(f"occurred_at is not an ISO 8601 time: {value!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _cost(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        value = str(value)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise RowInvalid(f"cost_usd must be a decimal number of dollars, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise RowInvalid("cost_usd must be a non-negative number")
    if amount > Decimal(10**9):
        raise RowInvalid("cost_usd is implausibly large")
    return to_micros(amount)


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        if not all(isinstance(t, str) for t in value):
            raise RowInvalid("tags must be a list of strings")
        items = value
    elif isinstance(value, str):
        items = value.replace(";", ",").split(",")
    else:
        raise RowInvalid("tags must be a list or a comma-separated string")
    tags = tuple(t.strip()[:64] for t in items if t.strip())
    if len(tags) > 32:
        raise RowInvalid("at most 32 tags")
    return tags


def record_from_mapping(d: dict[str, Any]) -> RawUsage:
    """One record from a parsed JSON object or CSV row; RowInvalid says what is wrong."""
    if not isinstance(d, dict):
        raise RowInvalid("each record must be a JSON object")
    occurred_at = _when(d.get("occurred_at"))
    model = _text(d, "model", 128)
    if not model:
        raise RowInvalid("model is required")
    user = _text(d, "user", 320)
    api_key = _text(d, "api_key")
    project = _text(d, "project", 128)
    if not (user or api_key or project):
        raise RowInvalid("user is required (or at least api_key or project)")
    provider = (_text(d, "provider", 32) or guess_provider(model)).lower()
    tool_calls = _int(d, "tool_calls", 0)
    tags = _tags(d.get("tags"))
    category = _text(d, "category", 32)
    cost = _cost(d.get("cost_usd"))
    fields = (
        _int(d, "input_tokens"), _int(d, "output_tokens"), _int(d, "cache_read_tokens", 0),
        _int(d, "cache_write_tokens", 0), _int(d, "requests", 1),
    )
    given_id = _text(d, "id", 255)
    key = (
        record_key(SOURCE, "id", given_id)
        if given_id
        else record_key(SOURCE, occurred_at.isoformat(), user, model, provider, *fields,
                        tool_calls, project, api_key, cost, category, ",".join(tags))
    )
    return RawUsage(
        key=key, source=SOURCE, occurred_at=occurred_at, provider=provider, model=model,
        input_tokens=fields[0], output_tokens=fields[1], cache_read_tokens=fields[2],
        cache_write_tokens=fields[3], requests=fields[4], tool_calls=tool_calls,
        cost_micros=cost, category=category, user=user, user_kind="email",
        api_key=api_key, project=project, tags=tags,
    )


Parsed = tuple[int, RawUsage | RowError]


def _from_obj(line: int, obj: Any) -> Parsed:
    try:
        return line, record_from_mapping(obj)
    except RowInvalid as exc:
        return line, RowError(line, str(exc))


def parse_jsonl(lines: Iterable[str], first_line: int = 1) -> Iterator[Parsed]:
    for line_no, line in enumerate(lines, first_line):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_float=Decimal)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield line_no, RowError(line_no, f"not valid JSON: {getattr(exc, 'msg', exc)}")
            continue
        yield _from_obj(line_no, obj)


def parse_csv(text_io: Iterable[str]) -> Iterator[Parsed]:
    reader = csv.reader(text_io)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    if "occurred_at" not in header or "model" not in header:
        yield 1, RowError(1, "the header must name at least occurred_at, user, model, "
                             "input_tokens and output_tokens")
        return
    width = len(header)
    for row in reader:
        line_no = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            yield line_no, RowError(line_no, f"expected {width} columns, found {len(row)}")
            continue
        yield _from_obj(line_no, dict(zip(header, row, strict=True)))


def parse_json_body(body: bytes) -> Iterator[Parsed]:
    """Webhook body: a JSON array of records, or NDJSON (one object per line)."""
    text = body.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text, parse_float=Decimal)
        except (json.JSONDecodeError, RecursionError) as exc:
            line = getattr(exc, "lineno", 1)
            yield line, RowError(line, f"not valid JSON: {getattr(exc, 'msg', exc)}")
            return
        for index, obj in enumerate(items, 1):
            # For an array, "line" is the record's position in the array.
            yield _from_obj(index, obj)
        return
    yield from parse_jsonl(io.StringIO(text))


def parse_path(path: Path) -> Iterator[Parsed]:
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if suffix == ".csv":
            yield from parse_csv(handle)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            if suffix == ".json":
                yield from parse_json_body(handle.read().encode())
            else:
                yield from parse_jsonl(handle)
        else:
            raise ValueError(f"unsupported file type {suffix!r}: use .csv, .jsonl or .json")

