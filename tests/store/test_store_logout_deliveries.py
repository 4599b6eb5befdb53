"""The durable records of OIDC Back-Channel Logout 1.0 (engine.oauth.backchannel), on
SQLite and PostgreSQL: which clients got tokens in which session, and the delivery queue
whose rows are claimed atomically under a lease (at-least-once, never lost)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from engine.store import DurableStore
from engine.store.protocols import LogoutDelivery

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def delivery(n: int, *, at: datetime = T0, sid: str | None = "s1") -> LogoutDelivery:
    return LogoutDelivery(id=f"jti-{n}", realm="main", client_id="web", subject="u1", session_id=sid,
                          created_at=at, next_at=at)


async def test_session_clients_are_taken_per_session_or_per_user(durable: DurableStore):
    for sid, client in [("s1", "web"), ("s1", "spa"), ("s2", "web")]:
        await durable.record_session_client("main", sid, client, "u1", T0)
    await durable.record_session_client("main", "s1", "web", "u1", T0)  # again: idempotent
    await durable.record_session_client("main", "s9", "web", "u2", T0)
    assert await durable.take_session_clients("main", "u1", "s1") == [("s1", "spa"), ("s1", "web")]
    assert await durable.take_session_clients("main", "u1", "s1") == []  # taken once
    assert await durable.take_session_clients("other", "u2") == []  # realms apart
    assert await durable.take_session_clients("main", "u2") == [("s9", "web")]
    assert await durable.forget_session_clients(T0 + timedelta(seconds=1)) == 1  # s2 of u1
    assert await durable.take_session_clients("main", "u1") == []


async def test_claim_leases_due_deliveries_once(durable: DurableStore):
    await durable.enqueue_logout_deliveries([delivery(1), delivery(2, sid=None),
                                            delivery(3, at=T0 + timedelta(minutes=5))])
    lease = T0 + timedelta(seconds=60)
    claimed = await durable.claim_logout_deliveries(T0, lease, 10)
    assert sorted(d.id for d in claimed) == ["jti-1", "jti-2"]  # jti-3 is not due
    one = next(d for d in claimed if d.id == "jti-1")
    assert one.attempts == 1 and one.next_at == lease and one.session_id == "s1" and one.subject == "u1"
    assert next(d for d in claimed if d.id == "jti-2").session_id is None
    assert await durable.claim_logout_deliveries(T0 + timedelta(seconds=59), lease, 10) == []  # leased
    # A claim whose instance died is taken again when the lease ends: never lost.
    again = await durable.claim_logout_deliveries(lease, lease + timedelta(seconds=60), 10)
    assert sorted(d.id for d in again) == ["jti-1", "jti-2"] and all(d.attempts == 2 for d in again)
    await durable.finish_logout_delivery("jti-1")
    await durable.retry_logout_delivery("jti-2", T0 + timedelta(seconds=1))
    now = T0 + timedelta(minutes=10)
    assert sorted(d.id for d in await durable.claim_logout_deliveries(now, now, 10)) == ["jti-2", "jti-3"]


async def test_concurrent_claims_never_share_a_delivery(durable: DurableStore):
    await durable.enqueue_logout_deliveries([delivery(n) for n in range(20)])
    lease = T0 + timedelta(seconds=60)
    batches = await asyncio.gather(*(durable.claim_logout_deliveries(T0, lease, 3) for _ in range(10)))
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 20
