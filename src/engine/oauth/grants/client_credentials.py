"""RFC 6749 §4.4: client credentials, for confidential clients only; `aud` is the client's
audiences, or exactly the one RFC 8707 `resource` sent (it must be one of them,
`invalid_target` otherwise)."""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidScope, InvalidTarget
from engine.oauth.grants.common import (
    granted_resources,
    narrow_resources,
    parse_scope,
    requested_resource,
    token_response,
)

USER_SCOPES = {"openid", "profile", "email", "offline_access", "address", "phone"}


class ClientCredentialsGrant:
    grant_type = "client_credentials"
    public_clients = False

    async def issue(self, request) -> dict[str, Any]:
        client, realm, params = request.client, request.realm, request.params
        allowed = [s for s in client.scopes if s not in USER_SCOPES]
        asked = parse_scope(params.get("scope")) or allowed
        if not set(asked) <= set(allowed):
            raise InvalidScope("the requested scope is not allowed for this client")
        resource = requested_resource(params)
        if resource is not None and resource not in client.audience:
            raise InvalidTarget("resource is not one of this client's audiences")
        audience = narrow_resources(client, granted_resources(client, None), resource)
        scope = " ".join(asked)
        minted = await request.services.tokens.access_token(
            realm, client, subject=client.client_id, scope=scope, audience=audience or None
        )
        expires_in = minted.claims["exp"] - minted.claims["iat"]
        return token_response(minted.token, expires_in, scope)
