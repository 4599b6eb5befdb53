"""Production ephemeral store: Redis through redis.asyncio (needs Redis >= 7.0).

Values are JSON strings under `<prefix><key>`. `take` is `GETDEL` (one of N concurrent
takers gets the value; with `leave`, a Lua script that also `SET`s the mark when it took
something), `swap` is `SET GET EX`, `put(only_if_absent=True)` is `SET NX EX`, and `incr` is
`INCR` + `EXPIRE NX` in one MULTI/EXEC so a counter never lives without a TTL and its TTL
is never extended. `write_many` and `incr_many` are one MULTI/EXEC each (one round trip
for what would be several); `get_many_and_incr` is a Lua script (MGET, then the counter
only when no guard key is there).

Faults: every command has one deadline (`_Deadline`: waiting for a pooled connection,
sending, reading), so a dead or hung Redis fails fast with `StoreUnavailable` (503)
instead of hanging requests; redis-py's own socket timeouts are off because its send
timeout wraps every write in a task of its own (issue 7: a tenth of a login's event-loop
time went to timeouts). A command cut off by the deadline has its connection closed by
redis-py, so no late reply is ever read as another command's. There is no retry loop with
backoff (redis-py's default client retries for seconds). A command that meets a
connection closed by the server is retried once, at once, on a new connection: after a
Redis restart the pool's old connections are all dead, and without that retry each of
them would fail one request after Redis is back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.store.ephemeral.checks import check_counter, check_ttl
from engine.store.protocols import StoreError, StoreUnavailable


def _store_error(exc: BaseException) -> Exception | None:
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)):
        return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")
    if isinstance(exc, ResponseError):
        return StoreError(f"redis: {exc}")
    return None


_TAKE_AND_LEAVE = """
local value = redis.call('GETDEL', KEYS[1])
if value then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) end
return value
"""


# KEYS: the keys to read, then the counter. ARGV: the TTL, how many of the keys guard.
_GET_MANY_AND_INCR = """
local counter = table.remove(KEYS)
local values = redis.call('MGET', unpack(KEYS))
for i = 1, tonumber(ARGV[2]) do
  if values[i] then return {values, false} end
