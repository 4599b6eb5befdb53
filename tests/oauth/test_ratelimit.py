"""Rate-limit counters (seed security musts): counted locally in batches far from the
limit, in the shared store near it, so instances count together and none over-admits by
more than its batch."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from engine.config.models import RateLimit
from engine.oauth.ratelimit import LocalCounters, batch_size
from engine.store import open_ephemeral

WINDOW = 60


async def admitted(counters: LocalCounters, limit: RateLimit, requests: int) -> int:
    count = 0
    for _ in range(requests):
        if await counters.hit("acme:rl:token:1.2.3.4:0", limit, WINDOW, 0, 1) <= limit.requests:
            count += 1
    return count


async def settle(*counters: LocalCounters) -> None:
    for counter in counters:
        while counter.tasks:
            await asyncio.gather(*list(counter.tasks))


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
