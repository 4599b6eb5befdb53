"""Single-use, expiring tokens for links sent by mail (email verification, password
reset): 256 random bits in the link, only their SHA-256 in the ephemeral store (a dump of
the store gives no usable link), an `exp` checked against the app's clock, and
redemption by an atomic take (`GETDEL`), so of two concurrent uses exactly one wins."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex

if TYPE_CHECKING:
    from engine.services import Services

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


def _key(realm: Realm, purpose: str, token: str) -> str:
    return f"{realm.name}:onetime:{purpose}:{sha256_hex(token)}"


async def issue(services: Services, realm: Realm, purpose: str, data: dict[str, Any], lifetime: timedelta) -> str:
    token = random_token(32)
    ttl = max(1, int(lifetime.total_seconds()))
    await services.ephemeral.put(_key(realm, purpose, token), {**data, "exp": services.clock.timestamp() + ttl}, ttl)
    return token


def _live(services: Services, data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None or data.get("exp", 0) <= services.clock.timestamp():
        return None
    return data


async def peek(services: Services, realm: Realm, purpose: str, token: str | None) -> dict[str, Any] | None:
    """The token's data if it is valid, without using it up."""
    if not token or not _TOKEN.match(token):
        return None
    return _live(services, await services.ephemeral.get(_key(realm, purpose, token)))


async def redeem(services: Services, realm: Realm, purpose: str, token: str | None) -> dict[str, Any] | None:
    """Use the token up: its data once, then None forever."""
    if not token or not _TOKEN.match(token):
        return None
    return _live(services, await services.ephemeral.take(_key(realm, purpose, token)))


async def discard(services: Services, realm: Realm, purpose: str, token: str) -> None:
    await services.ephemeral.delete(_key(realm, purpose, token))


async def link_user(services: Services, realm: Any, data: dict[str, Any] | None) -> Any:
    """The user a link was sent to, if it still exists, is enabled and still has the
    address the link was sent to (None otherwise)."""
    if data is None:
        return None
    user = await services.durable.get_user(realm.name, data["user_id"])
    if user is None or user.disabled or (user.email or "").lower() != data.get("email"):
        return None
    return user
