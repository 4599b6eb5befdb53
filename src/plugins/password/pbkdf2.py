"""A verify-only hasher for accounts imported from Django (and anything else that writes
Django's format): `pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>`.

Verify-only by design (DESIGN.md "Plugins"): it has no `hash` method, so after the first
successful sign-in the password provider re-hashes the password with argon2id and the
PBKDF2 hash is gone. This is also the worked example of a `tessera_register_hashers`
hasher for plugin authors (bcrypt, scrypt, ... follow the same shape).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "pbkdf2_sha256$"
MAX_ITERATIONS = 10_000_000  # a corrupt or hostile hash must not pin a CPU for minutes


class Pbkdf2Sha256Hasher:
    scheme = "pbkdf2_sha256"

    def identifies(self, stored_hash: str) -> bool:
        return stored_hash.startswith(PREFIX)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            _scheme, iterations_text, salt, encoded = stored_hash.split("$")
            iterations = int(iterations_text)
            expected = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            return False
        if not 0 < iterations <= MAX_ITERATIONS or not expected:
            return False
        derived = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"),
                                      iterations, dklen=len(expected))
        return hmac.compare_digest(derived, expected)


def django_hash(password: str, salt: str, iterations: int = 600_000) -> str:
    """What Django's PBKDF2PasswordHasher writes (for tests and import scripts)."""
    derived = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return f"{PREFIX}{iterations}${salt}${base64.b64encode(derived).decode('ascii')}"
