"""Email + password: the realm's own users, argon2id-hashed (plugin `password`).

Also registers a verify-only PBKDF2-SHA256 hasher (Django's format), so users imported
from another system sign in with their old password and are upgraded to argon2id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import ProviderSettings, hookimpl
from plugins.password.hasher import Argon2Hasher
from plugins.password.pbkdf2 import Pbkdf2Sha256Hasher
from plugins.password.provider import PasswordProvider


class Argon2Params(BaseModel):
    """argon2id parameters; the defaults are OWASP's (m=19 MiB, t=2, p=1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    memory_cost: int = Field(19456, ge=1024, description="KiB")
    time_cost: int = Field(2, ge=1)
    parallelism: int = Field(1, ge=1)


class PasswordSettings(ProviderSettings):
    type: Literal["password"]
    registration: bool = Field(False, description="let people create accounts at /register")
    require_verified_email: bool = True
    min_length: int = Field(8, ge=8, le=64, description="NIST SP 800-63B: at least 8")
    max_length: int = Field(1024, ge=64, le=4096, description="long passphrases are welcome")
    argon2: Argon2Params = Argon2Params()


@hookimpl
def tessera_register_providers(registry):
    registry.add("password", PasswordSettings, PasswordProvider)


@hookimpl(trylast=True)
def tessera_register_hashers(registry):
    registry.add(Argon2Hasher())
    registry.add(Pbkdf2Sha256Hasher())  # verify-only: imported accounts, upgraded at sign-in
