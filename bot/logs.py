"""Structured JSON logs with request ids; secrets are redacted before anything is written."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def new_request_id() -> str:
    rid = uuid.uuid4().hex[:16]
    request_id.set(rid)
    return rid


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class RedactSecrets(logging.Filter):
    """Replaces any known secret value in the rendered record with [redacted]."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        blob = text + json.dumps(extras, default=str)
        if any(s in blob for s in self.secrets):
            for s in self.secrets:
                text = text.replace(s, "[redacted]")
            record.msg, record.args = text, None
            for key, value in extras.items():
                rendered = json.dumps(value, default=str)
                if any(s in rendered for s in self.secrets):
                    for s in self.secrets:
                        rendered = rendered.replace(s, "[redacted]")
                    record.__dict__[key] = json.loads(rendered)
        return True


class BadRequestsQuietly(logging.Filter):
    """aiohttp logs a request it cannot parse (a header over 8 KiB, a broken request line)
    as an error with a traceback and the offending bytes. That is the client's mistake:
    one warning line naming the kind of problem, nothing of what was sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "unparseable HTTP request refused: %s", (type(exc).__name__,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_bad_requests() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestsQuietly) for f in logger.filters):
        logger.addFilter(BadRequestsQuietly())


class TextFormatter(logging.Formatter):
    """For people: the message, then the structured fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items()
                  if k not in _STANDARD and not k.startswith("_")}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items() if k != "trace")
        return line


def setup_logging(
    *, level: str = "INFO", json_logs: bool = True, secrets: Iterable[str] = ()
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Kept at WARNING whatever the level asked for: their debug lines carry request and
    # response bodies, SQL parameters (people's words) or tokens; Bolt's own loggers are
    # set the same way in bot/slack/app.py.
    for noisy in (
        "aiohttp.access",
        "aiosqlite",
        "alembic",
        "apscheduler",
        "httpx",
        "slack_bolt",
        "slack_sdk",
        "botbuilder",
        "msal",
        "msrest",
        "sqlalchemy.engine",
        "urllib3",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
