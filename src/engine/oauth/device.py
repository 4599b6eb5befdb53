"""RFC 8628 the device authorization grant: the device authorization endpoint (§3.1,
§3.2), the user codes the verification page takes (§3.3, §6.1), and what the token
endpoint's polling reads (§3.4, §3.5). Framework-free: the pages are in engine.web.device.

A device request is one record in the ephemeral store, keyed by the SHA-256 of its
`device_code` (the code itself is never stored):

    {client_id, scope, resource?, user_code, exp, status: pending|approved|denied,
     user_id?, auth_time?, session_id?, decided_at?}

The user code points at it (`device_user`, keyed by the SHA-256 of the normalised code).
Poll timing lives in a key of its own (`device_poll`), so a poll never writes the record
and cannot overwrite an approval that lands between its read and its write. On approval
the first poll *takes* the record: tokens are issued exactly once."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from engine.accounts.mfa import acr_of
from engine.errors import (
    AuthorizationPending,
    DeviceAccessDenied,
    ExpiredToken,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    SlowDown,
    UnauthorizedClient,
)
from engine.exchange import Answer, Call
from engine.oauth.clients import authenticate_counted
from engine.oauth.grants.common import parse_scope
from engine.oauth.params import form_params
from engine.oauth.ratelimit import enforce
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex

if TYPE_CHECKING:
    from engine.services import Services

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
PATH = "/device/code"
VERIFICATION_PATH = "/device"
# §6.1: an alphabet without vowels (no words) and without look-alikes; 20^8 ≈ 2.6e10 codes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
INTERVAL = 5  # §3.2 default, seconds
SLOW_DOWN_STEP = 5  # §3.5: "the interval MUST be increased by 5 seconds"
MAX_SCOPES = 64
# How long a record outlives its `exp`, so a late poll learns `expired_token` rather than
# `invalid_grant` (the end itself is checked against the app clock).
GRACE = 600


def device_key(realm: str, device_hash: str) -> str:
    return f"{realm}:device:{device_hash}"


def poll_key(realm: str, device_hash: str) -> str:
    return f"{realm}:device_poll:{device_hash}"


def user_code_key(realm: str, user_code: str) -> str:
    return f"{realm}:device_user:{sha256_hex(user_code)}"


def new_user_code() -> str:
    """Eight letters of the alphabet, drawn by `secrets` (normalised form, no dash)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def display_user_code(user_code: str) -> str:
    """`XXXX-XXXX`, as the user reads it (§6.1)."""
    half = USER_CODE_LENGTH // 2
    return f"{user_code[:half]}-{user_code[half:]}"


def normalise_user_code(typed: str | None) -> str | None:
    """What the user typed, case- and dash-insensitively (§6.1: spaces and dashes are
    punctuation); None if it cannot be a user code at all."""
    if not typed or len(typed) > 32:
        return None
    code = "".join(ch for ch in typed.upper() if ch not in "- \t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def lifetime(realm: Realm) -> int:
    return max(1, int(realm.config.lifetimes.device_code.total_seconds()))


async def device_authorization(services: Services, realm: Realm, call: Call) -> Answer:
    """§3.1/§3.2 `POST {issuer}/device/code`: the client (authenticated as at the token
    endpoint; a public client names itself with client_id) gets a device code and a user code."""
    await enforce(services, realm, "device_authorization", call.ip,
                  realm.config.rate_limits.device_authorization_per_ip)
    params = await form_params(call)
    client = await authenticate_counted(services, realm, call.headers.get("Authorization"), params, call.ip,
                                        allow_public=True)
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient("this client may not use the device authorization grant")
    scopes = parse_scope(params.get("scope"))
    if not scopes:
        raise InvalidScope("scope is required")
    if len(scopes) > MAX_SCOPES:
        raise InvalidRequest(f"at most {MAX_SCOPES} scopes may be requested")
    if unknown := [s for s in scopes if s not in client.scopes]:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(unknown)}")
    resource = params.get("resource") or None
    if resource is not None and resource not in client.audience:
        raise InvalidTarget("resource is not one of this client's audiences")

    ttl = lifetime(realm)
    now = services.clock.timestamp()
    device_code = random_token(32)
    device_hash = sha256_hex(device_code)
    # A fresh user code; a collision with a live one (rare: 2.6e10 codes) draws again.
    for _attempt in range(5):
        user_code = new_user_code()
        if await services.ephemeral.put(user_code_key(realm.name, user_code),
                                        {"device": device_hash, "exp": now + ttl}, ttl, only_if_absent=True):
            break
    else:  # pragma: no cover - the store is full of live codes
        raise InvalidRequest("no user code is free; try again")
    await services.ephemeral.put(device_key(realm.name, device_hash), {
        "client_id": client.client_id, "scope": " ".join(scopes), "resource": resource,
        "user_code": user_code, "exp": now + ttl, "status": "pending",
    }, ttl + GRACE)
    shown = display_user_code(user_code)
    verification_uri = f"{realm.issuer}{VERIFICATION_PATH}"
    return Answer.no_store_json({
        "device_code": device_code,
        "user_code": shown,
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?user_code={shown}",
        "expires_in": ttl,
        "interval": INTERVAL,
    })


