"""Category rules, table-driven: explicit > app.yaml rules > heuristics > unknown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config.models import CategoriesConfig
from bot.usage.categories import Classifier
from bot.usage.record import RawUsage, record_key

CONFIG = CategoriesConfig.model_validate({
    "rules": [
        {"name": "notebooks", "match": {"tag": "analytics"}, "category": "analysis"},
        {"name": "support-bot", "match": {"project": "proj_support"}, "category": "summarization"},
        {"match": {"source": "litellm", "model": "claude-*"}, "category": "writing"},
    ],
})


def raw(**kw: object) -> RawUsage:
    base: dict[str, object] = dict(key=record_key("t", str(kw)), source="openai",
                                   occurred_at=datetime(2026, 11, 2, tzinfo=UTC),
                                   provider="openai", model="gpt-4o", input_tokens=500,
                                   output_tokens=200, requests=1)
    base.update(kw)
    return RawUsage(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("record", "category", "rule"), [
    (raw(category="coding"), "coding", "explicit"),
    (raw(category="CHAT", tags=("analytics",)), "chat", "explicit"),
    (raw(category="not-a-category", tags=("analytics",)), "analysis", "rule:0:notebooks"),
    (raw(tags=("x", "analytics")), "analysis", "rule:0:notebooks"),
    (raw(project="proj_support", tool_calls=5), "summarization", "rule:1:support-bot"),
    (raw(source="litellm", model="claude-sonnet-4-5"), "writing", "rule:2"),
    (raw(source="litellm", model="gpt-4o"), "chat", "heuristic:short_exchanges"),
    (raw(source="claude_code", product="claude_code"), "agentic",
     "heuristic:agent_product:claude_code"),
    (raw(tool_calls=3, input_tokens=90_000), "agentic", "heuristic:tool_calls"),
    (raw(model="gpt-5-codex"), "coding", "heuristic:coding_model"),
    (raw(input_tokens=24_000, output_tokens=600, requests=2), "summarization",
     "heuristic:input_output_ratio"),
    (raw(input_tokens=600, output_tokens=3000), "writing", "heuristic:output_heavy"),
    (raw(input_tokens=5000, output_tokens=3000), "unknown", "default"),
    (raw(input_tokens=0, output_tokens=0), "unknown", "default"),
])
def test_classification(record: RawUsage, category: str, rule: str) -> None:
    assert Classifier(CONFIG).classify(record) == (category, rule)
