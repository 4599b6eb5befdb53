"""Generic OpenID Connect redirect provider with Google as its preset (plugin `google`)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from engine import ProviderSettings, hookimpl
from plugins.google.provider import OidcProvider

GOOGLE_ISSUER = "https://accounts.google.com"


class GoogleSettings(ProviderSettings):
    type: Literal["google"]
    client_id: str
    client_secret: SecretStr
    issuer: str = GOOGLE_ISSUER
    scopes: list[str] = ["openid", "email", "profile"]
    authorization_params: dict[str, str] = {}  # e.g. {hd: example.com, prompt: select_account}
    claims: dict[str, str] = {}  # local claim -> upstream claim, on top of the standard ones


@hookimpl
def tessera_register_providers(registry):
    registry.add("google", GoogleSettings, OidcProvider)
