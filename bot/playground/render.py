"""Reply model -> the playground's HTML.

Every piece of text is escaped first (``html.escape``, quotes included); only then is the
model's one bit of markup, ``**bold**``, turned into ``<strong>`` (and ``code``
into ``<code>``, as the Slack renderer does), so the only tags in the output are the ones
written here. Someone's own words (typed messages, quotes, form values) never get even
that. URLs are kept only when they are http(s); the page's Content-Security-Policy is a
second line of defence, not the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

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
from bot.usertext import shown

ChartSrc = Callable[[str], str]

# Applied to already-escaped text, which contains no '<', '>', '"' or "'" of its own.
# One pass, so a bold run and a code span can never interleave into unbalanced tags.
_MARKUP = re.compile(r"\*\*(?P<bold>.+?)\*\*|`(?P<code>[^`\n]+)`", re.S)


def esc(text: str) -> str:
    """HTML-escaped, without bidi controls (bot/usertext.py)."""
    return escape(shown(text), quote=True)


def inline(text: str) -> str:
    """Neutral text -> HTML: escaped, then **bold** and `code`."""

    def tag(m: re.Match[str]) -> str:
        if m.group("bold") is not None:
            return f"<strong>{m.group('bold')}</strong>"
        return f"<code>{m.group('code')}</code>"

    return _MARKUP.sub(tag, esc(text))


def safe_url(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL without credentials, else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return url.strip()


def _attrs(**values: str | None) -> str:
    """HTML attributes, escaped; ``data_x`` becomes ``data-x``; None values are left out."""
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in values.items() if v is not None
    )


# --- blocks ----------------------------------------------------------------------------


def _header(block: Header) -> str:
    return f'<h3 class="m-header">{esc(block.text)}</h3>'


def _text(block: Text) -> str:
    return f'<p class="m-text">{inline(block.text)}</p>'


def _facts(block: Facts) -> str:
    title = f'<h4 class="m-facts-title">{esc(block.title)}</h4>' if block.title else ""
    items = "".join(
        f'<div class="m-fact"><dt>{esc(f.label)}</dt><dd>{inline(f.value)}</dd></div>'
        for f in block.items
    )
    return f'{title}<dl class="m-facts">{items}</dl>'


def _progress(block: Progress) -> str:
    shown = max(0, min(block.value, block.total)) if block.total > 0 else 0
    over = " m-progress-over" if block.total > 0 and block.value > block.total else ""
    caption = (
        f'<span class="m-progress-caption">{inline(block.caption)}</span>' if block.caption else ""
    )
    total = str(max(block.total, 1))
    return (
        f'<div class="m-progress{over}">'
        f'<div class="m-progress-label"><strong>{esc(block.label)}</strong>'
        f'<span class="m-progress-pct">{block.percent}%</span></div>'
        f"<progress{_attrs(value=str(shown), max=total, data_percent=str(block.percent))}"
        f' aria-label="{esc(block.label)}">{block.percent}%</progress>{caption}</div>'
    )


def _button(button: Button) -> str:
    cls = f"btn btn-{button.style}"
    common = dict(
        data_action=button.action,
        data_value=button.value if button.action else None,
        data_confirm=button.confirm,
    )
    url = safe_url(button.url)
    if url:
        # A real link opens the tab (no popup blocker); the script records the action.
        attrs = _attrs(class_=cls, href=url, target="_blank", rel="noopener noreferrer", **common)
        return f"<a{attrs}>{esc(button.label)} ↗</a>"
    if button.action:
        return f'<button type="button"{_attrs(class_=cls, **common)}>{esc(button.label)}</button>'
    return f'<button type="button" disabled{_attrs(class_=cls)}>{esc(button.label)}</button>'


def _actions(block: Actions) -> str:
    return f'<div class="m-actions">{"".join(_button(b) for b in block.buttons)}</div>'


def _context(block: Context) -> str:
    return f'<p class="m-context">{inline(block.text)}</p>'


def _image(block: Image, chart_src: ChartSrc) -> str:
    src = chart_src(block.chart_id) if block.chart_id else safe_url(block.url)
    title = f"<figcaption>{esc(block.title)}</figcaption>" if block.title else ""
    if not src:
        return f'<p class="m-context">Chart: {esc(block.title or block.alt)}</p>'
    return f'<figure class="m-image"><img{_attrs(src=src, alt=block.alt)}>{title}</figure>'


def _quote(block: Quote) -> str:
    # Somebody's own words: escaped and shown as written, no markup at all.
    author = f"<footer>{esc(block.author)}</footer>" if block.author else ""
    return f'<blockquote class="m-quote">{author}<p>{esc(block.text)}</p></blockquote>'


def block_html(block: Block, chart_src: ChartSrc) -> str:
    if isinstance(block, Header):
        return _header(block)
    if isinstance(block, Text):
        return _text(block)
    if isinstance(block, Facts):
        return _facts(block)
    if isinstance(block, Progress):
        return _progress(block)
    if isinstance(block, Actions):
        return _actions(block)
    if isinstance(block, Context):
        return _context(block)
    if isinstance(block, Image):
        return _image(block, chart_src)
    if isinstance(block, Divider):
        return '<hr class="m-divider">'
    if isinstance(block, Quote):
        return _quote(block)
    raise TypeError(f"unknown block {type(block).__name__}")


def reply_html(reply: Reply, chart_src: ChartSrc) -> str:
    """The body of a bot message: its blocks, or its fallback text when it has none."""
    if not reply.blocks:
        return f'<p class="m-text">{inline(reply.text)}</p>'
    return "".join(block_html(b, chart_src) for b in reply.blocks)


def user_text_html(text: str) -> str:
    """What a person typed: shown exactly as written."""
    return f'<p class="m-text m-typed">{esc(text)}</p>'


# --- a whole message -------------------------------------------------------------------


@dataclass(frozen=True)
class MessageView:
    id: int
    etag: str
    author: str  # display name
    is_bot: bool
    private: bool  # only the viewer sees it
    time: str  # already formatted for the viewer
    edited: bool
    body: str  # HTML from reply_html / user_text_html


def message_html(m: MessageView) -> str:
    cls = (
        "msg" + (" msg-bot" if m.is_bot else " msg-person") + (" msg-private" if m.private else "")
    )
    avatar = "tc" if m.is_bot else "".join(w[:1] for w in m.author.split()[:2]).upper()
    badge = '<span class="badge badge-app">APP</span>' if m.is_bot else ""
    edited = '<span class="msg-edited">(edited)</span>' if m.edited else ""
    private = '<div class="msg-private-note">Only visible to you</div>' if m.private else ""
    return (
        f"<article{_attrs(class_=cls, data_id=str(m.id), data_etag=m.etag)}>"
        f'<div class="avatar" aria-hidden="true">{esc(avatar)}</div>'
        f'<div class="msg-main">{private}<div class="msg-meta">'
        f'<span class="msg-author">{esc(m.author)}</span>{badge}'
        f"<time>{esc(m.time)}</time>{edited}</div>"
        f'<div class="msg-body">{m.body}</div></div></article>'
    )


# --- forms -----------------------------------------------------------------------------


def _field(field: FormField) -> str:
    ident = f"f-{field.name}"
    common = _attrs(
        id=ident,
        name=field.name,
        placeholder=field.placeholder,
        maxlength=str(field.max_length) if field.max_length else None,
    )
    required = " required" if field.required else ""
    initial = field.initial or ""
    if field.type == "textarea":
        control = f'<textarea{common}{required} rows="3">{esc(initial)}</textarea>'
    elif field.type == "select":
        options = "".join(
            f"<option{_attrs(value=o.value)}{' selected' if o.value == initial else ''}>"
            f"{esc(o.label)}</option>"
            for o in field.options
        )
        control = f"<select{common}{required}>{options}</select>"
    else:
        kind = "number" if field.type == "number" else "text"
        step = ' step="any"' if kind == "number" else ""
        control = f'<input type="{kind}"{step}{common}{required}{_attrs(value=initial or None)}>'
    optional = '<span class="optional">optional</span>' if not field.required else ""
    hint = f'<small class="hint">{esc(field.hint)}</small>' if field.hint else ""
    return (
        f'<div class="field"{_attrs(data_field=field.name)}>'
        f'<label for="{esc(ident)}">{esc(field.label)} {optional}</label>{control}{hint}'
        f'<small class="field-error" role="alert"{_attrs(data_error_for=field.name)}>'
        "</small></div>"
    )


def form_html(form: Form) -> str:
    """A dialog form; submitting it runs ``form.action`` with the values and ``form.value``."""
    intro = f'<p class="form-intro">{inline(form.intro)}</p>' if form.intro else ""
    fields = "".join(_field(f) for f in form.fields)
    return (
        f'<form method="dialog" class="pg-form"'
        f"{_attrs(data_action=form.action, data_value=form.value)} novalidate>"
        f"<h2>{esc(form.title)}</h2>{intro}"
        '<small class="field-error form-error" role="alert" data-error-for=""></small>'
        f'{fields}<div class="form-buttons">'
        '<button type="button" class="btn btn-default" data-close>Cancel</button>'
        f'<button type="submit" class="btn btn-primary">{esc(form.submit_label)}</button>'
        "</div></form>"
    )
