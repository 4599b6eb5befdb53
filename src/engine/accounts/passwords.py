"""Password hashing off the event loop (STYLE.md §8): every hash and verify runs in a
worker thread, at most `cpu_count` at a time (argon2id takes ~19 MiB and tens of ms each),
so token requests keep flowing while logins saturate the hasher."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from engine.plugins import HasherRegistry


class PasswordService:
    def __init__(self, hashers: HasherRegistry, concurrency: int | None = None):
        self.hashers = hashers
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 2)

    async def run(self, function: Any, *args: Any) -> Any:
        async with self._slots:
            return await asyncio.to_thread(function, *args)

    async def hash(self, hasher: Any, password: str) -> str:
        return await self.run(hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        hasher = self.hashers.for_hash(stored_hash)
        if hasher is None:
            return False
        return bool(await self.run(hasher.verify, stored_hash, password))
