"""Embedded ephemeral store: a dict in this process, with expiry on `time.monotonic()`.

Every method runs without awaiting anything, so on one event loop each call is atomic
(`take` needs no lock). Values are stored as JSON text, exactly like the Redis backend, so
callers get a fresh copy on every read and non-JSON values fail the same way on both.
Only for a single process: `idp serve --workers N` needs the Redis backend.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from engine.store.ephemeral.checks import check_counter, check_ttl
from engine.store.protocols import StoreError

_SWEEP_EVERY = 60.0  # seconds between full scans that drop expired entries


class MemoryEphemeralStore:
    """`EphemeralStore` in a dict. `clock` (seconds, monotonic) lets tests move time."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._data: dict[str, tuple[float, str]] = {}  # key -> (expires_at, value)
        self._next_sweep = clock() + _SWEEP_EVERY

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()

    def _live(self, key: str, now: float) -> tuple[float, str] | None:
        entry = self._data.get(key)
        if entry is not None and entry[0] <= now:
            del self._data[key]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY
        for key in [k for k, (expires_at, _) in self._data.items() if expires_at <= now]:
            del self._data[key]

    async def put(
        self, key: str, value: dict[str, Any], ttl: int, *, only_if_absent: bool = False
    ) -> bool:
        check_ttl(ttl)
        text = json.dumps(value)
        now = self._clock()
        self._sweep(now)
        if only_if_absent and self._live(key, now) is not None:
            return False
        self._data[key] = (now + ttl, text)
        return True

    async def get(self, key: str) -> dict[str, Any] | None:
        entry = self._live(key, self._clock())
        return None if entry is None else json.loads(entry[1])

    async def get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        return [await self.get(key) for key in keys]

    async def take(self, key: str, *, leave: tuple[str, dict[str, Any], int] | None = None) -> dict[str, Any] | None:
        now = self._clock()
        entry = self._live(key, now)
        if entry is None:
            return None
        del self._data[key]
        if leave is not None:
            mark_key, mark, ttl = leave
            check_ttl(ttl)
            self._data[mark_key] = (now + ttl, json.dumps(mark))
        return json.loads(entry[1])

    async def swap(self, key: str, value: dict[str, Any], ttl: int) -> dict[str, Any] | None:
        check_ttl(ttl)
        now = self._clock()
        entry = self._live(key, now)
        self._data[key] = (now + ttl, json.dumps(value))
        return None if entry is None else json.loads(entry[1])

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def write_many(self, puts: list[tuple[str, dict[str, Any], int]], deletes: list[str]) -> None:
        for _, _, ttl in puts:
            check_ttl(ttl)
        texts = [json.dumps(value) for _, value, _ in puts]  # a bad value fails before any write
        now = self._clock()
        self._sweep(now)
        for key in deletes:
            self._data.pop(key, None)
        for (key, _, ttl), text in zip(puts, texts, strict=True):
            self._data[key] = (now + ttl, text)

    async def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        return (await self.incr_many([(key, ttl, amount)]))[0]

    async def get_many_and_incr(self, keys: list[str], counter: str, ttl: int, *,
                                guards: int) -> tuple[list[dict[str, Any] | None], int | None]:
        check_ttl(ttl)
        values = [await self.get(key) for key in keys]
        if any(value is not None for value in values[:guards]):
            return values, None
        return values, await self.incr(counter, ttl)

    async def incr_many(self, counters: list[tuple[str, int, int]]) -> list[int]:
        now = self._clock()
        self._sweep(now)
        for key, ttl, amount in counters:  # nothing is written unless every counter can be
            check_counter(ttl, amount)
            entry = self._live(key, now)
            if entry is not None and not entry[1].lstrip("-").isdigit():
                raise StoreError(f"key {key!r} holds a value, not a counter")
        counts = []
        for key, ttl, amount in counters:
            entry = self._live(key, now)  # the same key may come twice
            expires_at, count = (now + ttl, amount) if entry is None else (entry[0], int(entry[1]) + amount)
            self._data[key] = (expires_at, str(count))
            counts.append(count)
        return counts

    async def ttl(self, key: str) -> int | None:
        now = self._clock()
        entry = self._live(key, now)
        return None if entry is None else math.ceil(entry[0] - now)
