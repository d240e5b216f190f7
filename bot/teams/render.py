"""Reply model -> Adaptive Card 1.5, within Teams' size limit, with user text made inert.

Text goes into RichTextBlock/TextRun elements, which Adaptive Cards never parse as
markdown, so ``**bold**`` (the model's only markup) becomes a bold run and nothing a user
writes can become a link. The few markdown-capable properties we use (FactSet) get the
same neutralizer as every other string: ``[text](url)`` and ``<at>``/``<http…>`` are broken
with an invisible zero-width space, the card never carries mention entities, and in fact
values markdown emphasis a person typed stays literal (bot/usertext.py ``inert``). Every
string loses bidi controls (``shown``).

Buttons are ``Action.Execute`` (Universal Actions: an ``adaptiveCard/action`` invoke whose
answer can replace the card in place) with an ``Action.Submit`` fallback (a message
activity with ``value``) for clients without it. Teams documents limits from ~28 KB to
~100 KB; we budget the lowest (28 KB of card JSON) and cut with a visible "…and N more".
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.reply import (
    Actions,
    Block,
    Button,
    Context,
    Divider,
    Facts,
    Form,
    FormField,
    Header,
    Image,
    Progress,
    Quote,
    Reply,
    Text,
)
from bot.usertext import inert, shown

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
MAX_CARD_BYTES = 28_000
TEXT_LIMIT = 3000
TITLE_LIMIT = 75
INPUT_PREFIX = "input."
FORM_KEY = "form"
ZWSP = "\u200b"

_LINK = re.compile(r"\]\s*[(\[:]")
_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_RUNS = re.compile(r"\*\*(.+?)\*\*|`([^`\n]+)`", re.S)
_STYLES = {"primary": "positive", "danger": "destructive"}
_WHOLE = re.compile(r"-?[0-9]{1,15}")  # what Input.Number may show as its value


def neutral(text: str) -> str:
    """Break markdown links/references and tags (``<at>``, ``<https://…>``) invisibly;
    drop bidi controls."""
    return _TAG.sub("<" + ZWSP, _LINK.sub(lambda m: "]" + ZWSP + m.group(0)[1:], shown(text)))


def fact_value(text: str) -> str:
    """A FactSet value (markdown): the model's **bold** kept, anything else inert."""
    out, pos = [], 0
    for m in _RUNS.finditer(text):
        out.append(inert(text[pos : m.start()]))
        out.append(f"**{inert(m.group(1))}**" if m.group(1) is not None else inert(m.group(2)))
        pos = m.end()
    out.append(inert(text[pos:]))
    return neutral("".join(out))


def plain(text: str) -> str:
    """The model's text without its markup, neutralized (notification summaries)."""
    return neutral(_RUNS.sub(lambda m: m.group(1) or m.group(2), text))


def cut(text: str, limit: int) -> str:
    text = shown(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def runs(line: str, **style: Any) -> list[dict[str, Any]]:
    """One line of model text -> TextRuns (bold and `code` become run styles)."""
    out: list[dict[str, Any]] = []
    pos = 0
    for m in _RUNS.finditer(line):
        if m.start() > pos:
            out.append({"type": "TextRun", "text": neutral(line[pos : m.start()]), **style})
        if m.group(1) is not None:
            out.append({"type": "TextRun", "text": neutral(m.group(1)), **style,
                        "weight": "bolder"})
        else:
            out.append({"type": "TextRun", "text": neutral(m.group(2)), **style,
                        "fontType": "monospace"})
        pos = m.end()
    if pos < len(line) or not out:
        out.append({"type": "TextRun", "text": neutral(line[pos:]) or " ", **style})
    return out


def paragraph(text: str, *, literal: bool = False, **style: Any) -> list[dict[str, Any]]:
    """Model text -> one RichTextBlock per line (``literal``: someone's own words, no markup)."""
    lines = cut(text, TEXT_LIMIT).split("\n") or [""]
    out = []
    for i, line in enumerate(lines):
        inlines = [{"type": "TextRun", "text": neutral(line) or " ", **style}] if literal \
            else runs(line, **style)
        block: dict[str, Any] = {"type": "RichTextBlock", "inlines": inlines}
        if i:
            block["spacing"] = "none"
        out.append(block)
    return out


def _bar(percent: int, width: int = 20) -> str:
    filled = max(0, min(width, round(percent * width / 100)))
    return "█" * filled + "░" * (width - filled)


def _execute(action: str, title: str, data: dict[str, Any], style: str = "default",
             ) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Action.Execute", "title": cut(title, TITLE_LIMIT),
                           "verb": action, "data": data}
    submit: dict[str, Any] = {"type": "Action.Submit", "title": out["title"],
                              "data": {"verb": action, **data}}
    if style in _STYLES:
        out["style"] = submit["style"] = _STYLES[style]
    out["fallback"] = submit
    return out


def action(button: Button) -> dict[str, Any]:
    if button.url:
        # A tracked link (action + url) can't run the action too: Adaptive Cards have no
        # open-and-notify action, so Teams opens the link only.
        return {"type": "Action.OpenUrl", "title": cut(button.label, TITLE_LIMIT),
                "url": button.url}
    execute = _execute(button.action or "noop", button.label, {"value": button.value},
                       button.style)
    if not button.confirm:
        return execute
    # No confirm dialogs in Adaptive Cards: the button reveals the question and a "Yes".
    yes = cut(f"Yes, {button.label.lower()}", TITLE_LIMIT)
    execute["title"] = execute["fallback"]["title"] = yes
    confirm = {"type": "AdaptiveCard", "body": paragraph(button.confirm), "actions": [execute]}
    return {"type": "Action.ShowCard", "title": cut(button.label, TITLE_LIMIT), "card": confirm}


def element(block: Block, images: dict[str, str]) -> list[dict[str, Any]]:
    """One neutral block -> card elements."""
    if isinstance(block, Header):
        return paragraph(block.text, literal=True, size="large", weight="bolder")
    if isinstance(block, Text):
        return paragraph(block.text)
    if isinstance(block, Facts):
        out = paragraph(block.title, literal=True, weight="bolder") if block.title else []
        facts = [{"title": cut(plain(f.label), 200),
                  "value": cut(fact_value(f.value), TEXT_LIMIT)} for f in block.items]
        return [*out, {"type": "FactSet", "facts": facts}] if facts else out
    if isinstance(block, Progress):
        caption = f" · {block.caption}" if block.caption else ""
        return [*paragraph(block.label, literal=True, weight="bolder"),
                {"type": "RichTextBlock", "spacing": "none", "inlines": [
                    {"type": "TextRun", "text": _bar(block.percent), "fontType": "monospace"},
                    *runs(f" {block.percent}%{caption}")]}]
    if isinstance(block, Actions):
        # Teams shows at most six actions in a set; the handlers never offer more.
        actions = [action(b) for b in block.buttons[:6]]
        return [{"type": "ActionSet", "actions": actions}] if actions else []
    if isinstance(block, Context):
        return paragraph(block.text, size="small", isSubtle=True)
    if isinstance(block, Quote):
        items = paragraph(block.author, literal=True, weight="bolder", size="small") \
            if block.author else []
        items += paragraph(block.text, literal=True)
        return [{"type": "Container", "style": "emphasis", "items": items}]
    if isinstance(block, Image):
        src = block.url or images.get(block.chart_id or "")
        title = paragraph(block.title, literal=True, weight="bolder") if block.title else []
        if not src:
            return paragraph(f"Chart: {block.title or block.alt}", literal=True, isSubtle=True)
        return [*title, {"type": "Image", "url": src, "altText": cut(neutral(block.alt), 1000),
                         "size": "stretch"}]
    if isinstance(block, Divider):
        return [{"type": "Divider"}]  # a marker: the next element gets a separator line
    raise TypeError(f"unknown block {type(block).__name__}")


def _separate(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    line = False
    for el in elements:
        if el["type"] == "Divider":
            line = True
            continue
        if line:
            el = {**el, "separator": True}
            line = False
        out.append(el)
    return out


def size(card: dict[str, Any]) -> int:
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode())


def card(elements: list[dict[str, Any]], *, fallback_text: str = "",
         limit: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """A top-level card; if it is too big, keep a prefix and say how much was left out."""
    body = _separate(elements) or [{"type": "TextBlock", "text": " "}]
    out: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION,
                           "body": body}
    if fallback_text:
        out["fallbackText"] = cut(plain(fallback_text), 500)
    if size(out) <= limit:
        return out
    lo, hi = 0, len(body)  # binary search the longest prefix that fits with the note
    while lo < hi:
        mid = (lo + hi + 1) // 2
        trial = {**out, "body": [*body[:mid], _more(len(body) - mid)]}
        lo, hi = (mid, hi) if size(trial) <= limit else (lo, mid - 1)
    return {**out, "body": [*body[:lo], _more(len(body) - lo)]}


def _more(n: int) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": f"…and {n} more (shortened to fit Teams)", "isSubtle": True,
         "italic": True}]}


