"""RFC 7009 token revocation (served at `/revoke` and `/revocation`).

- Clients authenticate as at the token endpoint (§2.1); public clients send `client_id`.
- A refresh token revokes its whole family, i.e. that grant, and the access tokens minted
  from it (§2.1; engine.tokens.revocation); an access token (a JWT of this realm) is
  deny-listed by `jti` until it expires. Userinfo and introspection refuse revoked
  tokens on every instance within 0.5 s.
- Only the client a token was issued to can revoke it. Any other token (unknown, garbage,
  expired, another client's, another realm's) gets the same empty 200 (§2.2): the answer
  tells the caller nothing about the token.
- Rate limits: `rate_limits.revoke_per_ip` (public clients revoke from every user's
  browser under one client id, so not per client) and failed client authentication.
- `token_type_hint` is only a hint (§2.1): the form of the token decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import events
from engine.config import Client
from engine.errors import InvalidRequest, InvalidToken
from engine.exchange import NO_STORE_HEADERS, Answer, Call
from engine.oauth.clients import authenticate_client
from engine.oauth.params import form_params
from engine.oauth.ratelimit import enforce
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.tokens.refresh import PREFIX as REFRESH_PREFIX

if TYPE_CHECKING:
    from engine.services import Services

# §2.2: an empty 200, whatever the token was
REVOKED = Answer(200, None, NO_STORE_HEADERS)


async def revoke(services: Services, realm: Realm, call: Call) -> Answer:
    ip = call.ip
    await enforce(services, realm, "revoke", ip, realm.config.rate_limits.revoke_per_ip)
    params = await form_params(call)
    client = await authenticate_client(services, realm, call, params)
    token = params.get("token")
    if not token:
        raise InvalidRequest("token is required")
    if token.startswith(REFRESH_PREFIX):
        await revoke_refresh_token(services, realm, client, token, ip)
    else:
        await revoke_access_token(services, realm, client, token, ip)
    return REVOKED


async def revoke_refresh_token(services: Services, realm: Realm, client: Client, token: str, ip: str) -> None:
    found = await services.durable.get_refresh_token(realm.name, sha256_hex(token))
    if found is None or found[1].client_id != client.client_id:
        return
    family = found[1]
    if await services.refresh.revoke_family(realm, family.id, "revoked"):
        await services.audit(
            realm.name, events.REVOCATION, user_id=family.user_id, client_id=client.client_id, ip=ip,
            token_type="refresh_token", family_id=family.id,
        )


async def revoke_access_token(services: Services, realm: Realm, client: Client, token: str, ip: str) -> None:
    try:
        claims = await services.tokens.verify_access_token(realm, token)
    except InvalidToken:
        return  # garbage, foreign, expired or already revoked: nothing to do
    if claims.get("client_id") != client.client_id:
        return
    await services.tokens.deny_access_token(realm, claims["jti"], int(claims["exp"]))
    subject = claims.get("sub")
    user_id = subject if subject != client.client_id else None  # client credentials: no user
    await services.audit(
        realm.name, events.REVOCATION, user_id=user_id, client_id=client.client_id, ip=ip,
        token_type="access_token", jti=claims["jti"],
    )
