"""Bot Framework authentication from the environment.

- ``MICROSOFT_APP_ID`` set: requests must carry a valid Bot Framework JWT (else 401) and
  outgoing calls carry a token for the app (single-tenant by default:
  ``MICROSOFT_APP_TENANT_ID`` is then required).
- No app id and ``TOKENCOACH_TEAMS_EMULATOR=1``: the SDK's anonymous mode, for Microsoft's
  Agents Playground and the tests (`serve` refuses to bind it off loopback).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botbuilder.integration.aiohttp import (
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botframework.connector.auth import (
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)

from bot.config.env import Env

APP_TYPES = {"singletenant": "SingleTenant", "multitenant": "MultiTenant",
             "userassignedmsi": "UserAssignedMSI"}

# scope -> access token. Tests install one to stand in for Microsoft Entra ID (MSAL only
# talks to https authorities it can discover, so no loopback token server will do).
TokenSource = Callable[[str], str]
_token_source: TokenSource | None = None


class TeamsConfigError(ValueError):
    pass


def set_token_source(source: TokenSource | None) -> None:
    global _token_source
    _token_source = source


class Settings:
    """The attribute names ConfigurationBotFrameworkAuthentication reads."""

    def __init__(self, env: Env):
        self.APP_ID = env.microsoft_app_id or ""
        self.APP_PASSWORD = env.microsoft_app_password or ""
        self.APP_TENANTID = env.microsoft_app_tenant_id or ""
        kind = (env.microsoft_app_type or "SingleTenant").replace("-", "").replace("_", "")
        if kind.lower() not in APP_TYPES:
            raise TeamsConfigError(f"MICROSOFT_APP_TYPE must be one of "
                                   f"{', '.join(APP_TYPES.values())}, not {kind!r}")
        self.APP_TYPE = APP_TYPES[kind.lower()]
        if not self.APP_ID:
            self.APP_TYPE = "MultiTenant"  # the SDK's anonymous mode needs no tenant
            if not env.teams_emulator:
                raise TeamsConfigError("set MICROSOFT_APP_ID (or TOKENCOACH_TEAMS_EMULATOR=1 "
                                       "for the unauthenticated local mode)")
            return
        if self.APP_TYPE != "MultiTenant" and not self.APP_TENANTID:
            raise TeamsConfigError(f"MICROSOFT_APP_TENANT_ID is required for {self.APP_TYPE}")
        if self.APP_TYPE != "UserAssignedMSI" and not self.APP_PASSWORD:
            raise TeamsConfigError("MICROSOFT_APP_PASSWORD is not set")

    @property
    def anonymous(self) -> bool:
        return not self.APP_ID


class _FixedTokenCredentials(MicrosoftAppCredentials):
    def __init__(self, app_id: str, oauth_scope: str, source: TokenSource):
        super().__init__(app_id, "", oauth_scope=oauth_scope)
        self._source = source

    def get_access_token(self, force_refresh: bool = False) -> str:
        return self._source(self.oauth_scope)


class _InjectedFactory(ServiceClientCredentialsFactory):
    def __init__(self, app_id: str, source: TokenSource):
        self.app_id, self.source = app_id, source

    async def is_valid_app_id(self, app_id: str) -> bool:
        return app_id == self.app_id

    async def is_authentication_disabled(self) -> bool:
        return False

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Any:
        if app_id != self.app_id:
            raise PermissionError("Invalid app_id")
        return _FixedTokenCredentials(app_id, oauth_scope, self.source)


class _Reused(ServiceClientCredentialsFactory):
    """botbuilder makes new credentials, so a new MSAL app with an empty token cache, for
    every turn and every proactive send: each would fetch a token from Entra ID
    synchronously, on the event loop. Reusing them reuses MSAL's cache (~1 fetch/hour)."""

    def __init__(self, inner: ServiceClientCredentialsFactory):
        self.inner = inner
        self._made: dict[tuple[str, str, str, bool], Any] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(await self.inner.is_valid_app_id(app_id))

    async def is_authentication_disabled(self) -> bool:
        return bool(await self.inner.is_authentication_disabled())

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Any:
        key = (app_id, oauth_scope, login_endpoint, validate_authority)
        if key not in self._made:
            self._made[key] = await self.inner.create_credentials(
                app_id, oauth_scope, login_endpoint, validate_authority)
        return self._made[key]


def credentials_factory(settings: Settings) -> ServiceClientCredentialsFactory:
    if _token_source is not None and not settings.anonymous:
        return _InjectedFactory(settings.APP_ID, _token_source)
    return _Reused(ConfigurationServiceClientCredentialFactory(settings))


def authentication(env: Env) -> tuple[Settings, ConfigurationBotFrameworkAuthentication]:
    settings = Settings(env)
    auth = ConfigurationBotFrameworkAuthentication(
        settings, credentials_factory=credentials_factory(settings))
    return settings, auth
