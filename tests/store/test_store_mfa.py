"""Conformance of the durable tier's second-factor storage (issue 20: TOTP factors and
recovery codes), run against SQLite (embedded) and PostgreSQL (production) through the
`durable` fixture. Single-use is atomic: of concurrent uses exactly one wins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from engine.store import DurableStore, TotpFactor
from tests.store.test_store_durable import user

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def test_totp_set_get_replace_delete(durable: DurableStore):
    assert await durable.get_totp("main", "u-t1") is None
    await durable.set_totp("main", TotpFactor(user_id="u-t1", secret=b"\x00sealed\xff", created_at=T0))
    factor = await durable.get_totp("main", "u-t1")
    assert factor == TotpFactor(user_id="u-t1", secret=b"\x00sealed\xff", created_at=T0, last_step=None)
    assert await durable.get_totp("other", "u-t1") is None  # per realm
    await durable.set_totp("main", TotpFactor(user_id="u-t1", secret=b"new", created_at=T0, last_step=7))
    assert (await durable.get_totp("main", "u-t1")).secret == b"new"
    assert (await durable.get_totp("main", "u-t1")).last_step == 7
    assert await durable.delete_totp("main", "u-t1") is True
    assert await durable.delete_totp("main", "u-t1") is False
    assert await durable.get_totp("main", "u-t1") is None


async def test_totp_step_is_taken_once_and_only_forward(durable: DurableStore):
    """RFC 6238 §5.2: a code (its time step) is accepted once; an earlier one never again."""
    assert await durable.use_totp_step("main", "u-t2", 100) is False  # no factor
    await durable.set_totp("main", TotpFactor(user_id="u-t2", secret=b"s", created_at=T0))
    assert await durable.use_totp_step("main", "u-t2", 100) is True
    assert await durable.use_totp_step("main", "u-t2", 100) is False
    assert await durable.use_totp_step("main", "u-t2", 99) is False
    assert await durable.use_totp_step("main", "u-t2", 101) is True
    assert (await durable.get_totp("main", "u-t2")).last_step == 101


async def test_concurrent_uses_of_one_totp_step_have_one_winner(durable: DurableStore):
    await durable.set_totp("main", TotpFactor(user_id="u-t3", secret=b"s", created_at=T0))
    results = await asyncio.gather(*(durable.use_totp_step("main", "u-t3", 500) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_recovery_codes_replace_use_count_delete(durable: DurableStore):
    assert await durable.count_recovery_codes("main", "u-r1") == 0
    await durable.set_recovery_codes("main", "u-r1", ["h1", "h2", "h3"], T0)
    assert await durable.count_recovery_codes("main", "u-r1") == 3
    assert await durable.use_recovery_code("main", "u-r1", "h2") is True
    assert await durable.use_recovery_code("main", "u-r1", "h2") is False  # single use
    assert await durable.use_recovery_code("other", "u-r1", "h1") is False  # per realm
    assert await durable.use_recovery_code("main", "u-other", "h1") is False  # per user
    assert await durable.count_recovery_codes("main", "u-r1") == 2
    await durable.set_recovery_codes("main", "u-r1", ["n1", "n2"], T0)  # regenerated: the old set is gone
    assert await durable.use_recovery_code("main", "u-r1", "h1") is False
    assert await durable.count_recovery_codes("main", "u-r1") == 2
    assert await durable.delete_recovery_codes("main", "u-r1") == 2
    assert await durable.count_recovery_codes("main", "u-r1") == 0


async def test_concurrent_uses_of_one_recovery_code_have_one_winner(durable: DurableStore):
    await durable.set_recovery_codes("main", "u-r2", ["only"], T0)
    results = await asyncio.gather(*(durable.use_recovery_code("main", "u-r2", "only") for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_deleting_a_user_removes_its_second_factors(durable: DurableStore):
    alice = user(email="mfa-gone@example.com")
    await durable.create_user(alice)
    await durable.set_totp("main", TotpFactor(user_id=alice.id, secret=b"s", created_at=T0))
    await durable.set_recovery_codes("main", alice.id, ["a", "b"], T0)
    assert await durable.delete_user("main", alice.id) is True
    assert await durable.get_totp("main", alice.id) is None
    assert await durable.count_recovery_codes("main", alice.id) == 0
