"""RFC 6749 §6 refreshing, with rotation and reuse detection (engine.tokens.refresh):
the scope may be narrowed, never widened; the audience is the family's granted resources,
or one of them named by `resource` (RFC 8707 §2.2, RFC 9700 §2.3), never more; a new ID
token when `openid` was granted."""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidRequest
from engine.oauth.grants.common import (
    authentication_of,
    mint_user_tokens,
    narrow_resources,
    narrow_scope,
    requested_resource,
    require_live,
    token_response,
)
from engine.store.protocols import RefreshFamily, User


class RefreshTokenGrant:
    grant_type = "refresh_token"
    public_clients = True

    async def issue(self, request) -> dict[str, Any]:
        realm, client, params, services = request.realm, request.client, request.params, request.services
        token = params.get("refresh_token")
        if not token:
            raise InvalidRequest("refresh_token is required")

        resource = requested_resource(params)

        async def check(family: RefreshFamily, user: User | None) -> tuple[str, list[str], User]:
            # Before rotating: a refused request (a wider scope or audience, a disabled
            # user) must not consume the token. The user was read with the token.
            return (narrow_scope(params.get("scope"), family.scope),
                    narrow_resources(client, family.resources, resource), require_live(user))

        rotation = await services.refresh.rotate(realm, client, token, before=check)
        family = rotation.family
        scope, audience, user = rotation.checked
        minted, id_token = await mint_user_tokens(
            services, realm, client, user, scope=scope, auth_time=int(family.auth_time.timestamp()),
            audience=audience,
            session_id=family.session_id, grant_id=family.id, **authentication_of(family.data),
        )
        expires_in = minted.claims["exp"] - minted.claims["iat"]
        return token_response(minted.token, expires_in, scope, id_token=id_token,
                              refresh_token=rotation.token)

