"""Loopback fakes of the OpenAI, Anthropic and LiteLLM usage/cost APIs.

Each fake is an aiohttp app (run it with ``tests.helpers.server.serving``) that answers
with the documented payload shapes (each section below cites its spec or page), checks
auth headers and query parameters the way the real API does (400 on a bad parameter),
pages, and can be told to misbehave: answer a status (429 with Retry-After, 500, ...),
truncate its JSON, change its schema, page forever. GitHub Copilot and Cursor fakes are
in ``tests/fakes/copilot.py`` and ``tests/fakes/cursor.py``.

Data is held as plain rows; a test changes a row and pulls again to see a restated
bucket. Money is kept as Decimal (or the exact string a provider sends) and written into
the JSON text verbatim, so no float ever touches the numbers a test sums.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from random import Random
from typing import Any, ClassVar

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DEC = re.compile(r'"\\u0000dec:([^"]+)"')


class Num(str):
    """A JSON number written exactly as spelled ("2e-06"), as a provider might send it."""

    __slots__ = ()


def dumps(value: Any) -> str:
    """JSON with Decimals and Nums written as exact number literals."""

    def mark(v: Any) -> Any:
        if isinstance(v, Decimal | Num):
            return f"\x00dec:{v}"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [mark(x) for x in v]
        return v

    return _DEC.sub(r"\1", json.dumps(mark(value)))


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type="application/json")


def cursor(offset: int) -> str:
    return "page_" + base64.urlsafe_b64encode(f"{offset:08d}".encode()).decode()


def offset_of(token: str | None) -> int:
    if not token:
        return 0
    if not token.startswith("page_"):
        raise web.HTTPBadRequest(text='{"error": {"message": "invalid page"}}',
                                 content_type="application/json")
    return int(base64.urlsafe_b64decode(token[5:]).decode())


def cursor_slice(request: web.Request, rows: list[Any], size: int) -> web.Response:
    """One page of ``rows`` in the {data, has_more, next_page} envelope, from ``page``."""
    first = offset_of(request.query.get("page"))
    page = rows[first : first + size]
    nxt = first + len(page)
    more = nxt < len(rows)
    return json_response({"data": page, "has_more": more,
                          "next_page": cursor(nxt) if more else None})


def ts(at: datetime) -> int:
    return int(at.timestamp())


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fault:
    path: str
    kind: str  # status | truncated | schema | forever
    status: int = 500
    times: int | None = 1  # None: until cleared
    headers: dict[str, str] = field(default_factory=dict)
    when: Callable[[web.Request], bool] | None = None
    hits: int = 0

    def applies(self, request: web.Request) -> bool:
        if request.path != self.path:  # exact: /x/aggregated is not /x
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        return self.when is None or self.when(request)


class FakeProvider:
    """Auth check, request log and fault injection shared by the three fakes."""

    schema_break: ClassVar[Any] = {"data": {"unexpected": True}, "has_more": False}

    def __init__(self, key: str):
        self.key = key
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.faults: list[Fault] = []

    # --- what a test can ask of the fake -------------------------------------------------

    def fail(self, path: str, status: int = 500, *, times: int | None = 1,
             retry_after: str | None = None,
             when: Callable[[web.Request], bool] | None = None) -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        fault = Fault(path, "status", status, times, headers, when)
        self.faults.append(fault)
        return fault

    def truncate(self, path: str, *, times: int | None = 1) -> Fault:
        fault = Fault(path, "truncated", times=times)
        self.faults.append(fault)
        return fault

    def break_schema(self, path: str, *, times: int | None = 1) -> Fault:
        fault = Fault(path, "schema", times=times)
        self.faults.append(fault)
        return fault

    def page_forever(self, path: str) -> Fault:
        fault = Fault(path, "forever", times=None)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def calls(self, path: str) -> list[dict[str, list[str]]]:
        return [q for p, q, _ in self.requests if p == path]

    # --- plumbing ---------------------------------------------------------------------

    def authorized(self, request: web.Request) -> web.Response | None:
        raise NotImplementedError

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def forever_body(self, request: web.Request, n: int) -> Any:
        return {"data": [], "has_more": True, "next_page": cursor(10_000 + n)}

    def app(self) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            query: dict[str, list[str]] = defaultdict(list)
            for k, v in request.query.items():
                query[k].append(v)
            self.requests.append((request.path, dict(query), dict(request.headers)))
            denied = self.authorized(request)
            if denied is not None:
                return denied
            for fault in self.faults:
                if fault.applies(request):
                    fault.hits += 1
                    return await self._misbehave(fault, request, handler)
            return await handler(request)

        app = web.Application(middlewares=[middleware])
        app.add_routes(self.routes())
        return app

    async def _misbehave(self, fault: Fault, request: web.Request,
                         handler: Handler) -> web.StreamResponse:
        if fault.kind == "status":
            body = {"error": {"message": f"injected {fault.status}", "type": "server_error"}}
            return web.Response(text=json.dumps(body), status=fault.status,
                                headers=fault.headers, content_type="application/json")
        if fault.kind == "schema":
            return json_response(self.schema_break)
        if fault.kind == "forever":
            return json_response(self.forever_body(request, fault.hits))
        real = await handler(request)
        assert isinstance(real, web.Response) and real.text is not None
        return web.Response(text=real.text[: max(len(real.text) // 2, 1)],
                            content_type="application/json")


def bad_request(message: str) -> web.Response:
    return json_response({"error": {"message": message, "type": "invalid_request_error"}},
                         status=400)


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not re.fullmatch(r"-?\d+", value):
        raise web.HTTPBadRequest(text=dumps({"error": {"message": f"{name} must be an int"}}),
                                 content_type="application/json")
    return int(value)


def _sum_into(into: dict[str, Any], row: dict[str, Any], fields: Iterable[str]) -> None:
    for name in fields:
        into[name] = into.get(name, 0) + row.get(name, 0)


# =======================================================================================
# OpenAI: openai/openai-openapi, openapi.yaml (UsageCompletionsResult, UsageResponse,
# CostsResult, ProjectApiKey, ProjectApiKeyListResponse); pages under
# https://developers.openai.com/api/reference/resources/organization/
# =======================================================================================

OPENAI_USAGE_DIMS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
# Every count of UsageCompletionsResult. Since the 2026-07-15 redefinition input_tokens
# includes cached, cache-write, text, audio and image tokens; the rest are breakdowns.
OPENAI_USAGE_SUMS = (
    "input_tokens", "input_cached_tokens", "input_cache_write_tokens",
    "input_uncached_tokens", "output_tokens", "input_text_tokens", "output_text_tokens",
    "input_cached_text_tokens", "input_audio_tokens", "input_cached_audio_tokens",
    "output_audio_tokens", "input_image_tokens", "input_cached_image_tokens",
    "output_image_tokens", "num_model_requests")
# The spec's own example (x-oaiMeta of UsageCompletionsResult), served verbatim by tests.
OPENAI_EXAMPLE_RESULT: dict[str, Any] = {
    "object": "organization.usage.completions.result",
    "input_tokens": 5000, "input_cached_tokens": 1800, "input_cache_write_tokens": 200,
    "input_uncached_tokens": 3000, "output_tokens": 1000, "input_text_tokens": 2500,
    "output_text_tokens": 800, "input_cached_text_tokens": 1500, "input_audio_tokens": 300,
    "input_cached_audio_tokens": 100, "output_audio_tokens": 100, "input_image_tokens": 200,
    "input_cached_image_tokens": 200, "output_image_tokens": 100, "num_model_requests": 5,
    "project_id": "proj_abc", "user_id": "user-abc", "api_key_id": "key_abc",
    "model": "gpt-4o-mini-2024-07-18", "batch": False, "service_tier": "default"}


def openai_usage_row(start: datetime, *, uncached_text: int, cached_text: int,
                     cache_write: int, output_text: int, audio_in: int = 0,
                     cached_audio: int = 0, image_in: int = 0, cached_image: int = 0,
                     audio_out: int = 0, image_out: int = 0, requests: int = 1,
                     **dims: Any) -> dict[str, Any]:
    """A usage row whose totals follow the spec's definitions (used by the fake's data)."""
    uncached = uncached_text + audio_in + image_in
    cached = cached_text + cached_audio + cached_image
    return {
        "start": start, **dims,
        "input_tokens": uncached + cached + cache_write, "input_cached_tokens": cached,
        "input_cache_write_tokens": cache_write, "input_uncached_tokens": uncached,
        "output_tokens": output_text + audio_out + image_out,
        "input_text_tokens": uncached_text, "output_text_tokens": output_text,
        "input_cached_text_tokens": cached_text, "input_audio_tokens": audio_in,
        "input_cached_audio_tokens": cached_audio, "output_audio_tokens": audio_out,
        "input_image_tokens": image_in, "input_cached_image_tokens": cached_image,
        "output_image_tokens": image_out, "num_model_requests": requests}
OPENAI_WIDTH = {"1m": (60, 1440), "1h": (3600, 168), "1d": (86400, 31)}  # seconds, max limit


class FakeOpenAI(FakeProvider):
    """usage/completions, costs, projects and project api_keys."""

    def __init__(self, key: str = "sk-admin-test"):
        super().__init__(key)
        # usage rows: {"start": datetime (bucket start), dims..., sums...}
        self.usage: list[dict[str, Any]] = []
        # cost rows: {"day": date, "project_id", "line_item", "value": Decimal | str}
        self.costs: list[dict[str, Any]] = []
        self.projects: list[dict[str, Any]] = []
        self.api_keys: dict[str, list[dict[str, Any]]] = {}
        self.page_buckets = 5  # buckets per usage page, below the client's limit: paging
        self.list_page = 2

    def authorized(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("Authorization", "")
        if given == f"Bearer {self.key}":
            return None
        shown = given.removeprefix("Bearer ")
        return json_response({"error": {
            "message": f"Incorrect API key provided: {shown}. You can find your API key at "
                       "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
            status=401)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/organization/usage/completions", self.usage_completions),
            web.get("/v1/organization/costs", self.costs_handler),
            web.get("/v1/organization/projects", self.projects_handler),
            web.get("/v1/organization/projects/{project_id}/api_keys", self.keys_handler),
        ]

    def _range(self, request: web.Request, widths: dict[str, tuple[int, int]],
               default_limit: int) -> tuple[int, int, int, int] | web.Response:
        start = _int_param(request, "start_time")
        if start is None:
            return bad_request("start_time is required")
        width_name = request.query.get("bucket_width", "1d")
        if width_name not in widths:
            return bad_request(f"bucket_width {width_name!r} is not supported")
        width, max_limit = widths[width_name]
        limit = _int_param(request, "limit") or default_limit
        if not 1 <= limit <= max_limit:
            return bad_request(f"limit must be between 1 and {max_limit}")
        end = _int_param(request, "end_time") or start + width * limit
        return start, end, width, limit

    def _buckets(self, request: web.Request, rows: list[dict[str, Any]], at: str,
                 allowed: set[str],
                 build: Callable[[list[dict[str, Any]], set[str]], list[dict[str, Any]]],
                 widths: dict[str, tuple[int, int]], default_limit: int) -> web.Response:
        parsed = self._range(request, widths, default_limit)
        if isinstance(parsed, web.Response):
            return parsed
        start, end, width, limit = parsed
        group_by = set(request.query.getall("group_by", []))
        if "group_by[]" in request.query:
            return bad_request("unknown parameter group_by[]")
        if not group_by <= allowed:
            return bad_request(f"invalid group_by {sorted(group_by - allowed)}")
        slots = list(range(start, end, width))
        first = offset_of(request.query.get("page"))
        page = slots[first : first + min(limit, self.page_buckets)]
        data = []
        for b in page:
            inside = [r for r in rows if b <= ts(r[at]) < b + width]
            data.append({"object": "bucket", "start_time": b, "end_time": b + width,
                         "results": build(inside, group_by)})
        nxt = first + len(page)
        more = nxt < len(slots)
        return json_response({"object": "page", "data": data, "has_more": more,
                              "next_page": cursor(nxt) if more else None})

    async def usage_completions(self, request: web.Request) -> web.Response:
        def build(rows: list[dict[str, Any]], group_by: set[str]) -> list[dict[str, Any]]:
            groups: dict[tuple[Any, ...], dict[str, Any]] = {}
            verbatim = []
            for r in rows:
                if "verbatim" in r:  # a result exactly as a document shows it
                    verbatim.append(r["verbatim"])
                    continue
                key = tuple(r.get(d) if d in group_by else None for d in OPENAI_USAGE_DIMS)
                out = groups.setdefault(key, {
                    "object": "organization.usage.completions.result",
                    **dict.fromkeys(OPENAI_USAGE_SUMS, 0),
                    **dict(zip(OPENAI_USAGE_DIMS, key, strict=True))})
                _sum_into(out, r, OPENAI_USAGE_SUMS)
            return list(groups.values()) + verbatim

        return self._buckets(request, self.usage, "start", set(OPENAI_USAGE_DIMS), build,
                             OPENAI_WIDTH, 7)

    async def costs_handler(self, request: web.Request) -> web.Response:
        def build(rows: list[dict[str, Any]], group_by: set[str]) -> list[dict[str, Any]]:
            groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                key = tuple(r.get(d) if d in group_by else None
                            for d in ("project_id", "line_item"))
                groups[key].append(r)
            out = []
            for (project, line_item), members in groups.items():
                # One row keeps its value exactly as given (number or string: both seen
                # live); aggregated rows become a number.
                value = (members[0]["value"] if len(members) == 1
                         else sum(Decimal(str(m["value"])) for m in members))
                out.append({"object": "organization.costs.result",
                            "amount": {"value": value, "currency": "usd"},
                            "line_item": line_item, "project_id": project,
                            "api_key_id": None, "quantity": None, "quantity_unit": None})
            return out

        rows = [{**r, "at": datetime.combine(r["day"], datetime.min.time(), UTC)}
                for r in self.costs]
        return self._buckets(request, rows, "at", {"project_id", "line_item", "api_key_id"},
                             build, {"1d": (86400, 180)}, 7)

    def _list(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        limit = _int_param(request, "limit") or 20
        if not 1 <= limit <= 100:
            return bad_request("limit must be between 1 and 100")
        after = request.query.get("after")
        start = 0
        if after:
            ids = [i["id"] for i in items]
            if after not in ids:
                return bad_request(f"unknown cursor {after}")
            start = ids.index(after) + 1
        page = items[start : start + min(limit, self.list_page)]
        more = start + len(page) < len(items)
        return json_response({
            "object": "list", "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": more})

    async def projects_handler(self, request: web.Request) -> web.Response:
        archived = request.query.get("include_archived") == "true"
        return self._list(request, [p for p in self.projects
                                    if archived or p.get("status") == "active"])

    async def keys_handler(self, request: web.Request) -> web.Response:
        project = request.match_info["project_id"]
        if project not in self.api_keys:
            return json_response({"error": {"message": "No such project"}}, status=404)
        access = request.query.get("owner_project_access")
        if access not in (None, "active", "inactive", "any"):
            return bad_request(f"invalid owner_project_access {access!r}")
        keys = self.api_keys[project]
        if access is None or access == "active":
            # Spec: "If omitted, the endpoint applies its existing membership-based
            # visibility rules, which may exclude some enabled keys."
            keys = [k for k in keys if k["owner_project_access"] == "active"]
        elif access == "inactive":
            keys = [k for k in keys if k["owner_project_access"] == "inactive"]
        return self._list(request, keys)

    def add_project(self, project_id: str, keys: list[tuple[str, str | None, str | None]],
                    *, status: str = "active", inactive: tuple[str, ...] = ()) -> None:
        """keys: (key id, owner email or None for a service account, owner user id);
        ``inactive``: key ids whose owner no longer has access to the project."""
        self.projects.append({"id": project_id, "object": "organization.project",
                              "name": project_id, "created_at": 1711471533,
                              "archived_at": None, "status": status})
        out = []
        for key_id, email, user_id in keys:
            owner: dict[str, Any]
            if email is None:
                owner = {"type": "service_account", "service_account": {
                    "object": "organization.project.service_account", "id": "svc_" + key_id,
                    "name": "bot", "role": "member", "created_at": 1711471533}}
            else:
                owner = {"type": "user", "user": {
                    "object": "organization.project.user", "id": user_id,
                    "name": email.split("@")[0], "email": email, "role": "owner",
                    "added_at": 1711471533}}
            out.append({"object": "organization.project.api_key",
                        "redacted_value": "sk-abc...def", "name": key_id,
                        "created_at": 1711471533, "last_used_at": 1711471534, "id": key_id,
                        "owner_project_access": "inactive" if key_id in inactive else "active",
                        "owner": owner})
        self.api_keys[project_id] = out


# =======================================================================================
# Anthropic Admin API, legacy Usage and Cost API:
#   https://platform.claude.com/docs/en/manage-claude/usage-cost-api
#   https://platform.claude.com/docs/en/api/admin/usage_report/retrieve_messages
#   https://platform.claude.com/docs/en/api/admin/cost_report/retrieve
# Usage and Cost Analytics API (beta header analytics-usage-cost-2026-08-24), as read
# for docs/vendors/anthropic-usage-cost-analytics.md:
#   https://platform.claude.com/docs/en/manage-claude/usage-cost-analytics-api (the
#     quickstart row: {"data": [{"starting_at", "ending_at", "group": {...}, "usage"}]})
#   https://platform.claude.com/docs/en/api/beta/organization/analytics (BetaAnalyticsActor)
#   https://platform.claude.com/docs/en/api/csharp/beta/organization/analytics/usage
#     (BetaAnalyticsUsageGroup: 19 dimensions; BetaAnalyticsUsageMetrics)
#   https://platform.claude.com/docs/en/api/go/beta/organization/analytics/cost
#     (BetaAnalyticsCostGroup: the 19 + cost_type, token_type; BetaAnalyticsCostMetrics)
#   https://www.rubydoc.info/github/anthropics/anthropic-sdk-ruby (amount: String;
#     BetaAnalyticsUserActor: user_id, email_address, name, deleted)
#   https://platform.claude.com/docs/en/api/python/beta/organization/analytics/usage/list
#     (starting_at: "no earlier than 2026-01-01T00:00:00Z")
# The envelope around "data" was not in the readable text; {data, has_more, next_page}
# (the SDKs' ReportPageCursor reads next_page and sends it back as ``page``).
# =======================================================================================

ANTHROPIC_USAGE_DIMS = ("api_key_id", "workspace_id", "model", "service_tier",
                        "context_window")
ANTHROPIC_COST_DIMS = ("workspace_id", "description")
ANTHROPIC_WIDTH = {"1m": (60, 1440), "1h": (3600, 168), "1d": (86400, 31)}
ANALYTICS_BETA = "analytics-usage-cost-2026-08-24"
ANALYTICS_FROM = datetime(2026, 1, 1, tzinfo=UTC)
# The group fields of an analytics row, every one present and null unless grouped on: the
# 19 of BetaAnalyticsUsageGroup (one per documented filter: actor_ids[] ... workspace_ids[]);
# a cost row adds cost_type and token_type. actor is an object with a "type".
ANALYTICS_GROUP = ("actor", "actor_type", "agent_id", "api_key_id", "claude_tag_category",
                   "claude_tag_user_id", "context_window", "deployment_id", "environment_id",
                   "inference_geo", "model", "product", "rbac_group_id", "service_tier",
                   "session_id", "slack_channel_id", "speed", "user_profile_id",
                   "workspace_id")
ANALYTICS_COST_GROUP = (*ANALYTICS_GROUP, "cost_type", "token_type")


class FakeAnthropic(FakeProvider):
    """usage_report/messages, cost_report, usage_report/claude_code and the Usage and Cost
    Analytics API's analytics/usage and analytics/cost (sources above)."""

    def __init__(self, key: str = "sk-ant-admin-test"):
        super().__init__(key)
        # usage rows: {"start": datetime, dims..., "uncached_input_tokens", "output_tokens",
        #   "cache_read_input_tokens", "cache_1h", "cache_5m", "web_search_requests"}
        self.usage: list[dict[str, Any]] = []
        # cost rows: {"day": date, "workspace_id", "description", "amount": "123.45" (cents),
        #   "cost_type", "model", "service_tier", "context_window", "token_type"}
        self.costs: list[dict[str, Any]] = []
        self.claude_code: list[dict[str, Any]] = []  # records exactly as documented
        # analytics cost rows: {"day", "workspace_id", "model", "cost_type", "token_type",
        #   "amount": "123.45" (fractional cents)}
        self.analytics_costs: list[dict[str, Any]] = []
        self.page_buckets = 7
        self.claude_code_page = 2
        self.analytics_page = 25  # rows per page, below the client's limit: paging

    def authorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.key:
            return json_response({"type": "error", "error": {
                "type": "authentication_error", "message": "invalid x-api-key"}}, status=401)
        if request.headers.get("anthropic-version") != "2023-06-01":
            return json_response({"type": "error", "error": {
                "type": "invalid_request_error",
                "message": "anthropic-version: header is required"}}, status=400)
        return None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/organizations/usage_report/messages", self.messages),
            web.get("/v1/organizations/cost_report", self.cost_report),
            web.get("/v1/organizations/usage_report/claude_code", self.claude_code_report),
            web.get("/v1/organizations/analytics/usage", self.analytics_usage),
            web.get("/v1/organizations/analytics/cost", self.analytics_cost),
        ]

    # --- Usage and Cost Analytics API ----------------------------------------------------

    def _analytics(self, request: web.Request, rows: list[dict[str, Any]], allowed: set[str],
                   build: Callable[[list[dict[str, Any]], set[str]], dict[str, Any]],
                   body: str) -> web.Response:
        if request.headers.get("anthropic-beta") != ANALYTICS_BETA:
            return json_response({"type": "error", "error": {
                "type": "invalid_request_error",
                "message": f"this endpoint requires anthropic-beta: {ANALYTICS_BETA}"}},
                status=400)
        start = self._time(request, "starting_at")
        if start is None:
            return bad_request("starting_at is required")
        if start < ANALYTICS_FROM:
            return bad_request("starting_at must be no earlier than 2026-01-01T00:00:00Z")
        end = self._time(request, "ending_at") or start + timedelta(days=31)
        width_name = request.query.get("time_bucket_width", "1d")
        if width_name not in ANTHROPIC_WIDTH:
            return bad_request(f"time_bucket_width {width_name!r} is not supported")
        width = ANTHROPIC_WIDTH[width_name][0]
        limit = _int_param(request, "limit") or 20
        if not 1 <= limit <= 1000:
            return bad_request("limit must be between 1 and 1000")
        if "group_by" in request.query:
            return bad_request("unknown parameter group_by (use group_by[])")
        group_by = set(request.query.getall("group_by[]", []))
        if not group_by <= allowed:
            return bad_request(f"invalid group_by[] {sorted(group_by - allowed)}")
        out = []
        for b in range(ts(start), ts(end), width):
            inside = [r for r in rows if b <= ts(r["start"]) < b + width]
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in inside:
                groups[json.dumps([r.get(d) if d in group_by else None
                                   for d in sorted(allowed)])].append(r)
            bucket = []
            for members in groups.values():
                group = {d: (members[0].get(d) if d in group_by else None)
                         for d in (ANALYTICS_GROUP if body == "usage" else allowed)}
                bucket.append({"starting_at": rfc3339(datetime.fromtimestamp(b, UTC)),
                               "ending_at": rfc3339(datetime.fromtimestamp(b + width, UTC)),
                               "group": group, body: build(members, group_by)})
            # Largest first, as the docs say rows are ordered.
            bucket.sort(key=lambda row: -row[body].get("total_tokens", 0)
                        if body == "usage" else 0)
            out.extend(bucket)
        return cursor_slice(request, out, min(limit, self.analytics_page))

    async def analytics_usage(self, request: web.Request) -> web.Response:
        def build(members: list[dict[str, Any]], _: set[str]) -> dict[str, Any]:
            g: dict[str, Any] = {}
            for r in members:
                _sum_into(g, r, ("uncached_input_tokens", "output_tokens",
                                 "cache_read_input_tokens", "cache_1h", "cache_5m",
                                 "web_search_requests", "requests"))
            total = (g["uncached_input_tokens"] + g["output_tokens"]
                     + g["cache_read_input_tokens"] + g["cache_1h"] + g["cache_5m"])
            return {"uncached_input_tokens": g["uncached_input_tokens"],
                    "cache_creation": {"ephemeral_1h_input_tokens": g["cache_1h"],
                                       "ephemeral_5m_input_tokens": g["cache_5m"]},
                    "cache_read_input_tokens": g["cache_read_input_tokens"],
                    "output_tokens": g["output_tokens"],
                    "server_tool_use": {"web_search_requests": g["web_search_requests"]},
                    "requests": g["requests"], "total_tokens": total}

        return self._analytics(request, self.usage, set(ANALYTICS_GROUP), build, "usage")

    async def analytics_cost(self, request: web.Request) -> web.Response:
        def build(members: list[dict[str, Any]], group_by: set[str]) -> dict[str, Any]:
            cents = sum((Decimal(m["amount"]) for m in members), Decimal(0))
            # "Null when group_by includes cost_type or token_type"
            requests = (None if group_by & {"cost_type", "token_type"}
                        else sum(m.get("requests", 0) for m in members))
            return {"amount": str(cents), "currency": "USD", "list_amount": str(cents),
                    "requests": requests}

        rows = [{**r, "start": datetime.combine(r["day"], datetime.min.time(), UTC)}
                for r in self.analytics_costs]
        return self._analytics(request, rows, set(ANALYTICS_COST_GROUP), build, "cost")

    @staticmethod
    def _time(request: web.Request, name: str) -> datetime | None:
        value = request.query.get(name)
        if value is None:
            return None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", value):
            raise web.HTTPBadRequest(text=dumps({"type": "error", "error": {
                "type": "invalid_request_error", "message": f"{name}: not RFC 3339"}}),
                content_type="application/json")
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    def _report(self, request: web.Request, rows: list[dict[str, Any]], allowed: set[str],
                widths: dict[str, tuple[int, int]],
                build: Callable[[list[dict[str, Any]], set[str]], list[dict[str, Any]]]
                ) -> web.Response:
        start = self._time(request, "starting_at")
        if start is None:
            return bad_request("starting_at is required")
        width_name = request.query.get("bucket_width", "1d")
        if width_name not in widths:
            return bad_request(f"bucket_width {width_name!r} is not supported")
        width, max_limit = widths[width_name]
        limit = _int_param(request, "limit") or 7
        if not 1 <= limit <= max_limit:
            return bad_request(f"limit must be between 1 and {max_limit}")
        if "group_by" in request.query:
            return bad_request("unknown parameter group_by (use group_by[])")
        group_by = set(request.query.getall("group_by[]", []))
        if not group_by <= allowed:
            return bad_request(f"invalid group_by[] {sorted(group_by - allowed)}")
        end = self._time(request, "ending_at") or start + timedelta(seconds=width * limit)
        slots = list(range(ts(start), ts(end), width))
        first = offset_of(request.query.get("page"))
        page = slots[first : first + min(limit, self.page_buckets)]
        data = []
        for b in page:
            inside = [r for r in rows if b <= ts(r["start"]) < b + width]
            data.append({"starting_at": rfc3339(datetime.fromtimestamp(b, UTC)),
                         "ending_at": rfc3339(datetime.fromtimestamp(b + width, UTC)),
                         "results": build(inside, group_by)})
        nxt = first + len(page)
        more = nxt < len(slots)
        return json_response({"data": data, "has_more": more,
                              "next_page": cursor(nxt) if more else None})

    async def messages(self, request: web.Request) -> web.Response:
        sums = ("uncached_input_tokens", "output_tokens", "cache_read_input_tokens",
                "cache_1h", "cache_5m", "web_search_requests")

        def build(rows: list[dict[str, Any]], group_by: set[str]) -> list[dict[str, Any]]:
            groups: dict[tuple[Any, ...], dict[str, Any]] = {}
            for r in rows:
                key = tuple(r.get(d) if d in group_by else None for d in ANTHROPIC_USAGE_DIMS)
                _sum_into(groups.setdefault(key, {}), r, sums)
            return [{
                "uncached_input_tokens": g["uncached_input_tokens"],
                "cache_creation": {"ephemeral_1h_input_tokens": g["cache_1h"],
                                   "ephemeral_5m_input_tokens": g["cache_5m"]},
                "cache_read_input_tokens": g["cache_read_input_tokens"],
                "output_tokens": g["output_tokens"],
                "server_tool_use": {"web_search_requests": g["web_search_requests"]},
                **dict(zip(ANTHROPIC_USAGE_DIMS, key, strict=True)),
            } for key, g in groups.items()]

        return self._report(request, self.usage, set(ANTHROPIC_USAGE_DIMS), ANTHROPIC_WIDTH,
                            build)

    async def cost_report(self, request: web.Request) -> web.Response:
        detail = ("cost_type", "model", "service_tier", "context_window", "token_type")

        def build(rows: list[dict[str, Any]], group_by: set[str]) -> list[dict[str, Any]]:
            groups: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
            for r in rows:
                by_desc = "description" in group_by
                key = (r["workspace_id"] if "workspace_id" in group_by else None,
                       r["description"] if by_desc else None,
                       *(r.get(d) if by_desc else None for d in detail))
                groups[key] += Decimal(r["amount"])
            return [{"currency": "USD", "amount": str(cents), "workspace_id": key[0],
                     "description": key[1], **dict(zip(detail, key[2:], strict=True))}
                    for key, cents in groups.items()]

        rows = [{**r, "start": datetime.combine(r["day"], datetime.min.time(), UTC)}
                for r in self.costs]
        return self._report(request, rows, set(ANTHROPIC_COST_DIMS), {"1d": (86400, 31)},
                            build)

    async def claude_code_report(self, request: web.Request) -> web.Response:
        day = request.query.get("starting_at", "")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            return bad_request("starting_at must be a date in YYYY-MM-DD format")
        if "ending_at" in request.query:
            return bad_request("unknown parameter ending_at")
        limit = _int_param(request, "limit") or 20
        if not 1 <= limit <= 1000:
            return bad_request("limit must be between 1 and 1000")
        rows = [r for r in self.claude_code if r["date"][:10] == day]
        return cursor_slice(request, rows, min(limit, self.claude_code_page))


