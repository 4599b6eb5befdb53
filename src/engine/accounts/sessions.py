"""Browser sessions (single sign-on within a realm), kept in the ephemeral store behind an
`HttpOnly`, `SameSite=Lax` cookie (`Secure` whenever the base URL is https).

The cookie carries a random secret; the store key is its SHA-256, so a leaked store dump
is no cookie. `sid` is a separate public id that goes into ID tokens and refresh
families, so logout can end exactly the tokens issued in this session.

Ending *every* session of a user (a password reset) writes one per-user marker, "sessions
created up to <time> are over", which `current_session` checks: one atomic write that
every instance sees, no per-user index to keep consistent under concurrent logins. The
marker lives as long as a session can, then expires with the sessions it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.batch import WriteBatch
from engine.tokens.revocation import user_cutoff_key


@dataclass(frozen=True)
class BrowserSession:
    key: str
    sid: str
    user_id: str
    auth_time: int
    amr: list[str]
    provider: str


def cookie_name(realm: Realm) -> str:
    return f"tessera_session_{realm.name}"


def _key(realm: Realm, secret: str) -> str:
    return f"{realm.name}:sess:{sha256_hex(secret)}"


def secure_cookies(services: Any) -> bool:
    return services.runtime.config.server.base_url.startswith("https://")


async def current_session(request: web.Request, services: Any, realm: Realm) -> BrowserSession | None:
    secret = request.cookies.get(cookie_name(realm))
    if not secret or len(secret) > 100:
        return None
    key = _key(realm, secret)
    data = await services.ephemeral.get(key)
    if data is None or data["exp"] <= services.clock.timestamp():
        return None
    ended = await services.ephemeral.get(_ended_key(realm, data["user_id"]))
    if ended is not None and data.get("created", data["auth_time"]) <= ended.get("sessions_up_to", ended["up_to"]):
        await services.ephemeral.delete(key)
        return None
    return BrowserSession(key=key, sid=data["sid"], user_id=data["user_id"], auth_time=data["auth_time"],
                          amr=data.get("amr", []), provider=data.get("provider", ""))


async def start_session(
    response: web.StreamResponse,
    services: Any,
    realm: Realm,
    *,
    user_id: str,
    amr: list[str],
    provider: str,
    previous: BrowserSession | None = None,
    writes: WriteBatch,
) -> BrowserSession:
    """A new session (a new cookie secret every login: no session fixation), stored (and
    `previous` ended) when `writes` is committed."""
    if previous is not None:
        writes.delete(previous.key)
    secret = random_token(32)
    now = services.clock.timestamp()
    lifetime = int(realm.config.lifetimes.session.total_seconds())
    sid = random_token(16)
    data = {"sid": sid, "user_id": user_id, "auth_time": now, "amr": amr, "provider": provider, "exp": now + lifetime,
            "created": services.clock.now().timestamp()}
    key = _key(realm, secret)
    writes.put(key, data, lifetime)
    response.set_cookie(
        cookie_name(realm), secret, max_age=lifetime, path="/", httponly=True,
        samesite="Lax", secure=secure_cookies(services),
    )
    return BrowserSession(key=key, sid=sid, user_id=user_id, auth_time=now, amr=amr, provider=provider)


async def end_session(response: web.StreamResponse, services: Any, realm: Realm, session: BrowserSession) -> None:
    await services.ephemeral.delete(session.key)
    response.del_cookie(cookie_name(realm), path="/")


def _ended_key(realm: Realm, user_id: str) -> str:
    return user_cutoff_key(realm.name, user_id)  # access tokens of the user honour it too


async def end_user_sessions(services: Any, realm: Realm, user_id: str, *, signing_in_now: bool = False) -> None:
    """End every browser session of the user, on every instance (password reset), and the
    access tokens issued to the user up to now.

    `signing_in_now`: the caller signs the user in within this very request (a federated
    login that has just proven the address). Access tokens carry a whole-second `iat`, so a
    cutoff at "now" would also revoke the tokens about to be issued for that sign-in; the
    tokens' cutoff is then the end of the previous second (sessions keep an exact cutoff,
    and the refresh families are revoked in the durable store, exactly)."""
    now = services.clock.now().timestamp()
    if signing_in_now:
        # The new session is started right after: "created at the same instant" must not
        # end it (a frozen or coarse clock), so the session cutoff is a hair before now.
        entry = {"up_to": float(int(now) - 1), "sessions_up_to": now - 1e-6}
    else:
        # Sessions created at the very same instant count as ended: with a coarse or frozen
        # clock, erring on the side of signing out is the safe choice.
        entry = {"up_to": now}
    lifetime = int(realm.config.lifetimes.session.total_seconds())
    await services.ephemeral.put(_ended_key(realm, user_id), entry,
                                 lifetime + 86400)  # a day of slack for a lifetime changed by reload
