"""High-entropy random values and their SHA-256 hashes: how client secrets, refresh
tokens and one-time codes are made and stored (a slow hash would only cost throughput
for values with 256 bits of entropy)."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def random_token(nbytes: int = 32) -> str:
    """`nbytes` of randomness, base64url without padding (32 bytes = 256 bits)."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def same_hash(value: str, expected_hex: str) -> bool:
    """Constant-time check that sha256(value) == expected_hex."""
    return hmac.compare_digest(sha256_hex(value), expected_hex.lower())
