"""`tokencoach check` for Teams: acquire a token with the configured credentials."""

from __future__ import annotations

import asyncio

from botframework.connector.auth import AuthenticationConstants

from bot.runtime import Runtime
from bot.teams.auth import Settings, credentials_factory

TIMEOUT = 20.0


async def probe(rt: Runtime) -> str:
    settings = Settings(rt.env)  # a missing tenant or password is named here
    if settings.anonymous:
        return "emulator mode: no credentials to check"
    factory = credentials_factory(settings)
    credentials = await factory.create_credentials(
        settings.APP_ID, AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL, True)
    # MSAL is synchronous: keep it off the event loop.
    token = await asyncio.wait_for(asyncio.to_thread(credentials.get_access_token), TIMEOUT)
    if not token:
        raise PermissionError("no access token returned")
    tenant = f", tenant {settings.APP_TENANTID}" if settings.APP_TENANTID else ""
    return f"token acquired for app {settings.APP_ID} ({settings.APP_TYPE}{tenant})"
