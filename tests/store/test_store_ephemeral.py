"""Conformance suite of the ephemeral tier, run against memory (embedded) and Redis
(production) through the `ephemeral` fixture, plus memory expiry on a fake clock."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from engine.store import EphemeralStore, StoreError
from engine.store.ephemeral.memory import MemoryEphemeralStore

VALUE = {"sub": "u1", "scope": ["openid", "email"], "exp": 1700000000, "nested": {"a": None}}


async def test_put_get_round_trips_json(ephemeral: EphemeralStore):
    """A JSON object reads back equal; a missing key reads None."""
    assert await ephemeral.put("main:code:a", VALUE, 60)
    assert await ephemeral.get("main:code:a") == VALUE
    assert await ephemeral.get("main:code:missing") is None


async def test_get_returns_a_copy(ephemeral: EphemeralStore):
    """Mutating a value read back does not change what is stored."""
    await ephemeral.put("k", {"list": [1]}, 60)
    got = await ephemeral.get("k")
    got["list"].append(2)
    assert await ephemeral.get("k") == {"list": [1]}


async def test_get_many_answers_in_order_with_none_for_absent(ephemeral: EphemeralStore):
    await ephemeral.put("a", {"n": 1}, 60)
    await ephemeral.put("c", {"n": 3}, 60)
    assert await ephemeral.get_many(["c", "b", "a"]) == [{"n": 3}, None, {"n": 1}]


async def test_put_overwrites_unless_only_if_absent(ephemeral: EphemeralStore):
    """A plain put replaces; only_if_absent refuses an existing key and writes nothing."""
    await ephemeral.put("k", {"v": 1}, 60)
    assert await ephemeral.put("k", {"v": 2}, 60)
    assert await ephemeral.get("k") == {"v": 2}
    assert not await ephemeral.put("k", {"v": 3}, 60, only_if_absent=True)
    assert await ephemeral.get("k") == {"v": 2}
    assert await ephemeral.put("fresh", {"v": 4}, 60, only_if_absent=True)
    assert await ephemeral.get("fresh") == {"v": 4}


async def test_take_returns_value_once(ephemeral: EphemeralStore):
    """take returns the value and removes it; the next take and get see nothing."""
    await ephemeral.put("k", VALUE, 60)
    assert await ephemeral.take("k") == VALUE
    assert await ephemeral.take("k") is None
    assert await ephemeral.get("k") is None


async def test_take_can_leave_a_mark_only_when_it_took_something(ephemeral: EphemeralStore):
    """take(leave=...) stores the mark (with its TTL) in the same step, and only when the
    value was there: a take of a missing key overwrites no mark."""
    await ephemeral.put("code", VALUE, 60)
    assert await ephemeral.take("code", leave=("used", {"first": True}, 30)) == VALUE
    assert await ephemeral.get("used") == {"first": True}
    assert 0 < (await ephemeral.ttl("used") or 0) <= 30
    assert await ephemeral.take("code", leave=("used", {"second": True}, 30)) is None
    assert await ephemeral.get("used") == {"first": True}
    assert await ephemeral.get("code") is None


async def test_swap_stores_and_returns_the_old_value(ephemeral: EphemeralStore):
    assert await ephemeral.swap("k", {"v": 1}, 60) is None
    assert await ephemeral.swap("k", {"v": 2}, 60) == {"v": 1}
    assert await ephemeral.get("k") == {"v": 2}
    with pytest.raises(ValueError):
        await ephemeral.swap("k", {"v": 3}, 0)


async def test_concurrent_swaps_see_every_value_once(ephemeral: EphemeralStore):
    """50 concurrent swaps: each old value is returned to exactly one swapper."""
    await asyncio.gather(*(ephemeral.ping() for _ in range(50)))
    olds = await asyncio.gather(*(ephemeral.swap("s", {"n": i}, 60) for i in range(50)))
    final = await ephemeral.get("s")
    seen = sorted([o["n"] for o in olds if o is not None] + [final["n"]])
    assert olds.count(None) == 1 and seen == list(range(50))


async def test_delete(ephemeral: EphemeralStore):
    """delete removes the key; deleting a missing key is not an error."""
    await ephemeral.put("k", VALUE, 60)
    await ephemeral.put("other", VALUE, 60)
    await ephemeral.delete("k")
    await ephemeral.delete("never-there")
    assert await ephemeral.get("k") is None
    assert await ephemeral.get("other") == VALUE


async def test_ttl_reports_seconds_left(ephemeral: EphemeralStore):
    """ttl reports the TTL given to put, and None for a missing key."""
    await ephemeral.put("k", VALUE, 120)
    assert await ephemeral.ttl("k") in (119, 120)
    assert await ephemeral.ttl("missing") is None
    await ephemeral.put("k", VALUE, 30)  # an overwrite sets the new TTL
    assert await ephemeral.ttl("k") in (29, 30)


async def test_incr_counts_and_keeps_first_ttl(ephemeral: EphemeralStore):
    """incr starts at 1 with the TTL, counts up, and never extends the TTL."""
    assert await ephemeral.incr("rl", 60) == 1
    assert await ephemeral.incr("rl", 600) == 2
    assert await ephemeral.incr("rl", 600) == 3
    assert await ephemeral.ttl("rl") in (59, 60)
    assert await ephemeral.incr("other", 600) == 1


async def test_incr_by_an_amount(ephemeral: EphemeralStore):
    """Batched counts (rate limits): incr adds `amount`, a new counter starts at it."""
    assert await ephemeral.incr("batch", 60, amount=5) == 5
    assert await ephemeral.incr("batch", 600) == 6
    assert await ephemeral.incr("batch", 600, amount=64) == 70
    assert await ephemeral.ttl("batch") in (59, 60)
    with pytest.raises(ValueError):
        await ephemeral.incr("batch", 60, amount=0)


async def test_incr_many_counts_several_in_one_step(ephemeral: EphemeralStore):
    """Rate-limit syncs: several counters at once, each as `incr` would (the first TTL
    kept), the new values in order; a key given twice counts twice."""
    assert await ephemeral.incr("a", 60) == 1
    assert await ephemeral.incr_many([("a", 600, 4), ("b", 30, 2), ("a", 600, 1)]) == [5, 2, 6]
    assert await ephemeral.ttl("a") in (59, 60)
    assert await ephemeral.ttl("b") in (29, 30)
    assert await ephemeral.incr_many([]) == []
    with pytest.raises(ValueError):
        await ephemeral.incr_many([("c", 60, 1), ("d", 60, 0)])
    assert await ephemeral.ttl("c") is None  # refused before anything was written


async def test_get_many_and_incr_counts_unless_a_guard_is_there(ephemeral: EphemeralStore):
    """Brute-force protection in one round trip: read the locks (and more), and count the
    attempt only when no lock (guard) is there."""
    await ephemeral.put("other", {"failures": 2}, 60)
    values, count = await ephemeral.get_many_and_incr(["lock:a", "lock:ip", "other"], "count", 60, guards=2)
    assert (values, count) == ([None, None, {"failures": 2}], 1)
    assert await ephemeral.ttl("count") in (59, 60)
    _, count = await ephemeral.get_many_and_incr(["lock:a", "lock:ip", "other"], "count", 600, guards=2)
    assert count == 2 and await ephemeral.ttl("count") in (59, 60)  # the first TTL is kept
    await ephemeral.put("lock:ip", {"until": 1}, 60)
    values, count = await ephemeral.get_many_and_incr(["lock:a", "lock:ip", "other"], "count", 60, guards=2)
    assert (values, count) == ([None, {"until": 1}, {"failures": 2}], None)
    assert await ephemeral.incr("count", 60) == 3  # the locked attempt was not counted
    _, count = await ephemeral.get_many_and_incr(["lock:a", "other"], "count", 60, guards=1)
    assert count == 4  # "other" is read, not a guard


async def test_write_many_puts_and_deletes_in_one_step(ephemeral: EphemeralStore):
    """A sign-in's writes together: the deletes, then the puts, each with its own TTL."""
    await ephemeral.put("flow", VALUE, 60)
    await ephemeral.put("count", {"n": 1}, 60)
    await ephemeral.write_many([("session", {"sid": "s"}, 30), ("code", VALUE, 60)], ["flow", "count", "absent"])
    assert await ephemeral.get_many(["flow", "count", "session", "code"]) == [None, None, {"sid": "s"}, VALUE]
    assert await ephemeral.ttl("session") in (29, 30)
    await ephemeral.write_many([("session", {"sid": "t"}, 60)], ["session"])  # deleted, then put
    assert await ephemeral.get("session") == {"sid": "t"}
    with pytest.raises(ValueError):
        await ephemeral.write_many([("x", VALUE, 60), ("y", VALUE, 0)], ["code"])
    with pytest.raises(TypeError):
        await ephemeral.write_many([("x", {"not json": object()}, 60)], ["code"])
    assert await ephemeral.get_many(["x", "code"]) == [None, VALUE]  # nothing written


