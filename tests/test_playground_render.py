"""The playground's HTML renderer against an injection corpus: whatever text goes into the
reply model, the only tags and attributes in the output are the renderer's own, no URL
but http(s) (and our signed chart path) is ever live, and the text reads as written."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from bot.playground import render
from bot.reply import (
    Actions,
    Button,
    Context,
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

CORPUS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "**x**",
    "[a](javascript:alert(1))",
    '"><svg onload=alert(1)>',
    "' onmouseover='alert(1)' x='",
    "**<b>bold?</b>**",
    "`<i>code</i>`",
    "&lt;already escaped&gt; &amp;",
    "<!channel> @here <https://evil.example|click>",
    "</p></div></article><script>alert(1)</script>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "javascript:alert(1)",
]

TAGS = {"article", "div", "span", "time", "h2", "h3", "h4", "p", "strong", "code", "dl", "dt",
        "dd", "progress", "a", "button", "small", "figure", "img", "figcaption", "blockquote",
        "footer", "hr", "form", "label", "input", "textarea", "select", "option"}
ATTRS = {"class", "data-id", "data-etag", "data-action", "data-value", "data-confirm",
         "data-percent", "data-field", "data-error-for", "aria-hidden", "aria-label", "role",
         "href", "target", "rel", "type", "disabled", "src", "alt", "value", "max", "id", "name",
         "placeholder", "maxlength", "required", "rows", "step", "selected", "for", "method",
         "novalidate", "data-close"}


def chart_src(chart_id: str) -> str:
    return f"/charts/{chart_id}.png?exp=1&sig=abc"


class Parsed(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"a comment made it into the output: {data!r}")

    def handle_decl(self, decl: str) -> None:
        raise AssertionError(f"a declaration made it into the output: {decl!r}")

    @property
    def plain(self) -> str:
        return "".join(self.text)


def assert_inert(html: str) -> Parsed:
    parsed = Parsed(html)
    for tag, attrs in parsed.tags:
        assert tag in TAGS, f"unexpected <{tag}> in {html}"
        for name, value in attrs.items():
            assert name in ATTRS, f"unexpected attribute {name}={value!r} on <{tag}>"
            if name in ("href", "src"):
                assert value and (value.startswith(("https://", "http://", "/charts/"))), value
    # Nothing the corpus wrote survived as a tag: every tag above is one of ours.
    assert "script" not in {t for t, _ in parsed.tags}
    return parsed


def everywhere(text: str) -> Reply:
    """One reply with ``text`` in every field of every block kind."""
    return Reply(text=text, blocks=[
        Header(text=text),
        Text(text=text),
        Facts(title=text, items=[Fact(label=text, value=text)]),
        Progress(label=text, value=5, total=10, caption=text),
        Actions(buttons=[Button(label=text, action=text, value=text, confirm=text),
                         Button(label=text, url=text), Button(label=text, action="x", url=text)]),
        Context(text=text),
        Image(alt=text, title=text, url=text),
        Image(alt=text, title=text, chart_id="c1"),
        Quote(text=text, author=text),
    ])


@pytest.mark.parametrize("text", CORPUS)
def test_reply_text_never_becomes_markup(text: str) -> None:
    parsed = assert_inert(render.reply_html(everywhere(text), chart_src))
    # Each piece reads as written (bold/code markers aside): it was text, and stays text.
    shown = text.replace("**", "").replace("`", "")
    assert shown in parsed.plain


@pytest.mark.parametrize("text", CORPUS)
def test_what_people_type_and_their_names_are_shown_verbatim(text: str) -> None:
    view = render.MessageView(id=1, etag=text, author=text, is_bot=False, private=True,
                              time=text, edited=True, body=render.user_text_html(text))
    parsed = assert_inert(render.message_html(view))
    assert text in parsed.plain  # even **x** stays literal in someone's own words
    assert not any(t in ("strong", "code") for t, _ in parsed.tags)


@pytest.mark.parametrize("text", CORPUS)
def test_quotes_are_literal(text: str) -> None:
    parsed = assert_inert(render.reply_html(Reply(text="q", blocks=[
        Quote(text=text, author="Purpose")]), chart_src))
    assert text in parsed.plain
    assert not any(t in ("strong", "code") for t, _ in parsed.tags)


@pytest.mark.parametrize("text", CORPUS)
def test_forms_never_become_markup(text: str) -> None:
    form = Form(action=text, title=text, submit_label=text, value=text, intro=text, fields=[
        FormField(name=text, label=text, placeholder=text, initial=text, hint=text),
        FormField(name="t", label=text, type="textarea", initial=text, max_length=10),
        FormField(name="s", label=text, type="select", initial=text,
                  options=[Option(label=text, value=text)]),
        FormField(name="n", label=text, type="number", required=False),
    ])
    parsed = assert_inert(render.form_html(form))
    values = [a.get("value") for t, a in parsed.tags if t in ("input", "option")]
    assert text in values  # attribute values round-trip exactly


def test_bold_and_code_are_the_only_markup() -> None:
    html = render.inline("a **b** `c` **<i>d</i>** [e](javascript:f)")
    assert html == ("a <strong>b</strong> <code>c</code> <strong>&lt;i&gt;d&lt;/i&gt;</strong> "
                    "[e](javascript:f)")
    # Bold and code never interleave into unbalanced tags.
    assert render.inline("**a `b** c`") == "<strong>a `b</strong> c`"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JaVaScRiPt:alert(1)",
                                 " javascript:alert(1)", "data:text/html,<script>x</script>",
                                 "vbscript:x", "//evil.example/x", "/relative", "https://u:p@h/",
                                 "http://", "file:///etc/passwd"])
def test_only_http_urls_become_links_or_images(url: str) -> None:
    html = render.reply_html(Reply(text="x", blocks=[
        Actions(buttons=[Button(label="Open", url=url)]), Image(alt="a", url=url)]), chart_src)
    parsed = assert_inert(html)
    assert not [a for t, a in parsed.tags if "href" in a or "src" in a]


def test_link_buttons_open_in_a_new_tab_without_an_opener() -> None:
    html = render.reply_html(Reply(text="x", blocks=[Actions(buttons=[Button(
        label="Open tutorial", action="tips.open", value="t1",
        url="https://learn.example/a?b=1&c=2")])]), chart_src)
    (attrs,) = [a for t, a in Parsed(html).tags if t == "a"]
    assert attrs["href"] == "https://learn.example/a?b=1&c=2"
    assert attrs["target"] == "_blank" and attrs["rel"] == "noopener noreferrer"
    assert attrs["data-action"] == "tips.open" and attrs["data-value"] == "t1"


def test_progress_is_a_real_bar_clamped_to_its_total() -> None:
    over = Parsed(render.reply_html(Reply(text="p", blocks=[
        Progress(label="spent", value=150, total=100)]), chart_src))
    bar = next(a for t, a in over.tags if t == "progress")
    assert bar["value"] == "100" and bar["max"] == "100" and bar["data-percent"] == "150"
    assert any("m-progress-over" in (a.get("class") or "") for _, a in over.tags)
    empty = Parsed(render.reply_html(Reply(text="p", blocks=[
        Progress(label="spent", value=0, total=0)]), chart_src))
    assert next(a for t, a in empty.tags if t == "progress")["value"] == "0"


def test_a_reply_without_blocks_shows_its_text() -> None:
    parsed = assert_inert(render.reply_html(Reply(text="Hello **there** <b>"), chart_src))
    assert parsed.plain == "Hello there <b>"
