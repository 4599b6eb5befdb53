"""A generic OAuth 2 sign-in method (provider type `oauth2`): authorization URL, token URL
and a userinfo URL that says who the user is. Only the public `engine` API is used."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from engine import ENV, SECRET, RedirectProviderSettings, hookimpl
from tessera_oauth2.provider import OAuth2Provider


class OAuth2Settings(RedirectProviderSettings):
    """`link_by_verified_email` and `unverified_email` come from the engine's base."""

    type: Literal["oauth2"]
    # Marked: these may be `${ENV}` references (the secret must be one); nothing else may.
    client_id: Annotated[str, ENV]
    client_secret: Annotated[SecretStr, SECRET]
    authorization_url: Annotated[str, ENV]
    token_url: Annotated[str, ENV]
    userinfo_url: Annotated[str, ENV]
    issuer: Annotated[str | None, ENV] = Field(
        None, description="names the upstream in identity links; default: the authorization URL's origin"
    )
    scopes: list[str] = []
    subject_claim: str = Field("sub", description="userinfo member with the stable user id")
    email_claim: str = "email"
    email_verified_claim: str | None = Field(
        None, description="userinfo member saying the email is verified; none: never verified"
    )
    claims: dict[str, str] = Field(
        default_factory=lambda: {"name": "name", "picture": "picture"},
        description="local claim -> userinfo member",
    )
    pkce: bool = True


@hookimpl
def tessera_register_providers(registry):
    registry.add("oauth2", OAuth2Settings, OAuth2Provider)
