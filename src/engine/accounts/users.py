"""Users of a realm and their password credential; the API the password provider and
the CLI use (a provider reaches the part it may call as `context.accounts`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.accounts.emails import InvalidEmail, normalise_email, parse_email
from engine.hookspecs import PasswordCapability
from engine.realm import Realm
from engine.secrets_util import random_token
from engine.store.protocols import Credential, User

if TYPE_CHECKING:
    from engine.services import Services

__all__ = ["PASSWORD", "Accounts", "InvalidEmail", "create_user", "normalise_email", "password_provider"]

PASSWORD = "password"


def password_provider(realm: Realm) -> PasswordCapability | None:
    """The realm's provider that holds its own passwords (the `password` type), if any."""
    return next((p for p in realm.providers.values() if isinstance(p, PasswordCapability)), None)


class Accounts:
    def __init__(self, services: Services):
        self.services = services

    async def by_email(self, realm: str, email: str) -> User | None:
        """The user with this address (compared normalised and case-insensitively); None
        for text that is no valid address, which no account can hold."""
        normalised = parse_email(email)
        if normalised is None:
            return None
        return await self.services.durable.get_user_by_email(realm, normalised)

    async def get(self, realm: str, user_id: str) -> User | None:
        return await self.services.durable.get_user(realm, user_id)

    async def password_hash(self, realm: str, user_id: str) -> str | None:
        credential = await self.services.durable.get_credential(realm, user_id, PASSWORD)
        return credential.secret_hash if credential else None

    async def by_email_with_password_hash(self, realm: str, email: str) -> tuple[User | None, str | None]:
        """`by_email` and `password_hash` in one read (a sign-in)."""
        normalised = parse_email(email)
        if normalised is None:
            return None, None
        user, credential = await self.services.durable.get_user_and_credential_by_email(
            realm, normalised, PASSWORD)
        return user, credential.secret_hash if credential else None

    async def set_password_hash(self, realm: str, user_id: str, secret_hash: str) -> None:
        await self.services.durable.set_credential(
            realm, Credential(user_id=user_id, kind=PASSWORD, secret_hash=secret_hash, updated_at=self._now())
        )

    def _now(self) -> datetime:
        return self.services.clock.now()


async def create_user(
    services: Services,
    realm: Realm,
    *,
    email: str,
    password: str | None = None,
    password_hash: str | None = None,
    email_verified: bool = False,
    profile: dict[str, Any] | None = None,
    self_registered: bool = False,
) -> User:
    """Create a user (AlreadyExists if the email is taken, InvalidEmail if it is no
    address engine.accounts.emails accepts), with a password (or its hash, computed by
    the caller) if given. `self_registered`: made through /register (pruned while never
    verified, engine.accounts.pruning)."""
    user = User(
        id="usr_" + random_token(12),
        realm=realm.name,
        email=normalise_email(email),
        email_verified=email_verified,
        profile=profile or {},
        created_at=services.clock.now(),
        self_registered=self_registered,
    )
    secret_hash = password_hash
    if password is not None and secret_hash is None:
        provider = password_provider(realm)
        if provider is None:
            raise ValueError(f"realm {realm.name} has no password provider")
        secret_hash = await provider.hash_password(password)
    await services.durable.create_user(user)
    if secret_hash is not None:
        await services.accounts.set_password_hash(realm.name, user.id, secret_hash)
    return user
