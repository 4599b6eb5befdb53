"""Ephemeral-store writes gathered while one request is answered and sent together
(`EphemeralStore.write_many`: one round trip, one atomic step) before the answer leaves.

A password sign-in writes four things (the lockout count reset, the new session, the
authorization code, the end of the sign-in flow): one Redis MULTI/EXEC instead of four
round trips. A key appears at most once per batch (the deletes are applied before the
puts)."""

from __future__ import annotations

from typing import Any


class WriteBatch:
    __slots__ = ("_ephemeral", "_puts", "_deletes")

    def __init__(self, ephemeral: Any) -> None:
        self._ephemeral = ephemeral
        self._puts: list[tuple[str, dict[str, Any], int]] = []
        self._deletes: list[str] = []

    def put(self, key: str, value: dict[str, Any], ttl: int) -> None:
        self._puts.append((key, value, ttl))

    def delete(self, key: str) -> None:
        self._deletes.append(key)

    async def commit(self) -> None:
        """Send what was gathered (nothing if nothing was); the batch is empty afterwards."""
        if self._puts or self._deletes:
            puts, deletes, self._puts, self._deletes = self._puts, self._deletes, [], []
            await self._ephemeral.write_many(puts, deletes)
