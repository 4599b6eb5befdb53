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

from pydantic import Field, SecretStr

from engine import ENV, SECRET, Duration, ProviderSettings, hookimpl
from plugins.google.provider import OidcProvider

GOOGLE_ISSUER = "https://accounts.google.com"


class GoogleSettings(ProviderSettings):
    type: Literal["google"]
    client_id: Annotated[str, ENV]
    client_secret: Annotated[SecretStr, SECRET]
    issuer: Annotated[str, ENV] = GOOGLE_ISSUER  # exact string: compared with the ID token's `iss`
    scopes: list[str] = ["openid", "email", "profile"]
    authorization_params: dict[str, str] = {}  # e.g. {hd: example.com, prompt: select_account}
    claims: dict[str, str] = {}  # local claim -> upstream claim, on top of the standard ones
    link_by_verified_email: bool = Field(
        True, description="link a first login to the realm user with the same upstream-verified email"
    )
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


@hookimpl
def tessera_register_providers(registry):
    registry.add("google", GoogleSettings, OidcProvider)