def claude_code_record(day: str, actor: dict[str, str], customer_type: str,
                       models: list[tuple[str, int, int, int, int, int | Decimal]],
                       *, terminal: str = "vscode") -> dict[str, Any]:
    """A record as documented; models: (model, input, output, cache_read, cache_creation,
    estimated cost in cents)."""
    return {
        "actor": actor,
        "core_metrics": {"commits_by_claude_code": 1, "lines_of_code": {"added": 10,
                                                                        "removed": 2},
                         "num_sessions": 2, "pull_requests_by_claude_code": 0},
        "customer_type": customer_type,
        "date": day,
        "model_breakdown": [{
            "estimated_cost": {"amount": cents, "currency": "USD"}, "model": model,
            "tokens": {"cache_creation": cw, "cache_read": cr, "input": i, "output": o},
        } for model, i, o, cr, cw, cents in models],
        "organization_id": "12345678-1234-5678-1234-567812345678",
        "terminal_type": terminal,
        "tool_actions": {"edit_tool": {"accepted": 3, "rejected": 1}},
        "subscription_type": "enterprise" if customer_type == "subscription" else None,
    }


# =======================================================================================
# LiteLLM proxy (BerriAI/litellm, as released on PyPI: litellm 1.110.x):
#   litellm/proxy/spend_tracking/spend_management_endpoints.py (view_spend_logs,
#     ui_view_spend_logs for /spend/logs/v2, _build_ui_spend_logs_response),
#   litellm/proxy/management_endpoints/internal_user_endpoints.py (/user/list,
#     /user/daily/activity), daily_activity_routes.py (/user/daily/activity/aggregated),
#   litellm/repositories/daily_activity_repository.py (page order: date desc, id asc),
#   litellm/proxy/schema.prisma (LiteLLM_SpendLogs: no email column).
# =======================================================================================

