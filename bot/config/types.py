"""Small value types shared by the config models: money, durations, cron, time zones."""

from __future__ import annotations

import re
from datetime import time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _money(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected an amount in dollars, like 1500 or 12.50")
    if isinstance(value, float):
        value = repr(value)  # YAML gives floats; go through text so 12.1 stays 12.1
    try:
        amount = Decimal(str(value).replace(",", "").lstrip("$").strip())
    except InvalidOperation:
        raise ValueError(
            f"expected an amount in dollars, like 1500 or 12.50, got {value!r}"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("amount must be a non-negative number of dollars")
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValueError("amount has more precision than a micro-dollar")
    return amount


def _price(value: Any) -> Decimal:
    # Prices per 1M tokens may carry more digits than money does.
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"expected a price in dollars per 1M tokens, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("price must be a non-negative number")
    return amount


def _factor(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a multiplier, like 0.5 or 2")
    if isinstance(value, float):
        value = repr(value)
    try:
        factor = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"expected a multiplier, like 0.5 or 2, got {value!r}") from None
    if not factor.is_finite() or factor < 0:
        raise ValueError("a multiplier must be a non-negative number")
    return factor


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 30m, 24h, 7d or 2w, got {value!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _fmt_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)"
        ) from None
    return str(value)


def _cron(value: Any) -> str:
    text = str(value).strip()
    try:
        CronTrigger.from_crontab(text)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {text!r}: {exc}") from None
    return text


def _email(value: Any) -> str:
    text = str(value).strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        raise ValueError(f"not an email address: {value!r}")
    return text


def _clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int):  # YAML 1.1 reads 09:00 as sexagesimal 540
        return time(value // 60, value % 60)
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"expected a time of day like 09:00, got {value!r}") from None


def _slug(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", text):
        raise ValueError(
            f"{value!r} is not a valid key: use lowercase letters, digits, '-' or '_' (max 63)"
        )
    return text


Money = Annotated[Decimal, BeforeValidator(_money), PlainSerializer(str, return_type=str)]
PricePerMTok = Annotated[Decimal, BeforeValidator(_price), PlainSerializer(str, return_type=str)]
Factor = Annotated[Decimal, BeforeValidator(_factor), PlainSerializer(str, return_type=str)]
Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(_fmt_duration, return_type=str)
]
TimeZoneName = Annotated[str, BeforeValidator(_timezone)]
Cron = Annotated[str, BeforeValidator(_cron)]
Email = Annotated[str, BeforeValidator(_email)]
ClockTime = Annotated[time, BeforeValidator(_clock)]
Slug = Annotated[str, BeforeValidator(_slug)]
