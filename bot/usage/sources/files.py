"""CSV and JSONL usage records (the file and webhook schema in the README).

Fields: occurred_at (ISO 8601), user (email or provider user id), model, input_tokens,
output_tokens; optional provider, cache_read_tokens, cache_write_tokens, requests,
cost_usd, category, tool_calls, project, api_key, tags, id (idempotency key).

Bad rows are reported with their line number and reason; good rows are kept. Fields
not listed (a stray prompt or completion, say) are ignored: nothing else is stored.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from hashlib import blake2b
from pathlib import Path
from typing import Any

from bot.money import to_micros
from bot.usage.record import RawUsage, record_key

SOURCE = "import"
MAX_TOKENS = 10**12
# Times outside these can't be a record of AI use, and near year 1 or 9999 they can't even
# be converted between time zones (OverflowError).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class RowInvalid(ValueError):
    pass


@lru_cache(maxsize=4096)
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
    try:
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        at = EARLIEST - timedelta(days=1)  # out of range either way: said below
    if not EARLIEST <= at < LATEST:
        raise RowInvalid(f"occurred_at {value.strip()[:40]!r} is out of range: use a time "
                         f"from {EARLIEST.year} to {LATEST.year - 1}")
    return at


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
    return _record(occurred_at, occurred_at.isoformat(), model, user, api_key, project,
                   provider, tool_calls, tags, category, cost, fields, _text(d, "id", 255))


def _record(occurred_at: datetime, iso: str, model: str, user: str | None,
            api_key: str | None, project: str | None, provider: str, tool_calls: int,
            tags: tuple[str, ...], category: str | None, cost: int | None,
            fields: tuple[int, int, int, int, int], given_id: str | None) -> RawUsage:
    """The record and its natural key from validated values (both parsing paths end here).

    ``iso`` is ``occurred_at.isoformat()``. Without an id, the key is
    record_key(SOURCE, iso, user, model, provider, *fields, tool_calls, project, api_key,
    cost, category, ",".join(tags)); its text is built here in one f-string (the same
    text, so keys never change: re-ingesting a file must find its records again).
    """
    if given_id:
        key = record_key(SOURCE, "id", given_id)
    else:
        n_in, n_out, n_cr, n_cw, n_req = fields
        text = (f"{SOURCE}\x1f{iso}\x1f{user or ''}\x1f{model}\x1f{provider}\x1f{n_in}\x1f"
                f"{n_out}\x1f{n_cr}\x1f{n_cw}\x1f{n_req}\x1f{tool_calls}\x1f{project or ''}\x1f"
                f"{api_key or ''}\x1f{'' if cost is None else cost}\x1f{category or ''}\x1f"
                f"{','.join(tags)}")
        key = blake2b(text.encode(), digest_size=16).digest()
    # Positional, in RawUsage's field order (this runs once per record of a backfill).
    return RawUsage(key, SOURCE, occurred_at, provider, model, fields[0], fields[1],
                    fields[2], fields[3], fields[4], tool_calls, cost, category, user, "email",
                    api_key, project, None, None, tags)


class _Unusual(Exception):
    """A value the fast readers do not handle: read the record again the general way."""


# The fast readers below give exactly what record_from_mapping gives, for the shapes
# nearly every row of a large export or webhook body has (plain integers, dollars with up
# to six decimals, ISO times, short texts). Anything else raises _Unusual (or ValueError)
# and the record is read again by record_from_mapping, which accepts the same values and
# names the problem. A backfill has millions of rows: this is most of its parsing time.

# "12", "0.0123": at most six decimals are exact micro-dollars without rounding.
_PLAIN_USD = re.compile(r"([0-9]{1,10})(?:\.([0-9]{1,6}))?")
# A time whose isoformat() is itself with "+00:00" for "Z".
_CANONICAL_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _fast_text(value: str, limit: int) -> str | None:
    value = value.strip()
    if len(value) > limit:
        raise _Unusual
    return value or None


def _fast_number(value: Any, default: int) -> int:
    """A token count from a CSV cell (str) or a JSON value (int); default < 0: required."""
    if value is None or value == "":
        if default < 0:
            raise _Unusual
        return default
    cls = type(value)
    if cls is str:
        n = int(value)  # ValueError: not a whole number -> the general path says so
    elif cls is int:
        n = value
    else:
        raise _Unusual
    if not 0 <= n <= MAX_TOKENS:
        raise _Unusual
    return n


def _fast_dollars(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise _Unusual
    m = _PLAIN_USD.fullmatch(value)
    if m is None:
        raise _Unusual
    whole, decimals = m.groups()
    micros = int(whole) * 1_000_000 + (int(decimals.ljust(6, "0")) if decimals else 0)
    if micros > 10**15:  # over $1e9: the general path rejects it
        raise _Unusual
    return micros


class _Times:
    """Parsed times and their isoformat(), cached (hourly buckets repeat their times)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[datetime, str]] = {}

    def __call__(self, value: Any) -> tuple[datetime, str]:
        hit = self._seen.get(value) if type(value) is str else None
        if hit is None:
            if type(value) is not str:
                raise _Unusual
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            try:
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
            except OverflowError:
                raise _Unusual from None
            if not EARLIEST <= at < LATEST:
                raise _Unusual  # the general path names the problem
            iso = (value[:19] + "+00:00" if _CANONICAL_UTC.fullmatch(value)
                   else at.isoformat())
            if len(self._seen) > 10_000:
                self._seen.clear()
            hit = self._seen[value] = (at, iso)
        return hit


