"""The password provider: verifies an email and password against the realm's users.

Unknown emails cost the same as known ones (a verify against a dummy hash), and every
failure is the same `LoginFailed`, so neither the answer nor its timing tells who has
an account."""

from __future__ import annotations

from pathlib import Path

from engine import ExternalIdentity, LoginFailed, ProviderContext
from plugins.password.hasher import Argon2Hasher

TEMPLATES = Path(__file__).parent / "templates"


class PasswordProvider:
    kind = "credentials"
    templates_dir = TEMPLATES
    form_template = "password_form.html"

    def __init__(self, settings, context: ProviderContext):
        self.settings = settings
        self.context = context
        params = settings.argon2
        self.hasher = Argon2Hasher(params.memory_cost, params.time_cost, params.parallelism)
        self._dummy_hash: str | None = None

    @property
    def _services(self):
        return self.context.services

    async def hash_password(self, password: str) -> str:
        return await self._services.passwords.hash(self.hasher, password)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash_password("dummy password for timing equality")
        return self._dummy_hash

    async def login(self, username: str, password: str) -> ExternalIdentity:
        accounts = self._services.accounts
        realm = self.context.realm
        user = await accounts.by_email(realm, username)
        stored = await accounts.password_hash(realm, user.id) if user is not None else None
        if user is None or stored is None or user.disabled:
            await self._services.passwords.verify(await self._dummy(), password)
            raise LoginFailed("invalid email or password")
        if not await self._services.passwords.verify(stored, password):
            raise LoginFailed("invalid email or password")
        if self.hasher.needs_rehash(stored):
            # Parameters changed, or an imported (verify-only) hash: upgrade now.
            await accounts.set_password_hash(realm, user.id, await self.hash_password(password))
        return ExternalIdentity(
            issuer=self.context.issuer, subject=user.id, email=user.email,
            email_verified=user.email_verified, user_id=user.id,
        )
