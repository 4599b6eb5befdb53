"""Client authentication at the token, introspection and revocation endpoints
(RFC 6749 §2.3.1: `client_secret_basic` and `client_secret_post`; `none` for public
clients, OAuth 2.0 Dynamic Client Registration §2). Secrets are compared as SHA-256
digests in constant time; every failure is 401 `invalid_client` with a challenge.

Failures are counted (issue 16 item 8): per caller address and per configured client
(`rate_limits.client_auth_failures_per_ip` / `_per_client`, each with a ten-times-longer
form). Past a budget, every attempt from that address (or for that client, on an instance
that has seen the failures) is refused with 429 and `Retry-After` before its secret is
looked at, so guessing is slowed and a refused guess teaches nothing. Successes cost one
look at the local counters and are never counted. Client ids that are not configured are
counted per address only (the keys stay bounded by the configuration), and so are public
clients, which have no secret to guess."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from engine.config import Client
from engine.config.models import RateLimit
from engine.errors import InvalidClient, InvalidRequest, RateLimited
from engine.exchange import Call
from engine.oauth.ratelimit import escalated, hit, over_limit
from engine.realm import Realm
from engine.secrets_util import same_hash

if TYPE_CHECKING:
    from engine.services import Services


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    credentials = _decode_basic(value.strip())
    if credentials is None:
        raise InvalidClient("malformed Basic credentials")
    return credentials


def _decode_basic(value: str) -> tuple[str, str] | None:
    """(client_id, secret) of a Basic value, or None. Not cached: a cache of decoded
    headers would keep presented secrets, wrong guesses included, in memory."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # §2.3.1: id and secret are application/x-www-form-urlencoded before base64.
    if "%" in decoded or "+" in decoded:
        return unquote_plus(client_id), unquote_plus(secret)
    return client_id, secret


def secret_matches(realm: Realm, client: Client, presented: str) -> bool:
    expected = realm.client_secret_hashes.get(client.client_id)
    return expected is not None and same_hash(presented, expected)


async def authenticate_client(
    services: Services, realm: Realm, call: Call, params: dict[str, str], *, allow_public: bool = True
) -> Client:
    """Who is calling. Public clients identify with `client_id` only (when allowed)."""
    return await authenticate_counted(services, realm, call.headers.get("Authorization"), params,
                                      call.ip, allow_public=allow_public)


REFUSED = "too many failed client authentications; retry later"


async def authenticate_counted(services: Services, realm: Realm, authorization: str | None, params: dict[str, str],
                               ip: str, *, allow_public: bool = True) -> Client:
    """`authenticate`, refused while a failure budget is spent, its failures counted."""
    try:
        basic, malformed = _basic_credentials(authorization), None
    except InvalidClient as exc:
        basic, malformed = None, exc
    counters = services.rate_counters
    if counters is not None and not counters.live.keys().isdisjoint(FAILURE_BUCKETS):
        # Some failure was counted here in a current window: is a budget of this caller spent?
        for bucket, subject, limit in _budgets(realm, basic, params, ip):
            wait = over_limit(services, realm, bucket, subject, limit)
            if wait is not None:
                raise RateLimited(wait, REFUSED)
    try:
        if malformed is not None:
            raise malformed
        return _authenticate(realm, basic, params, allow_public=allow_public)
    except InvalidClient:
        waits = [await hit(services, realm, bucket, subject, limit)
                 for bucket, subject, limit in _budgets(realm, basic, params, ip)]
        if any(wait is not None for wait in waits):
            raise RateLimited(max(wait for wait in waits if wait is not None), REFUSED) from None
        raise


IP_BUCKETS = ("client_auth_ip", "client_auth_ip_long")  # (short, long) failure budgets per address
CLIENT_BUCKETS = ("client_auth_client", "client_auth_client_long")  # and per configured client
FAILURE_BUCKETS = frozenset(IP_BUCKETS + CLIENT_BUCKETS)


def _budgets(realm: Realm, basic: tuple[str, str] | None, params: dict[str, str],
             ip: str) -> list[tuple[str, str, RateLimit]]:
    """The failure budgets of a caller: its address's, and the confidential client's it
    claims to be (`_claimed_client`)."""
    limits = realm.config.rate_limits
    client_id = _claimed_client(realm, basic, params)
    budgets = [(bucket, ip, limit) for bucket, limit in
               zip(IP_BUCKETS, escalated(limits.client_auth_failures_per_ip), strict=True)]
    if client_id is not None:
        budgets += [(bucket, client_id, limit) for bucket, limit in
                    zip(CLIENT_BUCKETS, escalated(limits.client_auth_failures_per_client), strict=True)]
    return budgets


def _claimed_client(realm: Realm, basic: tuple[str, str] | None, params: dict[str, str]) -> str | None:
    """The configured confidential client the request claims to be (before any check), or
    None. A public client has no secret to guess: counting its failures per client would
    only let anyone refuse it to every user."""
    client_id = basic[0] if basic is not None else params.get("client_id")
    client = realm.client(client_id) if client_id else None
    return client_id if client is not None and client.type == "confidential" else None


def authenticate(realm: Realm, authorization: str | None, params: dict[str, str], *,
                 allow_public: bool = True) -> Client:
    """`authenticate_client` from the `Authorization` header's value and the parameters."""
    return _authenticate(realm, _basic_credentials(authorization), params, allow_public=allow_public)


def _authenticate(realm: Realm, basic: tuple[str, str] | None, params: dict[str, str], *,
                  allow_public: bool) -> Client:
    """`authenticate` from the decoded Basic credentials (None: no Basic header)."""
    posted_secret = params.get("client_secret")
    challenge_realm = realm.name
    if basic is not None:
        if posted_secret is not None:
            raise InvalidRequest("use one client authentication method, not two")
        client_id, secret = basic
        if params.get("client_id") not in (None, client_id):
            raise InvalidRequest("client_id does not match the authenticated client")
    else:
        client_id, secret = params.get("client_id"), posted_secret
    if not client_id:
        raise InvalidClient("client authentication is required", realm=challenge_realm)
    client = realm.client(client_id)
    if client is None:
        raise InvalidClient("unknown client or bad credentials", realm=challenge_realm)
    if client.type == "public":
        if secret:
            raise InvalidClient("a public client has no secret", realm=challenge_realm)
        if not allow_public:
            raise InvalidClient("this endpoint needs an authenticated confidential client", realm=challenge_realm)
        return client
    if not secret or not secret_matches(realm, client, secret):
        raise InvalidClient("unknown client or bad credentials", realm=challenge_realm)
    return client
