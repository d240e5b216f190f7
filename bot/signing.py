"""Signed, expiring links (chart images that Teams and the playground fetch)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from bot.runtime import Runtime

_PROCESS_KEY = secrets.token_bytes(32)


def _key(rt: Runtime) -> bytes:
    env = rt.env
    # Replicas must agree on the key: prefer an explicit one, else derive from a shared
    # secret; a single local process can fall back to a random key.
    base = env.url_signing_key or env.microsoft_app_password or env.slack_signing_secret
    if base:
        return hashlib.sha256(b"tokencoach-links:" + base.encode()).digest()
    return _PROCESS_KEY


def mac(rt: Runtime, text: str) -> str:
    return hmac.new(_key(rt), text.encode(), hashlib.sha256).hexdigest()[:32]


def sign(rt: Runtime, path: str, *, ttl: timedelta, now: datetime | None = None) -> str:
    expires = int(((now or rt.now()) + ttl).timestamp())
    mac = hmac.new(_key(rt), f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{path}?exp={expires}&sig={mac}"


def verify(
    rt: Runtime, path: str, exp: str | None, sig: str | None, now: datetime | None = None
) -> bool:
    if not exp or not sig or not exp.isdigit():
        return False
    if int(exp) < int((now or rt.now()).timestamp()):
        return False
    mac = hmac.new(_key(rt), f"{path}|{exp}".encode(), hashlib.sha256).hexdigest()[:32]
    return hmac.compare_digest(mac, sig)