async def find_by_user_code(services: Services, realm: Realm, user_code: str) -> tuple[str, dict[str, Any]] | None:
    """The pending device request a (normalised) user code names: (device hash, record),
    or None if the code is unknown, expired or already used."""
    pointer = await services.ephemeral.get(user_code_key(realm.name, user_code))
    now = services.clock.timestamp()
    if pointer is None or pointer["exp"] <= now:
        return None
    record = await services.ephemeral.get(device_key(realm.name, pointer["device"]))
    if record is None or record["exp"] <= now or record["status"] != "pending":
        return None
    return pointer["device"], record


async def decide(services: Services, realm: Realm, device_hash: str, *, approved: bool,
                 user_id: str, auth_time: int, session_id: str | None, amr: list[str] | None = None) -> bool:
    """The user's answer on the confirmation page; False if the request is gone, expired or
    already decided. The user code is spent either way (§3.3: one use)."""
    key = device_key(realm.name, device_hash)
    record = await services.ephemeral.get(key)
    now = services.clock.timestamp()
    if record is None or record["exp"] <= now or record["status"] != "pending":
        return False
    await services.ephemeral.delete(user_code_key(realm.name, record["user_code"]))
    decided = {**record, "status": "approved" if approved else "denied",
               "user_id": user_id, "auth_time": auth_time, "session_id": session_id,
               # how the user signed in (RFC 8176 amr, and its acr: engine.accounts.mfa)
               "amr": amr or [], "acr": acr_of(amr or []),
               "decided_at": services.clock.now().timestamp()}  # a reset after it voids it
    await services.ephemeral.put(key, decided, max(1, record["exp"] - now) + GRACE)
    return True


async def poll(services: Services, realm: Realm, client_id: str, device_code: str | None) -> dict[str, Any]:
    """§3.4/§3.5 one poll of the token endpoint: the approved record (taken: issued once),
    or the error the client must see."""
    if not device_code:
        raise InvalidRequest("device_code is required")
    if len(device_code) > 256:
        raise InvalidGrant("the device code is invalid")
    device_hash = sha256_hex(device_code)
    key = device_key(realm.name, device_hash)
    record = await services.ephemeral.get(key)
    if record is None:
        raise InvalidGrant("the device code is invalid, expired or already used")
    if record["client_id"] != client_id:
        raise InvalidGrant("the device code was issued to another client")
    now = services.clock.timestamp()
    if record["exp"] <= now:
        raise ExpiredToken("the device code has expired; start again")
    if record["status"] == "denied":
        raise DeviceAccessDenied("the user denied the request")
    if record["status"] == "approved":
        taken = await services.ephemeral.take(key)  # of concurrent polls, one gets the tokens
        if taken is None or taken.get("status") != "approved":
            raise InvalidGrant("the device code is invalid, expired or already used")
        await services.ephemeral.delete(poll_key(realm.name, device_hash))
        return taken
    await _pace(services, realm, device_hash, record, now)
    raise AuthorizationPending("the user has not yet approved the request")


async def _pace(services: Services, realm: Realm, device_hash: str, record: dict[str, Any], now: int) -> None:
    """§3.5 slow_down: a poll sooner than the interval after the previous one is refused,
    and the interval of this device code grows by 5 seconds (for every later poll too)."""
    key = poll_key(realm.name, device_hash)
    ttl = max(1, record["exp"] - now) + GRACE
    pace = await services.ephemeral.get(key) or {"interval": INTERVAL, "last": None}
    too_soon = pace["last"] is not None and now - pace["last"] < pace["interval"]
    interval = pace["interval"] + SLOW_DOWN_STEP if too_soon else pace["interval"]
    await services.ephemeral.put(key, {"interval": interval, "last": now}, ttl)
    if too_soon:
        raise SlowDown(f"polling too fast: wait at least {interval} seconds between requests",
                       headers={"Retry-After": str(interval)})
