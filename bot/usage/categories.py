"""Task categories: explicit field > app.yaml rules > heuristics > unknown.

The deciding rule is returned with the category and stored on the record, so every
classification can be explained ("rule:2:support-bot", "heuristic:tool_calls").
"""

from __future__ import annotations

from decimal import Decimal

from bot.config.models import CategoriesConfig, CategoryRule
from bot.usage.record import RawUsage


def _glob(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    pattern, value = pattern.lower(), value.lower()
    if pattern.startswith("*") and pattern.endswith("*") and len(pattern) > 1:
        return pattern[1:-1] in value
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


class Classifier:
    def __init__(self, config: CategoriesConfig):
        self.names = set(config.names)
        self.rules: list[tuple[str, CategoryRule]] = [
            (f"rule:{i}" + (f":{r.name}" if r.name else ""), r) for i, r in enumerate(config.rules)
        ]
        h = config.heuristics
        self.h = h
        self.agent_products = {p.lower() for p in h.agent_products}
        self.summ_ratio = Decimal(h.summarization_ratio)
        self.writing_ratio = Decimal(h.writing_ratio)

    def _rule_matches(self, rule: CategoryRule, r: RawUsage) -> bool:
        m = rule.match
        checks = (
            (m.source, r.source),
            (m.provider, r.provider),
            (m.project, r.project),
            (m.api_key, r.api_key),
            (m.workspace, r.workspace),
            (m.model, r.model),
            (m.user, r.user),
        )
        for pattern, value in checks:
            if pattern is not None and not _glob(pattern, value):
                return False
        return not (m.tag is not None and not any(_glob(m.tag, t) for t in r.tags))

    def classify(self, r: RawUsage) -> tuple[str, str]:
        if r.category:
            category = r.category.strip().lower()
            if category in self.names:
                return category, "explicit"
        for rule_id, rule in self.rules:
            if self._rule_matches(rule, r):
                return rule.category, rule_id
        return self.heuristic(r)

    def heuristic(self, r: RawUsage) -> tuple[str, str]:
        h = self.h
        product = (r.product or r.source or "").lower()
        if product in self.agent_products:
            return "agentic", f"heuristic:agent_product:{product}"
        if r.tool_calls > 0:
            return "agentic", "heuristic:tool_calls"
        if any(_glob(p, r.model) for p in h.coding_models):
            return "coding", "heuristic:coding_model"
        inp = r.input_tokens + r.cache_read_tokens + r.cache_write_tokens
        out = r.output_tokens
        requests = max(r.requests, 1)
        if inp >= h.summarization_min_input * requests and inp >= self.summ_ratio * max(out, 1):
            return "summarization", "heuristic:input_output_ratio"
        if out >= 500 * requests and out >= self.writing_ratio * max(inp, 1):
            return "writing", "heuristic:output_heavy"
        if (inp <= h.chat_max_input_per_request * requests
                and out <= h.chat_max_output_per_request * requests and inp + out > 0):
            return "chat", "heuristic:short_exchanges"
        return "unknown", "default"