async def test_incr_on_a_value_key_is_a_store_error(ephemeral: EphemeralStore):
    """A key holding a JSON object is not a counter."""
    await ephemeral.put("k", VALUE, 60)
    with pytest.raises(StoreError):
        await ephemeral.incr("k", 60)


async def test_non_positive_ttl_is_refused(ephemeral: EphemeralStore):
    """A TTL must be positive: a value without expiry would leak."""
    with pytest.raises(ValueError):
        await ephemeral.put("k", VALUE, 0)
    with pytest.raises(ValueError):
        await ephemeral.incr("c", -1)
    assert await ephemeral.get("k") is None


async def test_concurrent_takes_have_exactly_one_winner(ephemeral: EphemeralStore):
    """Of 100 concurrent takes of one key exactly one gets the value."""
    await ephemeral.put("main:code:x", VALUE, 60)
    await asyncio.gather(*(ephemeral.ping() for _ in range(50)))  # warm pool: real overlap
    results = await asyncio.gather(*(ephemeral.take("main:code:x") for _ in range(100)))
    assert [r for r in results if r is not None] == [VALUE]


async def test_concurrent_only_if_absent_has_one_winner(ephemeral: EphemeralStore):
    """Of 50 concurrent only_if_absent puts exactly one writes, and its value is kept."""
    await asyncio.gather(*(ephemeral.ping() for _ in range(50)))
    results = await asyncio.gather(
        *(ephemeral.put("lock", {"owner": i}, 60, only_if_absent=True) for i in range(50))
    )
    assert results.count(True) == 1
    assert await ephemeral.get("lock") == {"owner": results.index(True)}


