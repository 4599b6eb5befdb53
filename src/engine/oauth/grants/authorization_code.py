"""RFC 6749 §4.1.3 the authorization code grant, with PKCE (RFC 7636 §4.6) and the ID
token (OIDC Core §3.1.3).

Codes are single-use: an atomic take from the ephemeral store. A replayed code is refused
*and* what its first use issued is revoked (RFC 6749 §4.1.2; OAuth Security BCP §4.5)."""

from __future__ import annotations

from typing import Any

from engine import events
from engine.errors import InvalidGrant, InvalidRequest, InvalidTarget
from engine.oauth import pkce
from engine.oauth.backchannel import record_session_client
from engine.oauth.codes import code_key, used_code_key
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
from engine.secrets_util import sha256_hex


class AuthorizationCodeGrant:
    grant_type = "authorization_code"
    public_clients = True

    async def issue(self, request) -> dict[str, Any]:
        realm, client, params, services = request.realm, request.client, request.params, request.services
        code = params.get("code")
        if not code:
            raise InvalidRequest("code is required")
        # RFC 8707 §2.2: a resource here may only narrow the grant. One the client can never
        # have is refused before the code is spent.
        resource = requested_resource(params)
        if resource is not None and resource not in client.audience:
            raise InvalidTarget("resource is not one of this client's audiences")
        code_hash = sha256_hex(code)
        ephemeral = services.ephemeral
        lifetime = int(realm.config.lifetimes.auth_code.total_seconds())
        used_ttl = lifetime + int(realm.config.lifetimes.access_token.total_seconds()) + 60
        used_key = used_code_key(realm.name, code_hash)
        # Taken, and marked used in the same atomic step: a replay from now on finds the mark.
        grant = await ephemeral.take(code_key(realm.name, code_hash), leave=(used_key, {}, used_ttl))
        if grant is None:
            await self._replayed(request, code_hash)
            raise InvalidGrant("the authorization code is invalid, expired or already used")
        if grant["exp"] <= services.clock.timestamp():
            raise InvalidGrant("the authorization code has expired")
        if grant["client_id"] != client.client_id:
            raise InvalidGrant("the authorization code was issued to another client")
        # §4.1.3: redirect_uri must be identical when the authorization request had one.
        if grant.get("redirect_uri_sent", True) or "redirect_uri" in params:
            if params.get("redirect_uri") != grant["redirect_uri"]:
                raise InvalidGrant("redirect_uri does not match the authorization request")
        pkce.verify(grant.get("code_challenge"), params.get("code_verifier"))
        user = await live_user(services, realm, grant["user_id"],
                               granted_at=grant.get("issued", grant["exp"] - lifetime))
        granted = granted_resources(client, grant.get("resource"))
        audience = narrow_resources(client, granted, resource)

        scopes = set(grant["scope"].split())
        refresh_token, family_id = None, None
        if refresh_allowed(realm, client, user, scopes):  # first, so the access token names its grant
            refresh_token, family = await services.refresh.start_family(
                realm, client, user_id=user.id, scope=grant["scope"], auth_time=grant["auth_time"],
                session_id=grant.get("session_id"), resources=granted,
                data=authentication_of(grant),
            )
            family_id = family.id
        minted, id_token = await mint_user_tokens(
            services, realm, client, user, scope=grant["scope"], auth_time=grant["auth_time"],
            audience=audience,
            nonce=grant.get("nonce"), session_id=grant.get("session_id"), grant_id=family_id,
            **authentication_of(grant),
        )
        await record_session_client(services, realm, client, user.id, grant.get("session_id"))
        issued = {"client_id": client.client_id, "family_id": family_id,
                  "jti": minted.claims["jti"], "exp": minted.claims["exp"]}
        # What was issued replaces the mark atomically: a replay before this saw the mark and
        # flagged it (we revoke), a replay after it finds what to revoke.
        marker = await ephemeral.swap(used_key, issued, used_ttl)
        if marker and marker.get("replayed"):
            # The code was replayed while we were issuing: revoke what we just made.
            await self._revoke(request, issued)
            raise InvalidGrant("the authorization code was used twice; its tokens are revoked")
        await services.audit(realm.name, events.TOKEN_ISSUED, user_id=user.id, client_id=client.client_id,
                             ip=request.ip, grant_type=self.grant_type)
        expires_in = minted.claims["exp"] - minted.claims["iat"]
        return token_response(minted.token, expires_in, grant["scope"], id_token=id_token,
                              refresh_token=refresh_token)

    async def _replayed(self, request, code_hash: str) -> None:
        realm, services = request.realm, request.services
        key = used_code_key(realm.name, code_hash)
        issued = await services.ephemeral.get(key)
        if issued is None:  # never issued, or long gone (and no key is made for a made-up code)
            return
        if issued.get("jti") is None:  # the first use is still issuing: flag it, atomically
            issued = await services.ephemeral.swap(key, {**issued, "replayed": True}, 600)
            if issued is None or issued.get("jti") is None:
                return  # the first use sees the flag and revokes what it issued
        await self._revoke(request, issued)

    async def _revoke(self, request, issued: dict[str, Any]) -> None:
        realm, services = request.realm, request.services
        if issued.get("family_id"):
            await services.refresh.revoke_family(realm, issued["family_id"], "code_replay")
        if issued.get("jti"):
            await services.tokens.deny_access_token(realm, issued["jti"], issued["exp"])
        await services.audit(realm.name, events.CODE_REPLAY_DETECTED, client_id=issued.get("client_id"),
                             ip=request.ip, family_id=issued.get("family_id"))
