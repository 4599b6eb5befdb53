"""RFC 8693 token exchange: a confidential client trades an access token of this realm (the
subject token) for a new one for another audience, acting for the subject (delegation).

- Policy per client (`token_exchange` in the client's config): whose tokens it may exchange
  (`from_clients`, or tokens that name it in `aud`) and for which `audiences`.
- The new token (RFC 9068, like every access token here) keeps the subject's `sub`,
  `auth_time`, `sid` and `grant_id`, so ending the subject's session, revoking its grant
  (its refresh family) or cutting off its user revokes the exchanged token too
  (engine.tokens.revocation). It never outlives the subject token, carries exactly the one
  requested audience, and `act` names who acts: the client, or the `actor_token`'s subject,
  with the subject token's own `act` nested inside (§4.1). No refresh token is issued.
- Refusals: a bad request (token types, missing parameters) is `invalid_request`; an
  audience outside the policy `invalid_target`; a subject or actor token that is not a live
  access token of this realm, or a subject token the policy does not allow, `invalid_grant`
  (as issue 19 asks; §2.2.2 would say `invalid_request`); a wider scope `invalid_scope`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import events
from engine.errors import InvalidGrant, InvalidRequest, InvalidTarget, InvalidToken, UnauthorizedClient
from engine.oauth.grants.common import narrow_scope, parse_scope, requested_resource, require_live, token_response
from engine.realm import Realm
from engine.tokens.revocation import GRANT_CLAIM

if TYPE_CHECKING:
    from engine.oauth.token import GrantRequest
    from engine.services import Services

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
MAX_ACT_DEPTH = 8  # a delegation chain longer than this is refused: tokens stay small


class TokenExchangeGrant:
    grant_type = TOKEN_EXCHANGE
    public_clients = False

    async def issue(self, request: GrantRequest) -> dict[str, Any]:
        realm, client, params, services = request.realm, request.client, request.params, request.services
        policy = client.token_exchange
        if policy is None:  # the config check refuses this; never issue without a policy
            raise UnauthorizedClient("this client has no token exchange policy")
        subject_token = params.get("subject_token")
        if not subject_token:
            raise InvalidRequest("subject_token is required")
        if params.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            raise InvalidRequest(f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
        actor_token = params.get("actor_token") or None
        # §2.1: actor_token_type is REQUIRED with an actor_token and MUST NOT come without one.
        if actor_token is not None and params.get("actor_token_type") != ACCESS_TOKEN_TYPE:
            raise InvalidRequest(f"actor_token_type must be {ACCESS_TOKEN_TYPE}")
        if actor_token is None and params.get("actor_token_type"):
            raise InvalidRequest("actor_token_type without an actor_token")
        if params.get("requested_token_type") not in (None, "", ACCESS_TOKEN_TYPE):
            raise InvalidRequest(f"only {ACCESS_TOKEN_TYPE} can be issued")
        audience = requested_resource(params)  # one value; audience and resource must agree
        if audience is None:
            if len(policy.audiences) != 1:
                raise InvalidRequest("audience (or resource) is required")
            audience = policy.audiences[0]
        if audience not in policy.audiences:
            raise InvalidTarget("this client may not exchange tokens for that audience")

        subject = await _live_access_token(services, realm, subject_token, "subject_token")
        aud = subject.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if subject.get("client_id") not in policy.from_clients and client.client_id not in auds:
            raise InvalidGrant("this client may not exchange that subject_token")
        scope = narrow_scope(params.get("scope"), " ".join(parse_scope(subject.get("scope"))))
        sub = subject["sub"]
        user_id = sub if sub != subject.get("client_id") else None  # a client's own token has no user
        if user_id is not None:
            require_live(await services.durable.get_user(realm.name, user_id))

        actor_sub = client.client_id
        if actor_token is not None:
            actor_sub = (await _live_access_token(services, realm, actor_token, "actor_token"))["sub"]
        act: dict[str, Any] = {"sub": actor_sub}
        prior = subject.get("act")
        if isinstance(prior, dict):
            if _depth(prior) >= MAX_ACT_DEPTH:
                raise InvalidGrant("the subject_token's delegation chain is too long")
            act["act"] = prior

        now = services.clock.timestamp()
        exp = min(now + int(realm.config.lifetimes.access_token.total_seconds()), int(subject["exp"]))
        auth_time = subject.get("auth_time")
        grant_id, sid = subject.get(GRANT_CLAIM), subject.get("sid")
        minted = await services.tokens.access_token(
            realm, client, subject=sub, scope=scope, audience=[audience],
            auth_time=auth_time if isinstance(auth_time, int) else None,
            grant_id=grant_id if isinstance(grant_id, str) else None,
            session_id=sid if isinstance(sid, str) else None,
            extra={"act": act, "exp": exp},
        )
        await services.audit(realm.name, events.TOKEN_EXCHANGED, user_id=user_id, client_id=client.client_id,
                             ip=request.ip, subject_client_id=subject.get("client_id"), audience=audience,
                             actor=actor_sub)
        return token_response(minted.token, exp - minted.claims["iat"], scope,
                              issued_token_type=ACCESS_TOKEN_TYPE)


async def _live_access_token(services: Services, realm: Realm, token: str, name: str) -> dict[str, Any]:
    """The claims of a live access token of this realm (signed by its keys, its `iss`,
    `typ: at+jwt`, unexpired, not revoked); invalid_grant for anything else."""
    try:
        claims = await services.tokens.verify_access_token(realm, token)
    except InvalidToken:
        raise InvalidGrant(f"the {name} is invalid, expired, revoked or not an access token of this realm") from None
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("exp"), int):
        raise InvalidGrant(f"the {name} has no subject or expiry")
    return claims


def _depth(act: dict[str, Any]) -> int:
    depth = 0
    while isinstance(act, dict) and depth <= MAX_ACT_DEPTH:
        depth += 1
        act = act.get("act")  # type: ignore[assignment]
    return depth
