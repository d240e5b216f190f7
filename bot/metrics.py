"""Prometheus metrics. Gauges that describe the database are refreshed at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "tokencoach_http_requests_total",
    "HTTP requests by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
COMMAND_SECONDS = Histogram(
    "tokencoach_command_seconds",
    "Time to answer a command or action",
    ["platform", "command"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RATE_LIMITED = Counter(
    "tokencoach_rate_limited_total",
    "Commands refused by the per-user rate limit",
    ["platform"],
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "tokencoach_job_runs_total", "Job runs by result", ["job", "result"], registry=REGISTRY
)
JOB_SECONDS = Histogram(
    "tokencoach_job_seconds",
    "Job run time",
    ["job"],
    registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900),
)
OUTBOX_DELIVERIES = Counter(
    "tokencoach_outbox_deliveries_total",
    "Outbox delivery attempts by platform and result",
    ["platform", "result"],
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    "tokencoach_outbox_depth", "Outbox messages by status", ["status"], registry=REGISTRY
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "tokencoach_outbox_oldest_pending_seconds",
    "Age of the oldest undelivered message",
    registry=REGISTRY,
)
INGESTED = Counter(
    "tokencoach_ingested_records_total",
    "Usage records ingested by source and outcome",
    ["source", "outcome"],
    registry=REGISTRY,
)
INGEST_LAG = Gauge(
    "tokencoach_ingest_lag_seconds",
    "Seconds since the newest usage data per source",
    ["source"],
    registry=REGISTRY,
)