def _csv_reader(header: list[str]) -> Callable[[list[str]], RawUsage]:
    """The fast reader for CSV rows of ``header``. The row gets one empty cell appended,
    where absent columns point."""
    where = {name: i for i, name in enumerate(header)}
    (i_at, i_model, i_user, i_key, i_project, i_provider, i_tools, i_tags, i_category,
     i_cost, i_in, i_out, i_cr, i_cw, i_req, i_id) = (
        where.get(n, -1) for n in ("occurred_at", "model", "user", "api_key", "project",
                                   "provider", "tool_calls", "tags", "category", "cost_usd",
                                   "input_tokens", "output_tokens", "cache_read_tokens",
                                   "cache_write_tokens", "requests", "id"))
    text, number, when = _fast_text, _fast_number, _Times()

    def read(row: list[str]) -> RawUsage:
        row.append("")
        model = text(v, 128) if (v := row[i_model]) else None
        if not model:
            raise _Unusual
        user = text(v, 320) if (v := row[i_user]) else None
        api_key = text(v, 255) if (v := row[i_key]) else None
        project = text(v, 128) if (v := row[i_project]) else None
        if not (user or api_key or project):
            raise _Unusual
        provider = (text(v, 32) if (v := row[i_provider]) else None) or guess_provider(model)
        fields = (number(row[i_in], -1), number(row[i_out], -1), number(row[i_cr], 0),
                  number(row[i_cw], 0), number(row[i_req], 1))
        at, iso = when(row[i_at])
        return _record(at, iso, model, user, api_key, project, provider.lower(),
                       number(row[i_tools], 0), _tags(v) if (v := row[i_tags]) else (),
                       text(v, 32) if (v := row[i_category]) else None,
                       _fast_dollars(row[i_cost]), fields,
                       text(v, 255) if (v := row[i_id]) else None)

    return read


def _json_reader() -> Callable[[dict[str, Any]], RawUsage]:
    """The fast reader for parsed JSON objects (texts as str, counts as int)."""
    number, when = _fast_number, _Times()

    def text(d: dict[str, Any], name: str, limit: int) -> str | None:
        value = d.get(name)
        if value is None or value == "":
            return None
        if type(value) is not str:
            raise _Unusual
        return _fast_text(value, limit)

    def read(d: dict[str, Any]) -> RawUsage:
        get = d.get
        model = text(d, "model", 128)
        if not model:
            raise _Unusual
        user = text(d, "user", 320)
        api_key = text(d, "api_key", 255)
        project = text(d, "project", 128)
        if not (user or api_key or project):
            raise _Unusual
        provider = text(d, "provider", 32) or guess_provider(model)
        fields = (number(get("input_tokens"), -1), number(get("output_tokens"), -1),
                  number(get("cache_read_tokens"), 0), number(get("cache_write_tokens"), 0),
                  number(get("requests"), 1))
        at, iso = when(get("occurred_at"))
        tags = get("tags")
        return _record(at, iso, model, user, api_key, project, provider.lower(),
                       number(get("tool_calls"), 0), _tags(tags) if tags else (),
                       text(d, "category", 32), _fast_dollars(get("cost_usd")), fields,
                       text(d, "id", 255))

    return read


Parsed = tuple[int, RawUsage | RowError]


def _from_obj(line: int, obj: Any, fast: Callable[[dict[str, Any]], RawUsage] | None = None
              ) -> Parsed:
    if fast is not None and type(obj) is dict:
        try:
            return line, fast(obj)
        except (_Unusual, ValueError, RowInvalid):
            pass  # read it again the general way, which names the problem
    try:
        return line, record_from_mapping(obj)
    except RowInvalid as exc:
        return line, RowError(line, str(exc))


# One decoder for every line (json.loads with an argument builds a new one per call).
_DECODER = json.JSONDecoder(parse_float=Decimal)


def parse_jsonl(lines: Iterable[str], first_line: int = 1) -> Iterator[Parsed]:
    fast = _json_reader()
    decode = _DECODER.decode
    for line_no, line in enumerate(lines, first_line):
        if not line.strip():
            continue
        try:
            # json.loads alone names a byte-order mark as such.
            obj = json.loads(line, parse_float=Decimal) if line[0] == "\ufeff" else decode(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield line_no, RowError(line_no, f"not valid JSON: {getattr(exc, 'msg', exc)}")
            continue
        yield _from_obj(line_no, obj, fast)


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
    fast = _csv_reader(header)
    for row in reader:
        line_no = reader.line_num
        if len(row) != width:
            if not any(cell.strip() for cell in row):
                continue
            yield line_no, RowError(line_no, f"expected {width} columns, found {len(row)}")
            continue
        try:
            record = fast(row)
        except (_Unusual, ValueError, RowInvalid):
            del row[width:]  # the cell the fast reader appended
            if not any(cell.strip() for cell in row):
                continue
            yield _from_obj(line_no, dict(zip(header, row, strict=True)))
            continue
        yield line_no, record


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
        fast = _json_reader()
        for index, obj in enumerate(items, 1):
            # For an array, "line" is the record's position in the array.
            yield _from_obj(index, obj, fast)
        return
    yield from parse_jsonl(io.StringIO(text))


def utf8_problem(path: Path, chunk: int = 1 << 20) -> str | None:
    """Why ``path`` is not UTF-8 text (with the line), or None. Checked before anything is
    written: a bad byte found mid-way would leave the batches before it stored."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line = lines + block.count(b"\n", 0, exc.start)
                return f"line {line} is not UTF-8 text: save the file as UTF-8"
            lines += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return f"line {lines} ends in the middle of a UTF-8 character"
    return None


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

