"""Finding approval cards and their buttons in what the fake Slack received."""

from __future__ import annotations

from typing import Any

from tests.helpers.slack import block_texts


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Button label -> element, for a posted or updated message."""
    out = {}
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":
            for el in block["elements"]:
                out[el["text"]["text"]] = el
    return out


def text_of(message: dict[str, Any]) -> str:
    return " ".join(block_texts(message.get("blocks") or [])) + " " + message.get("text", "")


def card_in(fake: Any, email: str, request_id: int) -> dict[str, Any]:
    """The approval card for ``request_id`` in ``email``'s DM."""
    for message in fake.messages(fake.dm_channel(email)):
        if f"Sandbox budget request #{request_id}" in text_of(message):
            return message
    raise AssertionError(f"no card for request #{request_id} in {email}'s DM")


def latest_in(fake: Any, email: str) -> dict[str, Any]:
    return fake.messages(fake.dm_channel(email))[-1]
