"""The Adaptive Card renderer on its own: every block kind validates against the AC 1.5
schema, user text can't form links or mentions, and big replies are cut to fit Teams."""

from __future__ import annotations

import json
import re

from bot.reply import (
    Actions,
    Button,
    Context,
    Divider,
    Fact,
    Facts,
    Form,
    FormField,
    Header,
    Image,
    Option,
    Progress,
    Quote,
    Reply,
    Text,
)
from bot.teams import render
from tests.helpers.teams import buttons, card_errors, card_text, walk

EVIL = ("Hi [click me](https://evil.example/phish) and [ref] [1] <at>Everyone</at> "
        "<https://evil.example> ![img](https://evil.example/x.png) **bold**")


def every_kind(text: str) -> Reply:
    return Reply(text=text, blocks=[
        Header(text=text), Text(text=text), Context(text=text), Divider(),
        Facts(title=text, items=[Fact(label=text, value=text)]),
        Progress(label=text, value=3, total=4, caption=text),
        Quote(text=text, author=text),
        Image(alt=text, title=text, url="https://example.com/chart.png"),
        Image(alt=text, chart_id="missing"),
        Actions(buttons=[Button(label="Go", action="tips.open", value=text, style="primary"),
                         Button(label="Read", url="https://example.com/t", action="tips.open"),
                         Button(label="Stop", action="tips.opt_out", style="danger",
                                confirm=text)]),
    ])


def without_data(node: object) -> object:
    if isinstance(node, dict):
        return {k: without_data(v) for k, v in node.items() if k != "data"}
    if isinstance(node, list):
        return [without_data(v) for v in node]
    return node


def strings(card: dict) -> list[str]:  # type: ignore[type-arg]
    """Every string the client renders (texts, facts, titles): not URLs, not action data
    (sent back to the bot, never shown)."""
    out = []
    for node in walk(without_data(card)):
        for key in ("text", "title", "value", "fallbackText", "altText", "label"):
            if isinstance(node.get(key), str) and node.get("type") not in (
                    "Action.OpenUrl",) and not str(node.get(key)).startswith("http"):
                out.append(node[key])
    return out


def test_every_block_kind_validates() -> None:
    card = render.reply_card(every_kind("plain words"))
    assert card_errors(card) == []
    kinds = {n.get("type") for n in walk(card)}
    assert {"RichTextBlock", "FactSet", "Container", "Image", "ActionSet", "Action.Execute",
            "Action.Submit", "Action.OpenUrl", "Action.ShowCard"} <= kinds
    assert "Divider" not in kinds  # a separator line on the next element instead
    assert any(n.get("separator") for n in walk(card))
    go = buttons(card)["Go"]
    assert go["verb"] == "tips.open" and go["data"] == {"value": "plain words"}
    assert go["style"] == "positive" and go["fallback"]["data"]["verb"] == "tips.open"


def test_user_text_cannot_form_links_or_mentions() -> None:
    card = render.reply_card(every_kind(EVIL))
    assert card_errors(card) == []
    shown = strings(card)
    assert shown and not any(re.search(r"\]\s*[(\[]", s) for s in shown)
    assert not any(re.search(r"<(at|https?:)", s, re.I) for s in shown)
    # Still readable: the words are all there (the breaks are zero-width).
    assert "click me" in card_text(card) and "Everyone" in card_text(card)
    # Someone's own words (a Quote) keep their asterisks as text, never as markup.
    quote = next(n for n in walk(card) if n.get("type") == "Container")
    runs = [r for n in walk(quote) if n.get("type") == "TextRun" for r in [n]]
    assert any("**bold**" in r["text"] for r in runs)
    assert not any(r.get("weight") == "bolder" and r["text"] == "bold" for r in runs)


def test_bold_and_code_become_text_runs() -> None:
    card = render.reply_card(Reply(text="x", blocks=[Text(text="Ask **Priya** with `tokens`")]))
    runs = next(n for n in walk(card) if n.get("type") == "RichTextBlock")["inlines"]
    assert [(r["text"], r.get("weight"), r.get("fontType")) for r in runs] == [
        ("Ask ", None, None), ("Priya", "bolder", None), (" with ", None, None),
        ("tokens", None, "monospace")]


def test_a_huge_reply_is_cut_to_fit_with_a_visible_note() -> None:
    blocks = [Text(text=f"Row {i}: " + "spend detail " * 12) for i in range(600)]
    card = render.reply_card(Reply(text="Big", blocks=blocks))
    assert render.size(card) <= render.MAX_CARD_BYTES
    assert card_errors(card) == []
    last = card_text({"body": card["body"][-1:]})
    kept = len(card["body"]) - 1
    assert last == f"…and {600 - kept} more (shortened to fit Teams)" and kept > 50
    assert "Row 0:" in card_text(card)


def test_inline_chart_that_would_overflow_becomes_text() -> None:
    reply = Reply(text="Digest", blocks=[Image(chart_id="c1", alt="Weekly spend")])
    small = render.reply_card(reply, {"c1": "data:image/png;base64,AAAA"})
    assert next(n for n in walk(small) if n.get("type") == "Image")["url"].startswith("data:")
    huge = render.reply_card(reply, {"c1": "data:image/png;base64," + "A" * 40_000})
    assert not [n for n in walk(huge) if n.get("type") == "Image"]
    assert "Chart: Weekly spend" in card_text(huge)


def test_forms_render_inputs_and_errors() -> None:
    form = Form(action="sandbox.submit", title="Sandbox budget", value="7", intro="Up to $2,000",
                fields=[FormField(name="amount", label="Amount (USD)", type="number"),
                        FormField(name="days", label="Days", type="number", initial="30",
                                  required=False, hint="1 to 90"),
                        FormField(name="purpose", label="Purpose", type="textarea",
                                  max_length=500),
                        FormField(name="kind", label="Kind", type="select",
                                  options=[Option(label="Agent", value="agent")])])
    card = render.form_card(form, values={"amount": "12.50", "purpose": EVIL},
                            errors={"amount": "Too much", "other": "Try later"})
    assert card_errors(card) == []
    inputs = {n["id"]: n for n in walk(card) if n.get("type", "").startswith("Input.")}
    assert inputs["input.amount"]["type"] == "Input.Text"  # a decimal stays text, no float
    assert inputs["input.amount"]["value"] == "12.50"
    assert inputs["input.days"] == {**inputs["input.days"], "type": "Input.Number", "value": 30}
    assert inputs["input.purpose"]["isMultiline"] and inputs["input.purpose"]["maxLength"] == 500
    assert inputs["input.kind"]["choices"] == [{"title": "Agent", "value": "agent"}]
    assert "Too much" in card_text(card) and "Try later" in card_text(card)
    submit = buttons(card)["Submit"]
    assert submit["verb"] == "sandbox.submit" and submit["data"]["value"] == "7"
    assert render.form_of(submit["data"]) == form
    assert render.form_values({"input.amount": 300, "input.days": "5", "value": "7"}) == {
        "amount": "300", "days": "5"}
    assert json.dumps(card).count("https://evil.example/phish") <= 1  # only the raw value
