"""OpenID Connect upstream (Google by default); the login flow arrives with federation."""

from __future__ import annotations

from engine import ProviderContext, UpstreamError


class OidcProvider:
    kind = "redirect"

    def __init__(self, settings, context: ProviderContext):
        self.settings = settings
        self.context = context

    async def login_url(self, callback_url, state, nonce, code_challenge):
        raise UpstreamError("federation is not implemented yet")

    async def handle_callback(self, callback_url, params, nonce, code_verifier):
        raise UpstreamError("federation is not implemented yet")
