"""Password hashing off the event loop (STYLE.md §8): every hash and verify runs in a
worker thread, at most one per core this process may run on (argon2id takes ~19 MiB and
tens of ms each: two hashes sharing one core thrash its cache, ~20 % fewer per second than
one after the other), so token requests keep flowing while logins saturate the hasher."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.plugins import HasherRegistry


def yield_to_the_event_loop() -> None:
    """Hashing threads run at the lowest CPU priority (nice 19, this thread only on Linux):
    a hash uses every idle cycle, but the event loop thread preempts it as soon as a
    request arrives, so token requests do not wait behind a hash on a busy core
    (issue 7: client_credentials p99 while logins saturate the hasher). Not SCHED_IDLE:
    other busy processes on the core would starve logins altogether."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not on this platform, or not allowed: run as is
        pass


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: `taskset`, cgroup cpusets), not the
    machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on this platform
        return os.cpu_count() or 1


class PasswordService:
    def __init__(self, hashers: HasherRegistry, concurrency: int | None = None):
        self.hashers = hashers
        slots = concurrency or usable_cores()
        self._slots = asyncio.Semaphore(slots)
        self._executor = ThreadPoolExecutor(
            max_workers=slots, thread_name_prefix="hasher", initializer=yield_to_the_event_loop
        )

    async def run(self, function: Any, *args: Any) -> Any:
        async with self._slots:
            call = functools.partial(contextvars.copy_context().run, function, *args)  # as to_thread does
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def hash(self, hasher: Any, password: str) -> str:
        return await self.run(hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        hasher = self.hashers.for_hash(stored_hash)
        if hasher is None:
            return False
        return bool(await self.run(hasher.verify, stored_hash, password))
