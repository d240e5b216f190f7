"""POST /ingest/usage: records pushed by a gateway or a script.

Bearer token from the env var named in app.yaml (default TOKENCOACH_INGEST_TOKEN),
compared in constant time. Body: a JSON array or NDJSON. Answers the counts; bad rows
are listed with their line (or array position) and reason, good rows are kept.

On SQLite, bodies are ingested one at a time, in arrival order: the database has one
writer anyway, and parsing one body while another is written in the driver's thread makes
both slower (they contend for the GIL row by row), while a body waiting here costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac

from aiohttp import web

from bot.runtime import Runtime
from bot.usage.ingest import ingest_parsed
from bot.usage.sources.files import parse_json_body

MAX_ERRORS_IN_RESPONSE = 100


def _authorized(rt: Runtime, header: str | None) -> bool:
    token = rt.env.secret(rt.config.sources.webhook.token_env)
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def mount(app: web.Application, rt: Runtime) -> None:
    one_at_a_time = asyncio.Lock() if rt.db.is_sqlite else contextlib.nullcontext()

    async def ingest(request: web.Request) -> web.Response:
        if not _authorized(rt, request.headers.get("Authorization")):
            return web.json_response(
                {"error": "missing or wrong bearer token"}, status=401,
                headers={"WWW-Authenticate": 'Bearer realm="tokencoach-ingest"'})
        body = await request.read()
        if not body.strip():
            return web.json_response({"error": "empty body: send a JSON array or NDJSON"},
                                     status=400)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return web.json_response({"error": "body must be UTF-8 JSON"}, status=400)
        async with one_at_a_time:
            stats, errors = await ingest_parsed(rt, parse_json_body(body))
        payload = {
            **stats.as_dict(),
            "errors": [{"line": e.line, "message": e.message}
                       for e in errors[:MAX_ERRORS_IN_RESPONSE]],
            # Kept, but doubtful (an implausible cost): named so the sender can check.
            "warnings": [{"line": n.line, "message": n.message}
                         for n in stats.notes[:MAX_ERRORS_IN_RESPONSE]],
        }
        accepted = stats.new + stats.replaced + stats.unchanged
        status = 200 if accepted or not stats.rejected else 422
        return web.json_response(payload, status=status)

    app.router.add_post("/ingest/usage", ingest)
