"""Text that people wrote: what we accept of it, and what may be shown of it to others.

One place decides; the adapters apply it:

- ``received``: every adapter passes what it parsed from a request (Slack, Teams, the
  playground) through it before anything reads it. Lone surrogates (a JSON ``\\ud800``
  escape; no database or log can encode them) become U+FFFD, and NUL and the other C0
  controls except tab and newline are dropped (PostgreSQL refuses NUL in text).
- ``shown``: every renderer applies it to every string it emits. Bidirectional overrides
  and isolates (U+202A–U+202E, U+2066–U+2069) are removed: they reorder how the text
  around them is displayed, so a purpose or a name could read differently from what it
  is (a Trojan Source-style disguise on an approval card).
- ``inert``: chat markup characters that could switch formatting on (Slack mrkdwn's
  ``*bold*``, ``_italic_``, ``~strike~`` and a backtick) are replaced by look-alikes
  (∗ ˍ ∼ ˋ), unless they sit between two letters or digits, where no chat app formats
  them (snake_case, e-mail addresses stay as typed). The reply model's own markup
  (``**bold**`` and `code`) is not user text: renderers keep it and make the rest inert.
"""

from __future__ import annotations

import re
from typing import Any

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_NO_BIDI = str.maketrans("", "", BIDI_CONTROLS)
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
MARKUP_LOOKALIKES = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}
_MARKER = re.compile(r"[*_~`]")


def received(value: Any) -> Any:
    """``value`` (a string, or parsed JSON: dicts, lists, strings) with every string made
    storable and loggable text. Dict keys are cleaned too."""
    if isinstance(value, str):
        if value.isascii():
            return _CONTROLS.sub("", value) if not value.isprintable() else value
        return _CONTROLS.sub("", _SURROGATE.sub("\ufffd", value))
    if isinstance(value, dict):
        return {received(k): received(v) for k, v in value.items()}
    if isinstance(value, list):
        return [received(v) for v in value]
    return value


def shown(text: str) -> str:
    """``text`` without bidirectional overrides and isolates."""
    return text.translate(_NO_BIDI)


def inert(text: str) -> str:
    """Chat markup characters that could format, replaced by look-alikes (see above)."""
    if not _MARKER.search(text):
        return text

    def swap(m: re.Match[str]) -> str:
        i = m.start()
        inside_word = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        return m.group(0) if inside_word else MARKUP_LOOKALIKES[m.group(0)]

    return _MARKER.sub(swap, text)
