"""Time-based one-time passwords as a second factor (RFC 6238, through pyotp): 30-second
steps, 6 digits, HMAC-SHA-1 (what every authenticator app reads from an `otpauth://` URI),
a code of the step before or after accepted too (clock drift), and each code accepted once:
the store records the step of the last accepted code and takes only a later one, atomically
(engine.store DurableStore.use_totp_step), so a code seen over a shoulder is worth nothing.

The secret is kept encrypted under the key-encryption key, as signing keys are
(engine.tokens.keys.KeyEncryption: AES-256-GCM, realm and `totp:<user>` bound as associated
data). While the user enrols, the new secret waits in the ephemeral store, encrypted the
same way, until a first code confirms it."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import pyotp
import segno

from engine.realm import Realm
from engine.store.protocols import TotpFactor

if TYPE_CHECKING:
    from engine.services import Services

STEP = 30  # seconds (RFC 6238 §5.2)
DIGITS = 6
DRIFT = 1  # steps either side accepted


def new_secret() -> str:
    """160 random bits, base32 (RFC 4226 §4 recommends 160)."""
    return pyotp.random_base32(32)


def _aad(user_id: str) -> str:
    return f"totp:{user_id}"


def seal(services: Services, realm: Realm, user_id: str, secret: str) -> bytes:
    return services.keys.encryption.encrypt(realm.name, _aad(user_id), secret.encode())


def unseal(services: Services, realm: Realm, user_id: str, sealed: bytes) -> str:
    return services.keys.encryption.decrypt(realm.name, _aad(user_id), sealed).decode()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as inline SVG markup (the pages' CSP allows no data: images)."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2, title="QR code for your authenticator app")


def normalised(code: str) -> str:
    return "".join(code.split()).replace("-", "")


def matching_step(secret: str, code: str, now: int) -> int | None:
    """The time step within ±DRIFT of `now` whose code is `code`, or None."""
    code = normalised(code)
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    current = now // STEP
    for step in range(current - DRIFT, current + DRIFT + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None


async def verify(services: Services, realm: Realm, user_id: str, code: str) -> bool:
    """The user's code is right and was not accepted before (used up now)."""
    factor = await services.durable.get_totp(realm.name, user_id)
    if factor is None:
        return False
    step = matching_step(unseal(services, realm, user_id, factor.secret), code, services.clock.timestamp())
    if step is None:
        return False
    return await services.durable.use_totp_step(realm.name, user_id, step)


async def enrol(services: Services, realm: Realm, user_id: str, secret: str, code: str) -> bool:
    """Confirm a new secret with a first code; store it (replacing any earlier one)."""
    step = matching_step(secret, code, services.clock.timestamp())
    if step is None:
        return False
    await services.durable.set_totp(realm.name, TotpFactor(
        user_id=user_id, secret=seal(services, realm, user_id, secret), created_at=services.clock.now(),
        last_step=step))
    return True
