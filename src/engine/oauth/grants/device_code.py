"""RFC 8628 §3.4/§3.5 the device code grant at the token endpoint: one poll answers
`authorization_pending`, `slow_down`, `access_denied` or `expired_token` until the user
has approved; then access, ID (for `openid`) and refresh tokens, exactly once, issued as
the authorization code grant issues them (same refresh policy, a new rotating family)."""

from __future__ import annotations

from typing import Any

from engine import events
from engine.errors import InvalidTarget
from engine.oauth import device
from engine.oauth.backchannel import record_session_client
from engine.oauth.grants.common import (
    authentication_of,
    granted_resources,
    live_user,
    mint_user_tokens,
    narrow_resources,
    refresh_allowed,
    requested_resource,
    token_response,
)


class DeviceCodeGrant:
    grant_type = device.GRANT_TYPE
    public_clients = True  # §3.4: a public client identifies itself with client_id

    async def issue(self, request) -> dict[str, Any]:
        realm, client, params, services = request.realm, request.client, request.params, request.services
        resource = requested_resource(params)
        if resource is not None and resource not in client.audience:
            raise InvalidTarget("resource is not one of this client's audiences")
        grant = await device.poll(services, realm, client.client_id, params.get("device_code"))
        user = await live_user(services, realm, grant["user_id"], granted_at=grant.get("decided_at"))
        granted = granted_resources(client, grant.get("resource"))
        audience = narrow_resources(client, granted, resource)
        scope = grant["scope"]
        refresh_token, family_id = None, None
        if refresh_allowed(realm, client, user, set(scope.split())):
            refresh_token, family = await services.refresh.start_family(
                realm, client, user_id=user.id, scope=scope, auth_time=grant["auth_time"],
                session_id=grant.get("session_id"), resources=granted, data=authentication_of(grant),
            )
            family_id = family.id
        minted, id_token = await mint_user_tokens(
            services, realm, client, user, scope=scope, auth_time=grant["auth_time"], audience=audience,
            session_id=grant.get("session_id"), grant_id=family_id, **authentication_of(grant),
        )
        await record_session_client(services, realm, client, user.id, grant.get("session_id"))  # back-channel logout
        await services.audit(realm.name, events.TOKEN_ISSUED, user_id=user.id, client_id=client.client_id,
                             ip=request.ip, grant_type=self.grant_type)
        expires_in = minted.claims["exp"] - minted.claims["iat"]
        return token_response(minted.token, expires_in, scope, id_token=id_token, refresh_token=refresh_token)
