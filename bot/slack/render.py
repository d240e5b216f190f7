"""Reply model -> Block Kit, within Slack's limits, with user text escaped.

Limits (docs.slack.dev/reference/block-kit): 50 blocks per message, 100 per modal; section
text 3,000 chars; 10 fields of 2,000; header 150; button text 75, value 2,000, action_id
255, url 3,000; image_url 3,000; text objects at least 1 character; 25 elements per
actions block; modal title/submit/close 24, private_metadata 3,000. Anything longer is
cut with a visible "…and N more" (never inside an escaped ``&amp;``) rather than rejected
by Slack; a URL too long to send is left out, never cut.

Every text is made inert (bot/usertext.py): Slack's control characters become entities,
mrkdwn markup a person typed (``*bold*``, ``_it_``, ``~st~``, a line starting with ``>``)
stays literal, bidi controls are removed. Only the model's ``**bold**`` and `code` format.
"""

from __future__ import annotations

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
from bot.usertext import inert, shown

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
MAX_URL = 3000
PRIVATE_METADATA = 3000

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_MARKUP = re.compile(r"\*\*(?P<bold>.+?)\*\*|`(?P<code>[^`\n]+)`", re.S)
_QUOTE_START = re.compile(r"(?m)^&gt;")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


def escape(text: str) -> str:
    """Plain text -> inert mrkdwn: Slack's three control characters as entities (no
    mention or link can form), markup characters as look-alikes, no blockquote, no bidi
    controls. Text objects are also sent ``verbatim`` so Slack does not auto-link."""
    text = inert(shown(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _QUOTE_START.sub("\u00ad&gt;", text)  # a soft hyphen: no quote, nothing visible


def mrkdwn(text: str) -> str:
    """Neutral text (**bold**, `code`) -> Slack mrkdwn; everything else inert."""
    out, pos = [], 0
    for m in _MARKUP.finditer(text):
        out.append(escape(text[pos : m.start()]))
        if m.group("bold") is not None:
            out.append(f"*{escape(m.group('bold'))}*")
        else:  # nothing formats inside code: only the entities and bidi matter
            code = shown(m.group("code"))
            out.append("`" + code.replace("&", "&amp;").replace("<", "&lt;")
                       .replace(">", "&gt;") + "`")
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def _end(text: str, end: int) -> int:
    """``end``, moved back to before an entity it would cut in half (``&am|p;``)."""
    tail = _ENTITY_TAIL.search(text, max(end - 4, 0), end)
    return tail.start() if tail and tail.start() > 0 else end


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: _end(text, limit - 1)] + "…"


def pieces(text: str, limit: int) -> list[str]:
    """Escaped text in pieces of at most ``limit`` characters, never splitting an entity."""
    out = []
    while text:
        end = _end(text, limit) if len(text) > limit else len(text)
        out.append(text[:end])
        text = text[end:]
    return out


def plain(text: str, limit: int = 3000) -> dict[str, Any]:
    # plain_text is never parsed for mentions, links or markup by Slack.
    return {"type": "plain_text", "text": cut(shown(text), limit) or " ", "emoji": True}


def md(text: str) -> dict[str, Any]:
    """A mrkdwn text object, verbatim: Slack does not auto-link URLs or names in it.
    Slack refuses an empty one."""
    return {"type": "mrkdwn", "verbatim": True, "text": text if text.strip() else " "}


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
    if button.url and len(button.url) <= MAX_URL:  # a cut URL would lead elsewhere
        el["url"] = button.url
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
        return [_section(piece) for piece in pieces(mrkdwn(block.text), SECTION_TEXT)
                if piece.strip()]
    if isinstance(block, Facts):
        return _facts(block)
    if isinstance(block, Progress):
        caption = f" · {mrkdwn(block.caption)}" if block.caption else ""
        return [
            _section(f"*{escape(block.label)}*\n`{_bar(block.percent)}` {block.percent}%{caption}")
        ]
    if isinstance(block, Actions):
        usable = [b for b in block.buttons if b.action or (b.url and len(b.url) <= MAX_URL)]
        buttons = [_button(b, i) for i, b in enumerate(usable[:MAX_BUTTONS])]
        return [{"type": "actions", "elements": buttons}] if buttons else []
    if isinstance(block, Context):
        if not block.text.strip():
            return []  # Slack refuses an empty context text
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
        out: dict[str, Any] = {"type": "image", "alt_text": cut(shown(block.alt), 2000)}
        if block.title:
            out["title"] = plain(block.title, 2000)
        if block.url and len(block.url) <= MAX_URL:
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
    text = cut(escape(_BOLD.sub(r"\1", reply.text)), FALLBACK_TEXT)
    return {"text": text if text.strip() else " ", "blocks": fit(blocks)}


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


def modal(form: Form, metadata: str) -> dict[str, Any]:
    """A modal view; ``metadata`` is the key of its state (bot/slack/views.py)."""
    if len(metadata) > PRIVATE_METADATA:
        raise ValueError("private_metadata holds a key, not the state itself")
    blocks: list[dict[str, Any]] = []
    if form.intro:
        blocks.append(_section(mrkdwn(form.intro)))
    blocks += [_input(f) for f in form.fields]
    return {
        "type": "modal",
        "callback_id": cut(form.action, 255),
        "private_metadata": metadata,
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
