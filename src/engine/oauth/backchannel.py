"""OpenID Connect Back-Channel Logout 1.0, the part that decides who is told: when a
browser session ends, every client that got tokens in it and registered a
`backchannel_logout_uri` is queued a logout token (§2.5); engine.web.backchannel delivers
the queue. The logout page, the password reset and the administrator only enqueue (one
durable write), so a slow or dead receiver never holds them up.

Which clients got tokens in which session is a durable record made when the code is
exchanged (`session_clients`), only for clients with a back-channel URI: the other
clients cost no write. A client given a URI by a reload is told about sessions that got
tokens after the reload."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from engine.config import Client
from engine.realm import Realm
from engine.store.protocols import LogoutDelivery
from engine.tokens.issue import new_jti

if TYPE_CHECKING:
    from engine.services import Services


async def record_session_client(services: Services, realm: Realm, client: Client, user_id: str,
                                session_id: str | None) -> None:
    """`client` got tokens in browser session `session_id` (at the code exchange)."""
    if session_id and client.backchannel_logout_uri:
        await services.durable.record_session_client(realm.name, session_id, client.client_id, user_id,
                                                     services.clock.now())


async def session_ended(services: Services, realm: Realm, user_id: str, session_id: str) -> int:
    """RP-initiated logout of one session: a logout token with its `sid` to each client of it."""
    pairs = await services.durable.take_session_clients(realm.name, user_id, session_id)
    return await _enqueue(services, realm, user_id, pairs, session_scoped=True)


async def user_sessions_ended(services: Services, realm: Realm, user_id: str) -> int:
    """Every session of the user ended (password reset, user disabled, sessions revoked, an
    address proven): a client that requires `sid` is told per session, the others once,
    by `sub` alone (§2.4: a logout token for all the user's sessions at that RP)."""
    pairs = await services.durable.take_session_clients(realm.name, user_id)
    return await _enqueue(services, realm, user_id, pairs, session_scoped=False)


async def _enqueue(services: Services, realm: Realm, user_id: str, pairs: list[tuple[str, str]], *,
                   session_scoped: bool) -> int:
    now: datetime = services.clock.now()
    targets: dict[tuple[str, str | None], None] = {}
    for session_id, client_id in pairs:
        client = realm.client(client_id)
        if client is None or not client.backchannel_logout_uri:
            continue  # removed by a reload, or no longer wants to be told
        sid = session_id if session_scoped or client.backchannel_logout_session_required else None
        targets.setdefault((client_id, sid), None)
    deliveries = [
        LogoutDelivery(id=new_jti(), realm=realm.name, client_id=client_id, subject=user_id, session_id=sid,
                       created_at=now, next_at=now)
        for client_id, sid in targets
    ]
    await services.durable.enqueue_logout_deliveries(deliveries)
    return len(deliveries)
