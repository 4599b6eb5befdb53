"""OpenID Connect Core §5.3 the UserInfo endpoint: claims about the user an access token
was issued for, limited to the token's scopes (§5.4).

The token is a Bearer token (RFC 6750): in the `Authorization` header (§2.1) or, on POST,
as the `access_token` form parameter (§2.2); never in the query string (§2.3 is optional
and leaks tokens into logs). Errors follow RFC 6750 §3.1, as OIDC Core §5.3.3 says:

- no token → 401, bare `Bearer realm=...` challenge (no error code when none was sent);
- invalid, expired, revoked token, or a user that is gone or disabled → 401 `invalid_token`;
- bearer-token guessing is limited per address: past `rate_limits.userinfo_failures_per_ip`
  bad or missing tokens (and ten times that over sixty windows) → 429 with `Retry-After`;
  good tokens are never counted, so a backend calling for many users is not slowed;
- a valid token without the `openid` scope → 403 `insufficient_scope`. That includes
  client-credentials tokens (their `sub` is the client), which never carry `openid`:
  the token is sound, it just does not grant access to this resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import BearerTokenMissing, InsufficientScope, InvalidRequest, InvalidToken, RateLimited
from engine.exchange import Answer, Call
from engine.oauth.params import FORM, form_params
from engine.oauth.ratelimit import escalated, hit, over_limit
from engine.realm import Realm
from engine.tokens.issue import scope_claims

if TYPE_CHECKING:
    from engine.services import Services

OPENID = "openid"
FAILURE_BUCKETS = ("userinfo_fail_ip", "userinfo_fail_ip_long")


def header_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None  # absent, or another scheme: "no credentials" for us (§3.1)
    return value.strip() or None


async def bearer_token(call: Call, realm: Realm) -> str:
    """The one token the request carries; RFC 6750 §2: a client uses one method, not two."""
    token = header_token(call.headers.get("Authorization"))
    if call.method == "POST" and call.content_type == FORM:
        posted = (await form_params(call)).get("access_token")
        if posted is not None:
            if token is not None:
                raise InvalidRequest("send the access token in the header or the body, not both")
            token = posted
    if not token:
        raise BearerTokenMissing(realm.name)
    return token


async def userinfo(services: Services, realm: Realm, call: Call) -> Answer:
    ip = call.ip
    limit = realm.config.rate_limits.userinfo_failures_per_ip
    for bucket, budget in zip(FAILURE_BUCKETS, escalated(limit), strict=True):
        wait = over_limit(services, realm, bucket, ip, budget)
        if wait is not None:
            raise RateLimited(wait, "too many requests with a bad access token; retry later")
    try:
        claims = await services.tokens.verify_access_token(realm, await bearer_token(call, realm))
    except InvalidToken:  # BearerTokenMissing too: a guesser may send nothing, or garbage
        for bucket, budget in zip(FAILURE_BUCKETS, escalated(limit), strict=True):
            await hit(services, realm, bucket, ip, budget)
        raise
    scopes = set(str(claims.get("scope", "")).split())
    if OPENID not in scopes:
        raise InsufficientScope(OPENID, "the access token was not granted the openid scope")
    subject = claims.get("sub")
    user = await services.durable.get_user(realm.name, subject) if isinstance(subject, str) else None
    if user is None or user.disabled:
        raise InvalidToken("the token's user no longer exists or is disabled")
    body = {**scope_claims(realm, user, scopes), "sub": user.id}
    return Answer.no_store_json(body)
