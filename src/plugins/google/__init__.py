"""Generic OpenID Connect redirect provider with Google as its preset (plugin `google`).

```yaml
providers:
  - {id: google, type: google, client_id: "${GOOGLE_CLIENT_ID}", client_secret: "${GOOGLE_CLIENT_SECRET}"}
  - id: okta                       # the same plugin, any other OpenID provider
    type: google
    display_name: Okta
    issuer: https://example.okta.com
    client_id: "${OKTA_CLIENT_ID}"
    client_secret: "${OKTA_CLIENT_SECRET}"
```
Register `{realm issuer}/login/<id>/callback` as the redirect URI at the upstream (or
`{realm issuer}/oauth/callback/<id>` if clients use the seed's `/oauth/<id>` entry).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from engine import ENV, SECRET, Duration, RedirectProviderSettings, hookimpl, secure_url_problem
from plugins.google.provider import GOOGLE_ENDPOINT_ORIGINS, GOOGLE_ISSUER, OidcProvider

__all__ = ["GOOGLE_ENDPOINT_ORIGINS", "GOOGLE_ISSUER", "GoogleSettings", "OidcProvider"]


def origin_list(values: list[str] | None) -> list[str] | None:
    """Each entry an origin (`https://host[:port]`, no path): where discovery's endpoints may be."""
    if values is None:
        return None
    for value in values:
        if (problem := secure_url_problem(value)) is not None:
            raise ValueError(f"{value!r} {problem}")
        if value.rstrip("/").count("/") != 2 or "?" in value or "#" in value:
            raise ValueError(f"{value!r} is not an origin (scheme://host[:port], no path)")
    return [value.rstrip("/") for value in values]


class GoogleSettings(RedirectProviderSettings):
    type: Literal["google"]
    client_id: Annotated[str, ENV]
    client_secret: Annotated[SecretStr, SECRET]
    issuer: Annotated[str, ENV] = GOOGLE_ISSUER  # exact string: compared with the ID token's `iss`
    allowed_endpoint_origins: list[str] | None = Field(
        None,
        description="origins besides the issuer's where discovery may put the token, userinfo and JWKS endpoints"
        " (the client secret and tokens go there); default: Google's for the Google issuer, none otherwise",
    )
    scopes: list[str] = ["openid", "email", "profile"]
    authorization_params: dict[str, str] = {}  # e.g. {hd: example.com, prompt: select_account}
    claims: dict[str, str] = {}  # local claim -> upstream claim, on top of the standard ones
    token_endpoint_auth_method: Literal["auto", "client_secret_basic", "client_secret_post"] = Field(
        "auto", description="auto: basic if the discovery document allows it, else post"
    )
    id_token_algs: list[Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]] = Field(
        default_factory=lambda: ["RS256", "ES256", "PS256"], min_length=1,
        description="signature algorithms accepted on upstream ID tokens",
    )
    userinfo: bool = Field(False, description="also read claims from the upstream's userinfo endpoint")
    cache_ttl: Duration = Field(timedelta(hours=1), description="how long discovery and JWKS are cached")


    @model_validator(mode="before")
    @classmethod
    def _link_by_email_only_where_asked(cls, data: object) -> object:
        """Linking by email trusts the upstream's `email_verified`. Google's is trusted by
        default; any other OpenID provider links only when the realm says so (an issuer that
        lets its tenants or users assert any address, "nOAuth", could otherwise sign in to
        the local account that owns it)."""
        if isinstance(data, dict) and "link_by_verified_email" not in data \
                and data.get("issuer", GOOGLE_ISSUER) != GOOGLE_ISSUER:
            return {**data, "link_by_verified_email": False}
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer_is_secure(cls, value: str) -> str:
        if (problem := secure_url_problem(value)) is not None:
            raise ValueError(f"issuer {value!r} {problem}")
        return value

    @field_validator("allowed_endpoint_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        return origin_list(value)


@hookimpl
def tessera_register_providers(registry):
    registry.add("google", GoogleSettings, OidcProvider)
