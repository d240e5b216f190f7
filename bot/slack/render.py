"""Reply model -> Block Kit, within Slack's limits, with user text escaped.

Limits (docs.slack.dev/reference/block-kit): 50 blocks per message, 100 per modal; section
text 3,000 chars; 10 fields of 2,000; header 150; button text 75, value 2,000, action_id
255; 25 elements per actions block; modal title/submit/close 24. Anything longer is cut
with a visible "…and N more" rather than rejected by Slack.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.reply import (
    Actions,
    Context,
    Divider,
    Facts,
    Form,
    Header,
    Image,
    Progress,
    Quote,
    Reply,
    Text,
)

MAX_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
MAX_BUTTONS = 25
MODAL_TITLE = 24
FALLBACK_TEXT = 3000

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)


def escape(text: str) -> str:
    """Slack's three control characters; after this no mention or link can be formed.
    Text objects are also sent ``verbatim`` so Slack does not auto-link URLs or names."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Neutral text (**bold**, `code`) -> escaped Slack mrkdwn."""
    return _BOLD.sub(lambda m: f"*{m.group(1)}*", escape(text))


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = 3000) -> dict[str, Any]:
    # plain_text is never parsed for mentions or links by Slack.
    return {"type": "plain_text", "text": cut(text, limit) or " ", "emoji": True}


def md(text: str) -> dict[str, Any]:
    """A mrkdwn text object, verbatim: Slack does not auto-link URLs or names in it."""
    return {"type": "mrkdwn", "verbatim": True, "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": md(cut(text, SECTION_TEXT))}


def _bar(percent: int, width: int = 20) -> str:
    filled = max(0, min(width, round(percent * width / 100)))
    return "█" * filled + "░" * (width - filled)


def _facts(block: Facts) -> list[dict[str, Any]]:
    out = []
    if block.title:
        out.append(_section(f"*{escape(block.title)}*"))
    items = block.items
    for start in range(0, len(items), MAX_FIELDS):
        fields = [
            md(cut(f"*{escape(f.label)}*\n{mrkdwn(f.value)}", FIELD_TEXT))
            for f in items[start : start + MAX_FIELDS]
        ]
        out.append({"type": "section", "fields": fields})
    return out


def _button(button: Any, index: int) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "button", "text": plain(button.label, BUTTON_TEXT)}
    # action_id must be unique within a block: suffix the position.
    el["action_id"] = cut(f"{button.action or 'link'}:{index}", ACTION_ID)
    if button.value:
        el["value"] = button.value[:BUTTON_VALUE]
    if button.url:
        el["url"] = button.url[:3000]
    if button.style != "default":
        el["style"] = button.style
    if button.confirm:
        el["confirm"] = {
            "title": plain("Are you sure?", 100),
            "text": plain(button.confirm, 300),
            "confirm": plain("Yes", 30),
            "deny": plain("No", 30),
        }
    return el