V2_MAX_PAGE_SIZE = 1000  # fastapi.Query(le=1000)
LEGACY_ROW_CAP = 10_000  # "Row results are capped at 10,000 most recent entries"


class FakeLiteLLM(FakeProvider):
    """/spend/logs (raw rows; or the legacy per-day summary), /spend/logs/v2, /user/list,
    /user/daily/activity and /user/daily/activity/aggregated."""

    schema_break: ClassVar[Any] = {"logs": "not a list"}

    def __init__(self, key: str = "sk-litellm-master"):
        super().__init__(key)
        self.spend_logs: list[dict[str, Any]] = []  # raw rows; "startTime" as ISO text
        # daily rows: {"date": date, "user_id", "api_key", "model", "provider", "spend":
        #   Decimal, "prompt_tokens", "completion_tokens", "cache_read_input_tokens",
        #   "cache_creation_input_tokens", "api_requests"}
        self.daily: list[dict[str, Any]] = []
        self.legacy_summary = False  # an older proxy: /spend/logs always aggregates
        self.nested = True  # breakdown entries as {metrics, metadata} (current source)
        self.has_v2 = True  # an older proxy answers 404 for /spend/logs/v2
        self.has_aggregated = True  # ... and for /user/daily/activity/aggregated
        self.legacy_cap = LEGACY_ROW_CAP
        self.users: list[dict[str, Any]] = []  # LiteLLM_UserTable rows: user_id, user_email
        # Called with the page number before /user/daily/activity answers a page: a test
        # writes a row between two page reads, as a live proxy does.
        self.before_daily_page: Callable[[int], None] | None = None
        self._tie_seed = 0

    def authorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.key}":
            return None
        return json_response({"error": {"message": "Authentication Error, Invalid proxy "
                                                   "server token passed.",
                                        "type": "auth_error", "param": "None",
                                        "code": "401"}}, status=401)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/spend/logs", self.spend),
                web.get("/spend/logs/v2", self.spend_v2),
                web.get("/user/list", self.user_list),
                web.get("/user/daily/activity", self.user_daily),
                web.get("/user/daily/activity/aggregated", self.user_daily_aggregated)]

    @staticmethod
    def not_found() -> web.Response:
        return json_response({"detail": "Not Found"}, status=404)  # FastAPI's own 404

    async def spend_v2(self, request: web.Request) -> web.Response:
        if not self.has_v2:
            return self.not_found()
        start, end = request.query.get("start_date"), request.query.get("end_date")
        if start is None or end is None:
            return bad_request("Start date and end date are required")
        try:
            lo, hi = (datetime.strptime(v.strip(), fmt).replace(tzinfo=UTC)
                      for v, fmt in ((start, "%Y-%m-%d %H:%M:%S" if " " in start
                                      else "%Y-%m-%d"),
                                     (end, "%Y-%m-%d %H:%M:%S" if " " in end
                                      else "%Y-%m-%d")))
        except ValueError:
            return bad_request("Invalid date format: expected 'YYYY-MM-DD' or "
                               "'YYYY-MM-DD HH:MM:SS'")
        page = _int_param(request, "page") or 1
        size = _int_param(request, "page_size") or 50
        if page < 1 or not 1 <= size <= V2_MAX_PAGE_SIZE:
            return json_response({"detail": "page >= 1, 1 <= page_size <= 1000"}, status=422)
        if request.query.get("sort_by", "startTime") != "startTime":
            return bad_request("this fake sorts by startTime only")
        inside = [r for r in self.spend_logs if lo <= _parse(r["startTime"]) <= hi]
        # ORDER BY "startTime" LIMIT/OFFSET: rows sharing a startTime come in no set
        # order, and the order can differ from one query to the next.
        self._tie_seed += 1
        shuffle = Random(self._tie_seed).random
        desc = request.query.get("sort_order", "desc") == "desc"
        ordered = sorted(inside, key=lambda r: (
            -_parse(r["startTime"]).timestamp() if desc else _parse(r["startTime"]).timestamp(),
            shuffle()))
        total = min(len(ordered), 10_000)
        chunk = ordered[(page - 1) * size : page * size]
        listed = [{k: v for k, v in r.items() if k not in ("messages", "response",
                                                            "proxy_server_request")}
                  for r in chunk]
        return json_response({"data": listed, "total": total, "page": page, "page_size": size,
                              "total_pages": -(-total // size), "total_is_capped":
                              len(ordered) > 10_000})

    async def user_list(self, request: web.Request) -> web.Response:
        page = _int_param(request, "page") or 1
        size = _int_param(request, "page_size") or 25
        if page < 1 or not 1 <= size <= 100:
            return json_response({"detail": "page >= 1, 1 <= page_size <= 100"}, status=422)
        users = sorted(self.users, key=lambda u: u["user_id"],
                       reverse=request.query.get("sort_order", "asc") == "desc")
        if request.query.get("sort_by") not in (None, "user_id"):
            return bad_request("this fake sorts by user_id only")
        chunk = users[(page - 1) * size : page * size]
        return json_response({
            "users": [{"user_id": u["user_id"], "user_email": u.get("user_email"),
                       "user_alias": None, "user_role": "internal_user", "spend": 0.0,
                       "max_budget": None, "teams": [], "key_count": 1} for u in chunk],
            "total": len(users), "page": page, "page_size": size,
            "total_pages": -(-len(users) // size)})

    def forever_body(self, request: web.Request, n: int) -> Any:
        return {"results": [], "metadata": {"page": n, "total_pages": n + 1, "has_more": True}}

    async def spend(self, request: web.Request) -> web.Response:
        rows = self.spend_logs
        if "request_id" in request.query:
            found = [r for r in rows if r["request_id"] == request.query["request_id"]]
            return json_response(found or [None])
        start, end = request.query.get("start_date"), request.query.get("end_date")
        if (start is None) != (end is None):
            return bad_request("Both start_date and end_date must be provided")
        if start is None or end is None:
            return json_response(rows)
        lo = datetime.fromisoformat(start).replace(tzinfo=UTC)
        hi = datetime.fromisoformat(end).replace(tzinfo=UTC)
        inside = [r for r in rows if lo <= _parse(r["startTime"]) <= hi]
        summarize = request.query.get("summarize", "true").lower() != "false"
        if self.legacy_summary or summarize:
            return json_response(self._summary(inside))
        newest = sorted(inside, key=lambda r: _parse(r["startTime"]), reverse=True)
        response = json_response(newest[: self.legacy_cap])
        if len(newest) >= self.legacy_cap:  # _find_spend_logs: take=cap rows, then flags it
            response.headers["x-litellm-spend-logs-truncated"] = "true"
        return response

    @staticmethod
    def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        days: dict[str, dict[str, Any]] = {}
        for r in rows:
            day = _parse(r["startTime"]).date().isoformat()
            d = days.setdefault(day, {"startTime": day, "spend": Decimal(0), "users": {},
                                      "models": {}})
            d["spend"] += Decimal(str(r["spend"]))
        return list(days.values())

    async def user_daily(self, request: web.Request) -> web.Response:
        start, end = request.query.get("start_date"), request.query.get("end_date")
        if not start or not end:
            return bad_request("Please provide start_date and end_date")
        page = _int_param(request, "page") or 1
        size = _int_param(request, "page_size") or 50
        if page < 1 or not 1 <= size <= 1000:
            return bad_request("page >= 1 and 1 <= page_size <= 1000")
        if self.before_daily_page is not None:
            self.before_daily_page(page)
        # daily_rows(): order=({"date": "desc"}, {"id": "asc"}) — ids in insertion order.
        rows = sorted((r for r in self.daily if start <= r["date"].isoformat() <= end),
                      key=lambda r: (-r["date"].toordinal(), self.daily.index(r)))
        chunk = rows[(page - 1) * size : page * size]
        total = len(rows)
        return json_response(self._daily_body(chunk, page, max(-(-total // size), 1),
                                              page * size < total))

    async def user_daily_aggregated(self, request: web.Request) -> web.Response:
        if not self.has_aggregated:
            return self.not_found()
        start, end = request.query.get("start_date"), request.query.get("end_date")
        if not start or not end:
            return bad_request("Please provide start_date and end_date")
        rows = [r for r in self.daily if start <= r["date"].isoformat() <= end]
        # "the same response shape as the paginated endpoint with page metadata set to
        # single-page"
        return json_response(self._daily_body(rows, 1, 1, False))

    def _daily_body(self, chunk: list[dict[str, Any]], page: int, pages: int,
                    more: bool) -> dict[str, Any]:
        results: dict[date, dict[str, Any]] = {}
        metric_names = ("spend", "prompt_tokens", "completion_tokens",
                        "cache_read_input_tokens", "cache_creation_input_tokens",
                        "api_requests")
        for r in chunk:
            res = results.setdefault(r["date"], {
                "date": r["date"].isoformat(), "metrics": {}, "breakdown": {
                    "models": {}, "providers": {}, "api_keys": {}}})
            _sum_into(res["metrics"], r, metric_names)
            models = res["breakdown"]["models"]
            entry = models.setdefault(r["model"], {"metrics": {}, "metadata": {}}
                                      if self.nested else {})
            _sum_into(entry["metrics"] if self.nested else entry, r, metric_names)
        return {"results": list(results.values()), "metadata": {
            "total_spend": sum((Decimal(str(r["spend"])) for r in chunk), Decimal(0)),
            "total_api_requests": sum(r["api_requests"] for r in chunk),
            "page": page, "total_pages": pages, "has_more": more}}


def _parse(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


# =======================================================================================
# What the store holds, summed two independent ways (raw records and the daily rollup)
# =======================================================================================

TOTAL_COLUMNS = ("cost_micros", "input_tokens", "output_tokens", "cache_read_tokens",
                 "cache_write_tokens", "requests")


async def stored_totals(rt: Any) -> dict[str, int]:
    """Sums over usage_records; asserts usage_daily (kept by deltas) agrees exactly."""
    from sqlalchemy import func, select

    from bot.store.tables import UsageDaily, UsageRecord

    async with rt.db.reader() as s:
        rec = (await s.execute(select(
            func.count(), *(func.coalesce(func.sum(getattr(UsageRecord, c)), 0)
                            for c in TOTAL_COLUMNS)))).one()
        daily = (await s.execute(select(
            func.coalesce(func.sum(UsageDaily.records), 0),
            *(func.coalesce(func.sum(getattr(UsageDaily, c)), 0)
              for c in TOTAL_COLUMNS)))).one()
    records = dict(zip(("records", *TOTAL_COLUMNS), map(int, rec), strict=True))
    rollup = dict(zip(("records", *TOTAL_COLUMNS), map(int, daily), strict=True))
    assert records == rollup, f"usage_daily drifted from usage_records: {rollup} != {records}"
    return records
