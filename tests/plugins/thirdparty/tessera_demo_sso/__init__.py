"""A third-party provider plugin, as another distribution would ship it: it imports only
the engine's public API and registers through the `tessera` entry-point group."""

from __future__ import annotations

from typing import Literal

from engine import ExternalIdentity, ProviderContext, ProviderSettings, UpstreamError, hookimpl


class DemoSsoSettings(ProviderSettings):
    type: Literal["demo-sso"]
    authorize_url: str
    tenant: str = "main"


class DemoSsoProvider:
    kind = "redirect"

    def __init__(self, settings: DemoSsoSettings, context: ProviderContext):
        self.settings = settings
        self.context = context

    async def login_url(self, callback_url: str, state: str, nonce: str, code_challenge: str) -> str:
        return f"{self.settings.authorize_url}?state={state}&redirect_uri={callback_url}"

    async def handle_callback(self, callback_url, params, nonce, code_verifier) -> ExternalIdentity:
        raise UpstreamError("demo provider has no upstream")


@hookimpl
def tessera_register_providers(registry):
    registry.add("demo-sso", DemoSsoSettings, DemoSsoProvider)
