"""Email + password: the realm's own users, argon2id-hashed (plugin `password`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import ProviderSettings, hookimpl
from plugins.password.hasher import Argon2Hasher
from plugins.password.provider import PasswordProvider


class Argon2Params(BaseModel):
    """argon2id parameters; the defaults are OWASP's (m=19 MiB, t=2, p=1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    memory_cost: int = Field(19456, ge=1024, description="KiB")
    time_cost: int = Field(2, ge=1)
    parallelism: int = Field(1, ge=1)


class PasswordSettings(ProviderSettings):
    type: Literal["password"]
    registration: bool = False
    require_verified_email: bool = True
    min_length: int = Field(8, ge=8, le=64)
    argon2: Argon2Params = Argon2Params()


@hookimpl
def tessera_register_providers(registry):
    registry.add("password", PasswordSettings, PasswordProvider)


@hookimpl(trylast=True)
def tessera_register_hashers(registry):
    registry.add(Argon2Hasher())
