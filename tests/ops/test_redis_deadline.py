"""The Redis store's per-command deadline (engine.store.ephemeral.redis) against a real,
hung redis-server: a command that gets no answer fails as StoreUnavailable at its deadline,
and once the server answers again its late reply is never read as another command's (the
connection it was sent on is closed, not reused)."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.store.ephemeral.redis import RedisEphemeralStore
from engine.store.protocols import StoreUnavailable


async def test_a_late_reply_is_never_read_as_another_commands(redis_server):
    store = await RedisEphemeralStore.open(redis_server.url, prefix="deadline:", timeout=0.5, max_connections=1)
    try:
        await store.put("a", {"v": "a"}, 60)
        await store.put("b", {"v": "b"}, 60)
        redis_server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.get("a")
            assert time.monotonic() - started < 1.5
        finally:
            redis_server.resume()
        await asyncio.sleep(0.2)  # the reply to `get a` is on its way now
        assert await store.get("b") == {"v": "b"}  # one pooled connection: the same one, had it been kept
        assert await store.get("a") == {"v": "a"}
    finally:
        await store.close()