async def test_concurrent_incr_counts_every_call(ephemeral: EphemeralStore):
    """100 concurrent increments return 1..100 each once."""
    results = await asyncio.gather(*(ephemeral.incr("rl", 60) for _ in range(100)))
    assert sorted(results) == list(range(1, 101))


@pytest.mark.production
@pytest.mark.parametrize("backend", ["production"], indirect=True)
async def test_redis_keys_carry_the_prefix(ephemeral: EphemeralStore, backend):
    """Every Redis key is written under the configured prefix."""
    await ephemeral.put("main:sess:1", VALUE, 60)
    await ephemeral.incr("main:rl:1", 60)
    client = aioredis.Redis.from_url(backend.ephemeral_url, decode_responses=True)
    try:
        keys = sorted([k async for k in client.scan_iter(match=backend.ephemeral_prefix + "*")])
    finally:
        await client.aclose()
    assert keys == [
        backend.ephemeral_prefix + "main:rl:1",
        backend.ephemeral_prefix + "main:sess:1",
    ]


# memory expiry, on a clock the test moves


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory(clock: FakeClock) -> MemoryEphemeralStore:
    return MemoryEphemeralStore(clock=clock)


async def test_memory_values_expire(memory: MemoryEphemeralStore, clock: FakeClock):
    """A value is readable until its TTL runs out and gone from then on."""
    await memory.put("k", VALUE, 10)
    clock.now += 9.5
    assert await memory.get("k") == VALUE
    assert await memory.ttl("k") == 1
    clock.now += 0.5
    assert await memory.get("k") is None
    assert await memory.take("k") is None
    assert await memory.ttl("k") is None


async def test_memory_expired_key_counts_as_absent(memory: MemoryEphemeralStore, clock: FakeClock):
    """only_if_absent succeeds over an expired value; incr restarts at 1 after expiry."""
    await memory.put("k", {"v": 1}, 10)
    clock.now += 11
    assert await memory.put("k", {"v": 2}, 10, only_if_absent=True)
    assert await memory.get("k") == {"v": 2}
    assert await memory.incr("c", 5) == 1
    clock.now += 3
    assert await memory.incr("c", 100) == 2
    assert await memory.ttl("c") == 2  # the first TTL still rules
    clock.now += 2
    assert await memory.incr("c", 5) == 1


async def test_memory_sweeps_expired_entries(memory: MemoryEphemeralStore, clock: FakeClock):
    """Expired entries that nobody reads again are dropped by the periodic sweep."""
    for i in range(100):
        await memory.put(f"k{i}", VALUE, 1)
    await memory.put("long", VALUE, 3600)
    clock.now += 61
    await memory.put("trigger", VALUE, 10)
    assert sorted(memory._data) == ["long", "trigger"]
