"""Rate-limit counters (seed security musts): counted locally in batches far from the
limit, in the shared store near it, so instances count together and none over-admits by
more than its batch."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from engine.config.models import RateLimit
from engine.oauth.ratelimit import SYNC_INTERVAL, LocalCounters, batch_size
from engine.store import open_ephemeral
from tests.oauth.conftest import WORKER_SECRET, basic_auth

WINDOW = 60


async def admitted(counters: LocalCounters, limit: RateLimit, requests: int) -> int:
    count = 0
    for _ in range(requests):
        if await counters.hit("acme:rl:token:1.2.3.4:0", limit, WINDOW, 0, 1) <= limit.requests:
            count += 1
    return count


async def settle(*counters: LocalCounters) -> None:
    for counter in counters:
        await counter.flush()


def test_batch_is_a_sixteenth_of_the_limit_at_most():
    assert batch_size(RateLimit(requests=20)) == 1  # small limits: every request in the store
    assert batch_size(RateLimit(requests=600)) == 37
    assert batch_size(RateLimit(requests=10**9)) == 64


async def test_one_instance_admits_exactly_the_limit_and_shares_every_count():
    store = await open_ephemeral("memory://")
    counters = LocalCounters(store)
    limit = RateLimit(requests=1000, per=timedelta(minutes=1))
    assert await admitted(counters, limit, 1100) == 1000
    await settle(counters)
    assert await store.incr("acme:rl:token:1.2.3.4:0", WINDOW + 1) == 1101  # none lost


async def test_small_limits_are_exact():
    store = await open_ephemeral("memory://")
    limit = RateLimit(requests=5)
    first, second = LocalCounters(store), LocalCounters(store)
    assert await admitted(first, limit, 3) == 3
    assert await admitted(second, limit, 3) == 2  # the store knew about the first three


async def test_instances_over_admit_by_at_most_their_batches():
    store = await open_ephemeral("memory://")
    limit = RateLimit(requests=1000)
    instances = [LocalCounters(store) for _ in range(3)]
    total = 0
    for _ in range(40):  # interleaved, as a load balancer would spread them
        for counters in instances:
            total += await admitted(counters, limit, 10)
            await asyncio.sleep(0)
    await settle(*instances)
    assert 1000 <= total <= 1000 + 3 * batch_size(limit)


class CountingStore:
    """The memory store, with its round trips counted."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    async def incr(self, key, ttl, amount=1):
        self.calls.append(("incr", key))
        return await self.inner.incr(key, ttl, amount)

    async def incr_many(self, counters):
        self.calls.append(("incr_many", [key for key, _, _ in counters]))
        return await self.inner.incr_many(counters)


async def test_one_background_sync_carries_every_window():
    """Far from their limits, the counts of many windows (per IP, per account, per client)
    reach the store together, in one round trip, within SYNC_INTERVAL; none is lost."""
    store = CountingStore(await open_ephemeral("memory://"))
    counters = LocalCounters(store)
    limit = RateLimit(requests=10**6)
    keys = [f"acme:rl:login_account:{n}:0" for n in range(20)]
    for key in keys:  # the first request of a window is counted in the store at once
        await counters.hit(key, limit, WINDOW, 0, 1)
    store.calls.clear()
    for _ in range(3):
        for key in keys:
            await counters.hit(key, limit, WINDOW, 0, 1)
    assert store.calls == []  # nothing yet: counted here
    await asyncio.sleep(SYNC_INTERVAL * 2)
    await settle(counters)
    assert store.calls == [("incr_many", keys)]
    assert [await store.inner.incr(key, WINDOW + 1) for key in keys] == [5] * len(keys)


async def test_a_window_at_its_batch_is_shared_at_once():
    """A window with `batch` local counts does not wait for the interval."""
    store = CountingStore(await open_ephemeral("memory://"))
    counters = LocalCounters(store)
    limit = RateLimit(requests=10**6)
    await counters.hit("k", limit, WINDOW, 0, 1)
    for _ in range(batch_size(limit)):
        await counters.hit("k", limit, WINDOW, 0, 1)
    for _ in range(3):
        await asyncio.sleep(0)
    assert store.calls[1:] == [("incr_many", ["k"])]
    assert await store.inner.incr("k", WINDOW + 1) == batch_size(limit) + 2


async def test_an_instance_shares_its_local_counts_before_it_stops(idp, monkeypatch):
    """Counts held locally (far from the limit) reach the shared counter when the server
    stops, before the ephemeral store closes: the other instances go on counting with
    them, and no background sync is left pending."""
    monkeypatch.setattr("engine.oauth.ratelimit.SYNC_INTERVAL", 3600)  # no timed sync in between
    for _ in range(3):  # the first is counted in the store, the other two locally
        response = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                          headers=basic_auth("worker", WORKER_SECRET))
        assert response.status == 200
    now = idp.clock.timestamp()
    key = f"acme:rl:token:127.0.0.1:{now - now % 60}"
    ephemeral = idp.services.ephemeral
    seen = []
    close = ephemeral.close

    async def close_after_reading() -> None:
        seen.append(await ephemeral.incr(key, 61))  # what the store holds, plus this one
        await close()

    monkeypatch.setattr(ephemeral, "close", close_after_reading)
    await idp.client.close()
    assert seen == [4]


async def test_windows_are_known_per_bucket_until_swept():
    """`LocalCounters.live` says which buckets have a window here (a failure budget with
    none is not spent, read without building its key); windows that ended are forgotten
    with their bucket at the next sweep, so it stays as small as the windows."""
    counters = LocalCounters(await open_ephemeral("memory://"))
    limit = RateLimit(requests=10**6)
    await counters.hit("a:rl:client_auth_ip:1.2.3.4:0", limit, WINDOW, 0, 1, "client_auth_ip")
    await counters.hit("a:rl:client_auth_ip:5.6.7.8:0", limit, WINDOW, 0, 1, "client_auth_ip")
    await counters.hit("a:rl:token:1.2.3.4:0", limit, WINDOW, 0, 1, "token")
    assert counters.live == {"client_auth_ip": 2, "token": 1}
    await counters.flush()
    await counters.hit("a:rl:token:1.2.3.4:60", limit, WINDOW, WINDOW, WINDOW + 1, "token")  # sweeps the first three
    assert counters.live == {"token": 1} and list(counters.windows) == ["a:rl:token:1.2.3.4:60"]
