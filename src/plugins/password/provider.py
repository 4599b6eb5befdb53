"""The password provider: verifies an email and password against the realm's users.

Unknown emails cost the same as known ones (a verify against a dummy hash), and every
failure is the same `LoginFailed`, so neither the answer nor its timing tells who has
an account. Passwords are NFKC-normalised before hashing and verifying (NIST SP 800-63B
§5.1.1.2); a hash made by a verify-only hasher (an imported account), or with older
argon2 parameters, is replaced by a fresh argon2id hash at the first successful sign-in.
"""

from __future__ import annotations

from pathlib import Path

from engine import ExternalIdentity, LoginFailed, ProviderContext
from plugins.password.hasher import Argon2Hasher
from plugins.password.policy import normalise, password_problem

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

    # engine.PasswordCapability: what the engine's account pages rely on.
    @property
    def registration(self) -> bool:
        return bool(self.settings.registration)

    @property
    def require_verified_email(self) -> bool:
        return bool(self.settings.require_verified_email)

    @property
    def min_length(self) -> int:
        return int(self.settings.min_length)

    @property
    def max_length(self) -> int:
        return int(self.settings.max_length)

    def password_problem(self, password: str, *, email: str | None = None, name: str | None = None) -> str | None:
        """Why the realm's policy refuses `password` (a sentence for the user), or None."""
        names = [self.context.realm]
        if self.context.display_name:
            names.append(self.context.display_name)
        return password_problem(password, min_length=self.settings.min_length,
                                max_length=self.settings.max_length, email=email, name=name,
                                service_names=names)

    async def hash_password(self, password: str) -> str:
        return await self.context.passwords.hash(self.hasher, normalise(password))

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash_password("dummy password for timing equality")
        return self._dummy_hash

    async def _verify(self, stored: str, password: str) -> bool:
        passwords = self.context.passwords
        normalised = normalise(password)
        if await passwords.verify(stored, normalised):
            return True
        # An imported hash was made by a system that may not have normalised.
        return normalised != password and not self.hasher.identifies(stored) and \
            await passwords.verify(stored, password)

    async def login(self, username: str, password: str) -> ExternalIdentity:
        accounts = self.context.accounts
        realm = self.context.realm
        user, stored = await accounts.by_email_with_password_hash(realm, username)
        if user is None or stored is None or user.disabled:
            await self.context.passwords.verify(await self._dummy(), normalise(password))
            raise LoginFailed("invalid email or password")
        if not await self._verify(stored, password):
            raise LoginFailed("invalid email or password")
        if self.hasher.needs_rehash(stored):
            # Parameters changed, or an imported (verify-only) hash: upgrade now.
            await accounts.set_password_hash(realm, user.id, await self.hash_password(password))
        return ExternalIdentity(
            issuer=self.context.issuer, subject=user.id, email=user.email,
            email_verified=user.email_verified, user_id=user.id, user=user,
        )
