"""`KeyManager.keys_now` (the JWKS fast path cannot await): fresh keys as they are; keys
due for a re-read served while one background re-read runs; nothing when too old."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from engine.clock import FrozenClock
from engine.store import open_durable
from engine.tokens.keys import CACHE_TTL, KeyEncryption, KeyManager


async def test_keys_now_serves_stale_keys_once_while_re_reading(tmp_path):
    store = await open_durable(f"sqlite:///{tmp_path}/keys.db")
    await store.migrate()
    clock = FrozenClock()
    manager = KeyManager(store, KeyEncryption(b"k" * 32), clock)
    algs = ["ES256"]
    assert manager.keys_now("acme", algs) is None  # never read: the awaiting path reads them
    first = await manager.realm_keys("acme", algs)
    assert manager.keys_now("acme", algs) is first
    clock.advance(CACHE_TTL.total_seconds() + 1)
    assert manager.keys_now("acme", algs) is first  # stale, served; one re-read started
    assert len(manager._rereads) == 1
    assert manager.keys_now("acme", algs) is first and len(manager._rereads) == 1  # not a second one
    await asyncio.gather(*manager._rereads.values())
    fresh = manager.keys_now("acme", algs)
    assert fresh is not first and fresh.jwks == first.jwks  # re-read, same keys
    clock.advance((2 * CACHE_TTL + timedelta(seconds=1)).total_seconds())
    assert manager.keys_now("acme", algs) is None  # too old to serve without waiting
    await store.close()
