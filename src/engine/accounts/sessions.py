"""Browser sessions (single sign-on within a realm), kept in the ephemeral store behind an
`HttpOnly`, `SameSite=Lax` cookie (`Secure` whenever the base URL is https).

The cookie carries a random secret; the store key is its SHA-256, so a leaked store dump
is no cookie. `sid` is a separate public id that goes into ID tokens and refresh
families, so logout can end exactly the tokens issued in this session.

Ending *every* session of a user (a password reset) writes one per-user marker, "sessions
created up to <time> are over", which `current_session` checks: one atomic write that
every instance sees. The marker lives as long as a session can, then expires with the
sessions it ended.

Idle timeout (issue 23 item 12): a session unused for `lifetimes.session_idle` is over,
whatever is left of its absolute `lifetimes.session`. Every use (`current_session`: an
authorization, `prompt=none`, consent, the account pages) counts; the time of last use is
stored and compared with the app clock, never left to a store TTL alone. Recording a use
costs a write at most once a minute per session (`TOUCH_EVERY`), and that write goes to a
companion key (`…:sess-seen:<hash>`), never to the session itself: a request that read
the session just before a logout deleted it cannot bring it back.

Bounded growth (issue 23 item 13): each user's sessions in a realm are listed in a
per-user index (`…:user-sessions:<user>`: store key, created, absolute end), written with
the new session in the sign-in's one write round trip; a sign-in beyond
`max_sessions_per_user` ends the oldest live ones. The index holds store keys (hashes),
never a cookie."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.exchange import CookieSink
from engine.oauth.backchannel import user_sessions_ended
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.batch import WriteBatch
from engine.tokens.revocation import user_cutoff_key

if TYPE_CHECKING:
    from engine.services import Services

TOUCH_EVERY = 60  # seconds: record a use at most this often (one write a minute, not one a request)


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


def _seen_key(session_key: str) -> str:
    """Where the session's last use is kept (`{"at": t}`), beside the session itself."""
    realm, _, digest = session_key.split(":", 2)
    return f"{realm}:sess-seen:{digest}"


def _index_key(realm: Realm, user_id: str) -> str:
    return f"{realm.name}:user-sessions:{user_id}"


def idle_seconds(realm: Realm) -> int:
    return max(1, int(realm.config.lifetimes.session_idle.total_seconds()))


def secure_cookies(services: Services) -> bool:
    return services.runtime.config.server.base_url.startswith("https://")


def _last_use(data: dict[str, Any], seen: dict[str, Any] | None, now: int) -> int:
    # A session from before uses were recorded counts as used now (and is recorded then).
    return max(data.get("used", now), seen["at"] if seen else 0)


def _is_live(data: dict[str, Any] | None, seen: dict[str, Any] | None, now: int, realm: Realm) -> bool:
    return data is not None and data["exp"] > now and now - _last_use(data, seen, now) < idle_seconds(realm)


async def current_session(cookies: Mapping[str, str], services: Services, realm: Realm, *,
                          touch: bool = True) -> BrowserSession | None:
    """The browser's live session, or None (no cookie, ended, past its absolute end, or
    idle for `lifetimes.session_idle`). With `touch`, this use keeps it alive (sliding,
    never past the absolute end). `cookies`: the request's."""
    secret = cookies.get(cookie_name(realm))
    if not secret or len(secret) > 100:
        return None
    key = _key(realm, secret)
    data, seen = await services.ephemeral.get_many([key, _seen_key(key)])
    now = services.clock.timestamp()
    if data is None or data["exp"] <= now:
        return None
    last_use = _last_use(data, seen, now)
    if now - last_use >= idle_seconds(realm):
        await services.ephemeral.write_many([], [key, _seen_key(key)])
        return None
    ended = await services.ephemeral.get(_ended_key(realm, data["user_id"]))
    if ended is not None and data.get("created", data["auth_time"]) <= ended.get("sessions_up_to", ended["up_to"]):
        await services.ephemeral.delete(key)
        return None
    if touch and (now - last_use >= TOUCH_EVERY or ("used" not in data and seen is None)):
        # Kept a little past the idle end so that the stored time, not the TTL, decides.
        ttl = min(idle_seconds(realm), data["exp"] - now) + TOUCH_EVERY
        await services.ephemeral.put(_seen_key(key), {"at": now}, ttl)
    return BrowserSession(key=key, sid=data["sid"], user_id=data["user_id"], auth_time=data["auth_time"],
                          amr=data.get("amr", []), provider=data.get("provider", ""))


