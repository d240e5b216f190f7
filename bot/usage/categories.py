"""Task categories: explicit field > app.yaml rules > heuristics > unknown.

The deciding rule is returned with the category and stored on the record, so every
classification can be explained ("rule:2:support-bot", "heuristic:tool_calls").
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from bot.config.models import CategoriesConfig, CategoryRule
from bot.usage.record import RawUsage


def _matcher(pattern: str) -> Callable[[str | None], bool]:
    """``pattern`` as a test (case-insensitive; "x*" prefix, "*x*" substring, else exact),
    compiled once: classification runs for every record of a backfill."""
    p = pattern.lower()
    if p.startswith("*") and p.endswith("*") and len(p) > 1:
        inner = p[1:-1]
        return lambda v: v is not None and inner in v.lower()
    if p.endswith("*"):
        stem = p[:-1]
        return lambda v: v is not None and v.lower().startswith(stem)
    return lambda v: v is not None and v.lower() == p


_RULE_FIELDS = ("source", "provider", "project", "api_key", "workspace", "model", "user")


class Classifier:
    def __init__(self, config: CategoriesConfig):
        self.names = set(config.names)
        self.rules: list[tuple[str, CategoryRule]] = [
            (f"rule:{i}" + (f":{r.name}" if r.name else ""), r) for i, r in enumerate(config.rules)
        ]
        # Each rule as (rule id, category, [(record field, test)], tag test or None).
        self._compiled = [
            (rule_id, rule.category,
             [(name, _matcher(getattr(rule.match, name))) for name in _RULE_FIELDS
              if getattr(rule.match, name) is not None],
             _matcher(rule.match.tag) if rule.match.tag is not None else None)
            for rule_id, rule in self.rules
        ]
        h = config.heuristics
        self.h = h
        self.agent_products = {p.lower() for p in h.agent_products}
        self.product_categories = {p.lower(): c for p, c in h.product_categories.items()}
        self.summ_ratio = Decimal(h.summarization_ratio)
        self.writing_ratio = Decimal(h.writing_ratio)
        # The ratios as exact fractions: a >= ratio * b  <=>  a * den >= num * b.
        self._summ = self.summ_ratio.as_integer_ratio()
        self._writing = self.writing_ratio.as_integer_ratio()
        self._coding = [_matcher(p) for p in h.coding_models]

    def classify(self, r: RawUsage) -> tuple[str, str]:
        if r.category:
            category = r.category.strip().lower()
            if category in self.names:
                return category, "explicit"
        for rule_id, category, tests, tag_test in self._compiled:
            if all(test(getattr(r, name)) for name, test in tests) and (
                    tag_test is None or any(tag_test(t) for t in r.tags)):
                return category, rule_id
        return self.heuristic(r)

    def heuristic(self, r: RawUsage) -> tuple[str, str]:
        h = self.h
        product = (r.product or r.source or "").lower()
        if product in self.agent_products:
            return "agentic", f"heuristic:agent_product:{product}"
        if product in self.product_categories:
            return self.product_categories[product], f"heuristic:product:{product}"
        if r.tool_calls > 0:
            return "agentic", "heuristic:tool_calls"
        model = r.model
        if any(test(model) for test in self._coding):
            return "coding", "heuristic:coding_model"
        inp = r.input_tokens + r.cache_read_tokens + r.cache_write_tokens
        out = r.output_tokens
        requests = max(r.requests, 1)
        num, den = self._summ
        if inp >= h.summarization_min_input * requests and inp * den >= num * max(out, 1):
            return "summarization", "heuristic:input_output_ratio"
        num, den = self._writing
        if out >= 500 * requests and out * den >= num * max(inp, 1):
            return "writing", "heuristic:output_heavy"
        if (inp <= h.chat_max_input_per_request * requests
                and out <= h.chat_max_output_per_request * requests and inp + out > 0):
            return "chat", "heuristic:short_exchanges"
        return "unknown", "default"