end
local count = redis.call('INCR', counter)
redis.call('EXPIRE', counter, ARGV[1], 'NX')
return {values, count}
"""


class _Deadline:
    """`async with`: the command inside (a pooled connection, sending, reading) finishes
    within `seconds`, and Redis errors come out as store errors (the deadline as
    StoreUnavailable)."""

    __slots__ = ("seconds", "_timeout")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def __aenter__(self) -> None:
        self._timeout = asyncio.timeout(self.seconds)
        await self._timeout.__aenter__()

    async def __aexit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> bool:
        try:
            await self._timeout.__aexit__(kind, exc, traceback)
        except TimeoutError as expired:
            raise StoreUnavailable(f"redis: no answer within {self.seconds} s") from expired
        mapped = None if exc is None else _store_error(exc)
        if mapped is not None:
            raise mapped from exc
        return False


class RedisEphemeralStore:
    """`EphemeralStore` on Redis. Open with `RedisEphemeralStore.open(url, prefix=...)`."""

    def __init__(self, pool: aioredis.BlockingConnectionPool, *, prefix: str = "tessera:", timeout: float = 2.0):
        self._pool = pool
        self._timeout = timeout
        self._redis = aioredis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._take_and_leave = self._redis.register_script(_TAKE_AND_LEAVE)  # EVALSHA, loaded on first use
        self._get_many_and_incr = self._redis.register_script(_GET_MANY_AND_INCR)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = "tessera:",
        max_connections: int = 50,
        timeout: float = 2.0,
    ) -> RedisEphemeralStore:
        """Connect and PING; StoreUnavailable if Redis cannot be reached."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=None,  # the command's deadline covers the wait for a connection
            socket_connect_timeout=timeout,
            socket_timeout=None,  # and sending and reading (`_Deadline`)
            decode_responses=True,
            # Not on timeouts: a hung server fails the request at the deadline.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        store = cls(pool, prefix=prefix, timeout=timeout)
        try:
            await store.ping()
        except BaseException:
            await store.close()
            raise
        return store

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def ping(self) -> None:
        async with _Deadline(self._timeout):
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()  # Redis.aclose() leaves a pool it was given open

    async def put(
        self, key: str, value: dict[str, Any], ttl: int, *, only_if_absent: bool = False
    ) -> bool:
        check_ttl(ttl)
        text = json.dumps(value)
        async with _Deadline(self._timeout):
            written = await self._redis.set(self._key(key), text, ex=ttl, nx=only_if_absent)
        return bool(written)

    async def get(self, key: str) -> dict[str, Any] | None:
        async with _Deadline(self._timeout):
            text = await self._redis.get(self._key(key))
        return None if text is None else json.loads(text)

    async def get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        async with _Deadline(self._timeout):
            texts = await self._redis.mget([self._key(key) for key in keys])
        return [None if text is None else json.loads(text) for text in texts]

    async def take(self, key: str, *, leave: tuple[str, dict[str, Any], int] | None = None) -> dict[str, Any] | None:
        async with _Deadline(self._timeout):
            if leave is None:
                text = await self._redis.getdel(self._key(key))
            else:
                mark_key, mark, ttl = leave
                check_ttl(ttl)
                text = await self._take_and_leave(keys=[self._key(key), self._key(mark_key)],
                                                  args=[json.dumps(mark), ttl])
        return None if text is None else json.loads(text)

    async def swap(self, key: str, value: dict[str, Any], ttl: int) -> dict[str, Any] | None:
        check_ttl(ttl)
        async with _Deadline(self._timeout):
            text = await self._redis.set(self._key(key), json.dumps(value), ex=ttl, get=True)
        return None if text is None else json.loads(text)

    async def delete(self, key: str) -> None:
        async with _Deadline(self._timeout):
            await self._redis.delete(self._key(key))

    async def write_many(self, puts: list[tuple[str, dict[str, Any], int]], deletes: list[str]) -> None:
        for _, _, ttl in puts:
            check_ttl(ttl)
        texts = [json.dumps(value) for _, value, _ in puts]  # a bad value fails before any write
        async with _Deadline(self._timeout):
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in deletes:
                    pipe.delete(self._key(key))
                for (key, _, ttl), text in zip(puts, texts, strict=True):
                    pipe.set(self._key(key), text, ex=ttl)
                await pipe.execute()

    async def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        return (await self.incr_many([(key, ttl, amount)]))[0]

    async def get_many_and_incr(self, keys: list[str], counter: str, ttl: int, *,
                                guards: int) -> tuple[list[dict[str, Any] | None], int | None]:
        """One Lua script (EVALSHA): MGET, then INCR + EXPIRE NX unless a guard is there."""
        check_ttl(ttl)
        async with _Deadline(self._timeout):
            texts, count = await self._get_many_and_incr(
                keys=[*(self._key(key) for key in keys), self._key(counter)], args=[ttl, guards])
        return [None if text is None else json.loads(text) for text in texts], count

    async def incr_many(self, counters: list[tuple[str, int, int]]) -> list[int]:
        """INCRBY + EXPIRE NX per counter, all in one MULTI/EXEC."""
        for _, ttl, amount in counters:
            check_counter(ttl, amount)
        async with _Deadline(self._timeout):
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, ttl, amount in counters:
                    full = self._key(key)
                    pipe.incrby(full, amount)
                    pipe.expire(full, ttl, nx=True)
                replies = await pipe.execute()
        return [int(count) for count in replies[::2]]

    async def ttl(self, key: str) -> int | None:
        async with _Deadline(self._timeout):
            seconds = await self._redis.ttl(self._key(key))
        return None if seconds < 0 else int(seconds)  # -2: no key; -1: no TTL (never set)
