"""argon2id, with OWASP's parameters by default (m=19 MiB, t=2, p=1)."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2Hasher:
    scheme = "argon2id"

    def __init__(self, memory_cost: int = 19456, time_cost: int = 2, parallelism: int = 1):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )

    def identifies(self, stored_hash: str) -> bool:
        return stored_hash.startswith("$argon2")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return not self.identifies(stored_hash) or self._hasher.check_needs_rehash(stored_hash)
