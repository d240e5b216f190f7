"""Limits that bind: vendors' enforced limits (Claude Enterprise spend limits, a LiteLLM
proxy's budgets), read into the store and written from grants and approvals through a
durable, audited, retried queue of vendor ops.

Entry points for the rest of tokencoach:

- ``views.enforced_limits_for(session, person_ids)``: each person's enforced limits.
- ``requests.pending_increase_requests(session)``, ``requests.queue_approve_increase``,
  ``requests.queue_deny_increase``: members' native increase requests and decisions.
- ``grants.apply_grant`` / ``grants.restore_after_grant``: a grant's start and end.
- ``sync.sync_claude``, ``litellm.push_caps``: the scheduled reads and reconciliation.
- ``ops.VendorOpsSender`` / ``ops.drain``: the sender of queued writes.
"""
