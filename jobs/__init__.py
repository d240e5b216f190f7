"""What happens on its own. Each module registers its jobs; each job is a plain async
function ``(runtime, occurrence) -> result`` that the scheduler calls and a test can call."""

from jobs import admin_digest, alerts, approvals, digests, limits, nudges, pull, retention

__all__ = [
    "admin_digest", "alerts", "approvals", "digests", "limits", "nudges", "pull", "retention",
]
