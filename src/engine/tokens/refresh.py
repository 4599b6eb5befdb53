"""Rotating refresh tokens in families (RFC 6749 §6 and §10.4, OAuth 2.0 Security BCP §4.14).

Every use replaces the token with a successor; presenting a replaced token again is
treated as theft and revokes the whole family (that device's login only).

The successor of a token is derived from it: `HMAC-SHA256(secret, token)`. It is as
random as the token itself, only its hash is stored, and a client that lost a response
can, within its `reuse_grace`, get *the same* successor back instead of killing its
family: retries and concurrent rotations can never fork a family into two live tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.config import Client
from engine.errors import InvalidGrant
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.protocols import RefreshFamily, RefreshToken, User

if TYPE_CHECKING:
    from engine.services import Services

PREFIX = "rt_"


@dataclass(frozen=True)
class Rotation:
    token: str  # the successor, plaintext, for the response only
    family: RefreshFamily
    checked: Any = None  # what `before` returned


class ReuseDetected(InvalidGrant):
    """A replaced refresh token came back: the family has been revoked."""


class RefreshTokens:
    def __init__(self, services: Services, secret: bytes):
        self.services = services
        self._secret = secret

    def successor(self, token: str) -> str:
        mac = hmac.new(self._secret, token.encode(), hashlib.sha256).digest()
        return PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def revoke_family(self, realm: Realm, family_id: str, reason: str) -> bool:
        """Revoke the family (its refresh tokens) and every access token minted from it
        (RFC 7009 §2.1); False if it was already revoked."""
        revoked = await self.services.durable.revoke_family(realm.name, family_id, reason, self.services.clock.now())
        await self.services.tokens.deny_grant(realm, family_id)
        return revoked

    async def start_family(
        self,
        realm: Realm,
        client: Client,
        *,
        user_id: str,
        scope: str,
        auth_time: int,
        session_id: str | None,
        data: dict[str, Any] | None = None,
        resources: tuple[str, ...] | None = None,
    ) -> tuple[str, RefreshFamily]:
        """A new family; `resources`: what the authorization granted (RFC 8707), which every
        refresh of the family issues for (None: the client's audiences now)."""
        now = self.services.clock.now()
        family = RefreshFamily(
            id="fam_" + random_token(16),
            realm=realm.name,
            client_id=client.client_id,
            user_id=user_id,
            scope=scope,
            session_id=session_id,
            auth_time=datetime.fromtimestamp(auth_time, UTC),
            created_at=now,
            expires_at=now + realm.config.lifetimes.refresh_token,
            data=data or {},
            resources=tuple(client.audience) if resources is None else tuple(resources),
        )
        token = PREFIX + random_token(32)
        first = RefreshToken(
            token_hash=sha256_hex(token), family_id=family.id, realm=realm.name,
            created_at=now, expires_at=family.expires_at,
        )
        await self.services.durable.create_refresh_family(family, first)
        return token, family

    async def rotate(self, realm: Realm, client: Client, token: str,
                     before: Callable[[RefreshFamily, User | None], Awaitable[Any]] | None = None
                     ) -> Rotation:
        """Replace `token` by its successor; InvalidGrant (ReuseDetected on reuse) otherwise.
        `before(family, user)` runs first, with the family's user as read with the token
        (None if gone; what it raises leaves the token unused; what it returns is
        `Rotation.checked`): what can refuse the request or fail on a store is done before
        the rotation commits, so a retry finds the token still live."""
        durable = self.services.durable
        now = self.services.clock.now()
        old_hash = sha256_hex(token)
        found = await durable.get_refresh_token_and_user(realm.name, old_hash)
        if found is None or found[1].client_id != client.client_id:
            # RFC 6749 §10.4: a token is bound to the client it was issued to.
            raise InvalidGrant("the refresh token is invalid, expired or revoked")
        _, family, user = found
        checked = await before(family, user) if before is not None else None
        new_token = self.successor(token)
        new = RefreshToken(
            token_hash=sha256_hex(new_token), family_id=family.id, realm=realm.name,
            created_at=now, expires_at=family.expires_at,
        )
        result = await durable.rotate_refresh_token(realm.name, old_hash, new, now)
        if result.status == "rotated":
            return Rotation(new_token, result.family or family, checked)
        if result.status == "already_rotated" and result.token is not None:
            replaced_at = result.token.replaced_at or now
            # A zero grace means none: with a frozen (or coarse) clock `now - replaced_at`
            # is 0, and `0 <= 0` would hand every concurrent replay the live successor.
            in_grace = client.reuse_grace > timedelta(0) and now - replaced_at <= client.reuse_grace
            if in_grace and result.token.replaced_by == new.token_hash:
                current = await durable.get_refresh_token(realm.name, new.token_hash)
                if current is not None and current[0].replaced_by is None and current[1].revoked_at is None:
                    return Rotation(new_token, current[1], checked)
            await self.revoke_family(realm, family.id, "refresh_reuse")
            await self.services.audit(
                realm.name, "refresh_reuse_detected", user_id=family.user_id,
                client_id=client.client_id, family_id=family.id,
            )
            raise ReuseDetected("the refresh token was already used; its family has been revoked")
        raise InvalidGrant("the refresh token is invalid, expired or revoked")

