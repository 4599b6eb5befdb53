"""The hasher pool (engine.accounts.passwords): argon2id runs off the event loop, one hash
per core the process may use (issue 7: two memory-hard hashes sharing one core run slower
than one after the other)."""

from __future__ import annotations

import os

import pytest

from engine.accounts import passwords
from engine.accounts.passwords import PasswordService, usable_cores
from engine.plugins import Plugins


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_usable_cores_follow_the_affinity_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cores() == 1


async def test_one_hash_per_usable_core_at_a_time(monkeypatch):
    monkeypatch.setattr(passwords, "usable_cores", lambda: 1)
    service = PasswordService(Plugins().hashers)
    assert service._executor._max_workers == 1
    assert PasswordService(Plugins().hashers, concurrency=3)._executor._max_workers == 3