def block_kit(block: Any, chart_files: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One neutral block -> one or more Block Kit blocks."""
    if isinstance(block, Header):
        return [{"type": "header", "text": plain(block.text, HEADER_TEXT)}]
    if isinstance(block, Text):
        text = mrkdwn(block.text)
        return [_section(text[i : i + SECTION_TEXT]) for i in range(0, len(text), SECTION_TEXT)]
    if isinstance(block, Facts):
        return _facts(block)
    if isinstance(block, Progress):
        caption = f" · {mrkdwn(block.caption)}" if block.caption else ""
        return [
            _section(f"*{escape(block.label)}*\n`{_bar(block.percent)}` {block.percent}%{caption}")
        ]
    if isinstance(block, Actions):
        buttons = [_button(b, i) for i, b in enumerate(block.buttons[:MAX_BUTTONS])]
        return [{"type": "actions", "elements": buttons}] if buttons else []
    if isinstance(block, Context):
        return [
            {
                "type": "context",
                "elements": [md(cut(mrkdwn(block.text), 3000))],
            }
        ]
    if isinstance(block, Divider):
        return [{"type": "divider"}]
    if isinstance(block, Quote):
        lines = "\n".join(f">{escape(line)}" for line in block.text.splitlines() or [""])
        head = f"*{escape(block.author)}*\n" if block.author else ""
        return [_section(head + lines)]
    if isinstance(block, Image):
        out: dict[str, Any] = {"type": "image", "alt_text": cut(block.alt, 2000)}
        if block.title:
            out["title"] = plain(block.title, 2000)
        if block.url:
            out["image_url"] = block.url
        elif block.chart_id and chart_files and block.chart_id in chart_files:
            out["slack_file"] = {"id": chart_files[block.chart_id]}
        else:
            return [
                {
                    "type": "context",
                    "elements": [md(cut(escape(f"Chart: {block.title or block.alt}"), 3000))],
                }
            ]
        return [out]
    raise TypeError(f"unknown block {type(block).__name__}")


def fit(blocks: list[dict[str, Any]], limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    more = len(blocks) - len(kept)
    kept.append(
        {
            "type": "context",
            "elements": [md(f"…and {more} more (shortened to fit Slack)")],
        }
    )
    return kept


def message(reply: Reply, chart_files: dict[str, str] | None = None) -> dict[str, Any]:
    """A chat.postMessage / ack / chat.update body: fallback text plus blocks."""
    blocks: list[dict[str, Any]] = []
    for block in reply.blocks:
        blocks.extend(block_kit(block, chart_files))
    return {"text": cut(escape(_BOLD.sub(r"\1", reply.text)), FALLBACK_TEXT), "blocks": fit(blocks)}


def _input(field: Any) -> dict[str, Any]:
    element: dict[str, Any]
    if field.type == "select":
        element = {
            "type": "static_select",
            "action_id": "value",
            "options": [
                {"text": plain(o.label, 75), "value": o.value[:150]} for o in field.options[:100]
            ],
        }
        if field.initial:
            match = next((o for o in field.options if o.value == field.initial), None)
            if match:
                element["initial_option"] = {"text": plain(match.label, 75), "value": match.value}
    elif field.type == "number":
        element = {"type": "number_input", "action_id": "value", "is_decimal_allowed": True}
        if field.initial:
            element["initial_value"] = field.initial
    else:
        element = {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": field.type == "textarea",
        }
        if field.max_length:
            element["max_length"] = min(field.max_length, 3000)
        if field.initial:
            element["initial_value"] = field.initial
    if field.placeholder:
        element["placeholder"] = plain(field.placeholder, 150)
    block: dict[str, Any] = {
        "type": "input",
        "block_id": field.name,
        "optional": not field.required,
        "label": plain(field.label, 2000),
        "element": element,
    }
    if field.hint:
        block["hint"] = plain(field.hint, 2000)
    return block


def modal(form: Form, metadata: dict[str, Any]) -> dict[str, Any]:
    """A modal view; ``metadata`` (the form's value and where it was opened) rides along."""
    blocks: list[dict[str, Any]] = []
    if form.intro:
        blocks.append(_section(mrkdwn(form.intro)))
    blocks += [_input(f) for f in form.fields]
    return {
        "type": "modal",
        "callback_id": cut(form.action, 255),
        "private_metadata": json.dumps(metadata)[:3000],
        "title": plain(form.title, MODAL_TITLE),
        "submit": plain(form.submit_label, MODAL_TITLE),
        "close": plain("Cancel", MODAL_TITLE),
        "blocks": fit(blocks, MAX_MODAL_BLOCKS),
    }


def form_values(view: dict[str, Any]) -> dict[str, str]:
    """view.state.values[block_id]['value'] -> {field: text}."""
    out: dict[str, str] = {}
    for block_id, actions in (view.get("state", {}).get("values") or {}).items():
        state: Any = actions.get("value") or next(iter(actions.values()), {})
        if not isinstance(state, dict):
            continue
        if state.get("selected_option"):
            out[block_id] = str(state["selected_option"].get("value") or "")
        elif state.get("value") is not None:
            out[block_id] = str(state["value"])
    return out