async def start_session(
    response: CookieSink,
    services: Services,
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
            "created": services.clock.now().timestamp(), "used": now}
    key = _key(realm, secret)
    writes.put(key, data, lifetime)
    await _index_session(services, realm, user_id, [key, data["created"], data["exp"]], writes)
    response.set_cookie(
        cookie_name(realm), secret, max_age=lifetime, path="/", httponly=True,
        samesite="Lax", secure=secure_cookies(services),
    )
    return BrowserSession(key=key, sid=sid, user_id=user_id, auth_time=now, amr=amr, provider=provider)


async def _index_session(services: Services, realm: Realm, user_id: str, entry: list[Any], writes: WriteBatch) -> None:
    """List the new session in the user's index; end the oldest live sessions beyond
    `max_sessions_per_user` (their deletion is committed with `writes`)."""
    ephemeral, now = services.ephemeral, services.clock.timestamp()
    limit = realm.config.max_sessions_per_user
    index_key = _index_key(realm, user_id)
    ttl = int(realm.config.lifetimes.session.total_seconds()) + 86400  # a day of slack, as below
    before = await ephemeral.get(index_key)
    entries = [e for e in (before or {}).get("s", []) if e[2] > now and e[0] != entry[0]]
    ended: set[str] = set()
    if len(entries) + 1 > limit:
        # Some listed sessions may have ended already (logout, idle): count the live ones only.
        values = await ephemeral.get_many([k for e in entries for k in (e[0], _seen_key(e[0]))])
        entries = [e for i, e in enumerate(entries) if _is_live(values[2 * i], values[2 * i + 1], now, realm)]
        entries.sort(key=lambda e: e[1])  # oldest first
        while len(entries) + 1 > limit:
            ended.add(entries.pop(0)[0])
    entries.append(entry)
    # Written with the session itself, in the sign-in's one write round trip. Two sign-ins
    # of one user at the very same moment may each miss the other's entry; the sessions
    # they make still end (idle, absolute end), and per-account sign-in rate limits bound
    # how many can slip by that way.
    writes.put(index_key, {"s": entries}, ttl)
    for session_key in ended:
        writes.delete(session_key)
        writes.delete(_seen_key(session_key))


async def user_sessions(services: Services, realm: Realm, user_id: str) -> list[tuple[float, int]]:
    """The user's live browser sessions as (created, absolute end), oldest first (from the
    user's index: what `current_session` would still accept)."""
    index = await services.ephemeral.get(_index_key(realm, user_id))
    now = services.clock.timestamp()
    entries = [e for e in (index or {}).get("s", []) if e[2] > now]
    if not entries:
        return []
    values = await services.ephemeral.get_many(
        [_ended_key(realm, user_id)] + [k for e in entries for k in (e[0], _seen_key(e[0]))])
    ended, values = values[0], values[1:]
    cutoff = ended.get("sessions_up_to", ended["up_to"]) if ended else None
    live = []
    for i, entry in enumerate(entries):
        data = values[2 * i]
        if _is_live(data, values[2 * i + 1], now, realm) and (
                cutoff is None or data.get("created", data["auth_time"]) > cutoff):
            live.append((entry[1], entry[2]))
    return sorted(live)


async def end_session(response: CookieSink, services: Services, realm: Realm, session: BrowserSession) -> None:
    await services.ephemeral.write_many([], [session.key, _seen_key(session.key)])
    response.del_cookie(cookie_name(realm), path="/")


def _ended_key(realm: Realm, user_id: str) -> str:
    return user_cutoff_key(realm.name, user_id)  # access tokens of the user honour it too


async def end_user_sessions(services: Services, realm: Realm, user_id: str, *, signing_in_now: bool = False) -> None:
    """End every browser session of the user, on every instance (password reset), and the
    access tokens issued to the user up to now (compared on their millisecond issue time,
    engine.tokens.revocation: a token minted just after this lives, even in the same second).

    `signing_in_now`: the caller signs the user in within this very request (a federated
    login that has just proven the address): with a frozen or coarse clock that sign-in may
    happen at the very same instant, so the cutoff is then a hair before now. Otherwise
    sessions and tokens of the very same instant count as ended (the safe side)."""
    now = services.clock.now().timestamp()
    entry = {"up_to": now - 1e-6 if signing_in_now else now}
    lifetime = int(realm.config.lifetimes.session.total_seconds())
    await services.ephemeral.put(_ended_key(realm, user_id), entry,
                                 lifetime + 86400)  # a day of slack for a lifetime changed by reload
    # OIDC Back-Channel Logout 1.0: the clients that got tokens in those sessions are told.
    await user_sessions_ended(services, realm, user_id)
