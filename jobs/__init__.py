"""What happens on its own. Each module registers its jobs; each job is a plain async
function ``(runtime, occurrence) -> result`` that the scheduler calls and a test can call."""

from jobs import pull  # noqa: F401
from jobs import approvals, digests, retention  # noqa: F401
