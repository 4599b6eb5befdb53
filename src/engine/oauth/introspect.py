"""RFC 7662 token introspection: may a resource server accept this token, and what does it
carry.

- The caller is an authenticated confidential client of the realm (§2.1, §4: no anonymous
  probing of tokens).
- `token_type_hint` is only a hint (§2.1): the two kinds are told apart by their form
  (refresh tokens are opaque `rt_...`, access tokens are JWTs), so a wrong hint is harmless.
- Rate limits: failed client authentication (engine.oauth.clients), and
  `rate_limits.introspect_per_client` per authenticated client: a token guesser holding
  client credentials is slowed, a resource server at any sane rate is not.
- Anything not currently usable (expired, revoked, replaced, malformed, of another realm,
  or a refresh token of another client) is exactly `{"active": false}` (§2.2): the answer
  never says why, and a client learns nothing about refresh tokens that are not its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.config import Client
from engine.errors import InvalidRequest, InvalidToken
from engine.exchange import Answer, Call
from engine.oauth.clients import authenticate_client
from engine.oauth.params import form_params
from engine.oauth.ratelimit import enforce
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.tokens.refresh import PREFIX as REFRESH_PREFIX

if TYPE_CHECKING:
    from engine.services import Services

INACTIVE: dict[str, Any] = {"active": False}
# `act`: who acts for the subject in an exchanged token (RFC 8693 §4.1 allows it here).
# `acr`, `amr`: how the user signed in (RFC 9068 §2.2.1; RFC 9470 step-up at resource servers).
ACCESS_TOKEN_CLAIMS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "auth_time", "acr", "amr",
                       "act")


async def introspect(services: Services, realm: Realm, call: Call) -> Answer:
    params = await form_params(call)
    client = await authenticate_client(services, realm, call, params, allow_public=False)
    # per client (a resource server introspects for all its users); failures are counted above
    await enforce(services, realm, "introspect", client.client_id, realm.config.rate_limits.introspect_per_client)
    token = params.get("token")
    if not token:
        raise InvalidRequest("token is required")
    if token.startswith(REFRESH_PREFIX):
        body = await refresh_token_info(services, realm, client, token)
    else:
        body = await access_token_info(services, realm, token)
    return Answer.no_store_json(body)


async def access_token_info(services: Services, realm: Realm, token: str) -> dict[str, Any]:
    """A live access token of this realm (signature, `iss`, `exp`, `typ`, deny list)."""
    try:
        claims = await services.tokens.verify_access_token(realm, token)
    except InvalidToken:
        return INACTIVE
    return access_token_body(claims)


def access_token_body(claims: dict[str, Any]) -> dict[str, Any]:
    """The §2.2 answer for a live access token with these claims."""
    info: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    info.update({name: claims[name] for name in ACCESS_TOKEN_CLAIMS if name in claims})
    return info


async def refresh_token_info(services: Services, realm: Realm, client: Client, token: str) -> dict[str, Any]:
    """A refresh token that `client` could redeem right now: its own, latest of a live family."""
    found = await services.durable.get_refresh_token_and_user(realm.name, sha256_hex(token))
    if found is None:
        return INACTIVE
    refresh_token, family, user = found
    now = services.clock.now()
    if (
        family.client_id != client.client_id  # RFC 6749 §10.4: bound to its client
        or refresh_token.replaced_by is not None
        or family.revoked_at is not None
        or now >= refresh_token.expires_at
        or now >= family.expires_at
    ):
        return INACTIVE
    if user is None or user.disabled:
        return INACTIVE  # the token endpoint would refuse it too
    return {
        "active": True,
        "scope": family.scope,
        "client_id": family.client_id,
        "sub": family.user_id,
        "iss": realm.issuer,
        "exp": int(min(refresh_token.expires_at, family.expires_at).timestamp()),
        "iat": int(refresh_token.created_at.timestamp()),
        "token_type": "refresh_token",
    }