def reply_card(reply: Reply, images: dict[str, str] | None = None, *,
               limit: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """The card for a reply. Inline (data URI) images are dropped for a text line rather
    than let the card outgrow the limit."""
    images = images or {}
    elements = [el for block in reply.blocks for el in element(block, images)]
    if not elements:
        elements = paragraph(reply.text)
    built = card(elements, fallback_text=reply.text, limit=limit)
    inline = {k: v for k, v in images.items() if v.startswith("data:")}
    if inline and size(card(elements, fallback_text=reply.text, limit=10**9)) > limit:
        linked = {k: v for k, v in images.items() if k not in inline}
        return reply_card(reply, linked, limit=limit)
    return built


# --- forms -------------------------------------------------------------------------------


def _input(field: FormField, value: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {"id": INPUT_PREFIX + field.name, "label": cut(field.label, 200),
                            "isRequired": field.required}
    if field.required:
        base["errorMessage"] = f"{field.label} is required"
    if field.placeholder and field.type != "select":
        base["placeholder"] = cut(field.placeholder, 200)
    if field.type == "select":
        el = {"type": "Input.ChoiceSet", **base, "style": "compact",
              "choices": [{"title": cut(o.label, 200), "value": o.value}
                          for o in field.options[:100]]}
        if value is not None:
            el["value"] = value
        return el
    if field.type == "number" and (value is None or _WHOLE.fullmatch(value)):
        el = {"type": "Input.Number", **base}
        if value:
            el["value"] = int(value)
        return el
    el = {"type": "Input.Text", **base, "isMultiline": field.type == "textarea"}
    if field.max_length:
        el["maxLength"] = field.max_length
    if value is not None:
        el["value"] = value
    return el


def form_card(form: Form, *, values: dict[str, str] | None = None,
              errors: dict[str, str] | None = None) -> dict[str, Any]:
    """A form as a card: inputs and one submit. The form itself rides in the action data,
    so a submission with errors can be answered with the same card showing them."""
    values, errors = values or {}, errors or {}
    names = {f.name for f in form.fields}
    elements = paragraph(form.title, literal=True, size="large", weight="bolder")
    if form.intro:
        elements += paragraph(form.intro)
    for name, message in errors.items():
        if name not in names:
            elements += paragraph(message, literal=True, color="attention")
    for f in form.fields:
        elements.append(_input(f, values.get(f.name, f.initial)))
        if f.name in errors:
            elements += paragraph(errors[f.name], literal=True, color="attention",
                                  size="small")
        elif f.hint:
            elements += paragraph(f.hint, literal=True, size="small", isSubtle=True)
    data = {"value": form.value, FORM_KEY: form.model_dump(mode="json")}
    elements.append({"type": "ActionSet", "actions": [
        _execute(form.action, form.submit_label, data, "primary")]})
    return card(elements, fallback_text=form.title)


def form_values(data: dict[str, Any]) -> dict[str, str]:
    """Input values from an Execute/Submit payload. Numbers become their literal text
    (a client may send a JSON number); money is parsed from text by the handlers."""
    out = {}
    for key, value in data.items():
        if isinstance(key, str) and key.startswith(INPUT_PREFIX) and value is not None:
            out[key[len(INPUT_PREFIX):]] = value if isinstance(value, str) else json.dumps(value)
    return out


def form_of(data: dict[str, Any]) -> Form | None:
    raw = data.get(FORM_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        return Form.model_validate(raw)
    except ValueError:
        return None


def message(payload: dict[str, Any], summary: str) -> dict[str, Any]:
    """A message activity (as JSON) carrying one card."""
    return {"type": "message", "summary": cut(plain(summary), 300),
            "attachments": [{"contentType": CARD_TYPE, "content": payload}]}


def text_card(text: str) -> dict[str, Any]:
    return card(paragraph(text), fallback_text=text)
