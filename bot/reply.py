"""The platform-neutral reply model that handlers and jobs return.

Renderers beside each adapter (Slack Block Kit, Teams Adaptive Cards, playground HTML)
turn it into their format. Text is plain except for two bits of markup, ``**bold**`` and
```code```; every renderer escapes everything else, so user-written text can never become
a mention, a link or markup on any platform. Put someone's own words in a ``Quote``, or
pass them through ``literal()`` when they sit inside a sentence.

Replies are pydantic models so the outbox can store them as JSON and send them later.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.money import pct


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Header(_Model):
    kind: Literal["header"] = "header"
    text: str


class Text(_Model):
    """A paragraph. ``**bold**`` and ```code``` are the only markup."""

    kind: Literal["text"] = "text"
    text: str


class Fact(_Model):
    label: str
    value: str


class Facts(_Model):
    """Label/value pairs (Slack section fields, a Teams FactSet, an HTML table)."""

    kind: Literal["facts"] = "facts"
    items: list[Fact]
    title: str | None = None


class Progress(_Model):
    """A bar: ``value`` of ``total`` (integers, e.g. micro-dollars)."""

    kind: Literal["progress"] = "progress"
    label: str
    value: int
    total: int
    caption: str = ""

    @property
    def percent(self) -> int:
        return pct(self.value, self.total)


class Button(_Model):
    """An action button (``action`` + ``value``) or a link button (``url``).

    A button with both runs the tracked action first, then opens the URL.
    """

    label: str
    action: str | None = None
    value: str = ""
    url: str | None = None
    style: Literal["default", "primary", "danger"] = "default"
    confirm: str | None = None


class Actions(_Model):
    kind: Literal["actions"] = "actions"
    buttons: list[Button]


class Context(_Model):
    """Small grey print: freshness, footnotes."""

    kind: Literal["context"] = "context"
    text: str


class Image(_Model):
    """A chart stored in the database (``chart_id``) or an image at ``url``."""

    kind: Literal["image"] = "image"
    alt: str
    title: str | None = None
    chart_id: str | None = None
    url: str | None = None


class Divider(_Model):
    kind: Literal["divider"] = "divider"


class Quote(_Model):
    """Somebody's own words (a purpose, a reason, an outcome), shown set apart."""

    kind: Literal["quote"] = "quote"
    text: str
    author: str | None = None


Block = Annotated[
    Header | Text | Facts | Progress | Actions | Context | Image | Divider | Quote,
    Field(discriminator="kind"),
]


class Option(_Model):
    label: str
    value: str


class FormField(_Model):
    name: str
    label: str
    type: Literal["text", "textarea", "number", "select"] = "text"
    required: bool = True
    placeholder: str | None = None
    initial: str | None = None
    options: list[Option] = []
    max_length: int | None = None
    hint: str | None = None


class Form(_Model):
    """A small form: a Slack modal, a Teams card with inputs, an HTML form.

    Submitting it runs the action ``action`` with the field values and ``value``.
    """

    action: str
    title: str
    submit_label: str = "Submit"
    fields: list[FormField]
    value: str = ""
    intro: str | None = None


class Reply(_Model):
    """A message. ``text`` is the notification/fallback text; ``blocks`` the body.

    ``visibility='private'`` means only the asker may see it (ephemeral on Slack,
    a 1:1 message on Teams when asked in a channel).
    """

    text: str
    blocks: list[Block] = []
    visibility: Literal["private", "public"] = "private"

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Reply:
        return cls.model_validate(data)


class ActionResult(_Model):
    """What a click or form submission produces.

    - ``update``: replace the message the button was on (e.g. a decided approval card);
    - ``reply``: tell the person who clicked, privately;
    - ``form``: open a form (Slack modal, Teams card);
    - ``errors``: field name -> message, for a form that must be corrected.
    """

    update: Reply | None = None
    reply: Reply | None = None
    form: Form | None = None
    errors: dict[str, str] | None = None


def literal(text: str) -> str:
    """Someone's own words inside bot text: our markup in them stays literal.

    A zero-width space breaks ``**`` and a look-alike replaces the backtick, so the words
    read the same but can't switch bold or code on.
    """
    return text.replace("**", "*\u200b*").replace("`", "\u02cb")


def simple(text: str, *, title: str | None = None) -> Reply:
    """A one-paragraph reply, optionally under a header."""
    blocks: list[Block] = [Header(text=title)] if title else []
    blocks.append(Text(text=text))
    return Reply(text=f"{title}: {text}" if title else text, blocks=blocks)
