"""Recovery codes: the way in when the second factor is lost. A set is made at enrolment
(`mfa.recovery_codes` of them) and shown once; only their SHA-256 is stored (each has 50
random bits, and a guess is limited like a TOTP code, so a fast hash is enough). Each is
single-use: using one deletes it atomically. Regenerating replaces the whole set. Using one
is an audit event and a mail to the user."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from engine.realm import Realm
from engine.secrets_util import sha256_hex

if TYPE_CHECKING:
    from engine.services import Services

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed back
GROUPS, GROUP = 2, 5


def _hash(code: str) -> str:
    return sha256_hex("tessera recovery code\0" + normalised(code))


def normalised(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def new_code() -> str:
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP)) for _ in range(GROUPS))


async def regenerate(services: Services, realm: Realm, user_id: str) -> list[str]:
    """A new set (the old one is gone); the codes in clear, to be shown once."""
    codes = [new_code() for _ in range(realm.config.mfa.recovery_codes)]
    await services.durable.set_recovery_codes(realm.name, user_id, [_hash(c) for c in codes], services.clock.now())
    return codes


async def use(services: Services, realm: Realm, user_id: str, code: str) -> bool:
    """Spend the code (True) if it is one of the user's unused codes."""
    if not 1 <= len(normalised(code)) <= 64:
        return False
    return await services.durable.use_recovery_code(realm.name, user_id, _hash(code))
