"""Everything a handler needs, owned by the app (one object under one typed key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.accounts.passwords import PasswordService
from engine.accounts.users import Accounts
from engine.clock import Clock
from engine.events import Event
from engine.plugins import Plugins
from engine.realm import Runtime
from engine.store.protocols import AuditEvent, DurableStore, EphemeralStore
from engine.tokens.issue import TokenService
from engine.tokens.keys import KeyManager
from engine.tokens.refresh import RefreshTokens


@dataclass
class Services:
    plugins: Plugins
    clock: Clock
    runtime: Runtime  # swapped whole on reload; read it once per request
    durable: DurableStore = field(default=None)  # type: ignore[assignment]
    ephemeral: EphemeralStore = field(default=None)  # type: ignore[assignment]
    keys: KeyManager = field(default=None)  # type: ignore[assignment]
    tokens: TokenService = field(default=None)  # type: ignore[assignment]
    refresh: RefreshTokens = field(default=None)  # type: ignore[assignment]
    passwords: PasswordService = field(default=None)  # type: ignore[assignment]
    accounts: Accounts = field(default=None)  # type: ignore[assignment]
    extras: dict[str, Any] = field(default_factory=dict)

    async def audit(
        self,
        realm: str,
        type: str,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        ip: str | None = None,
        **data: Any,
    ) -> None:
        """Record an audit event durably and hand it to the `tessera_event` sinks."""
        now = self.clock.now()
        await self.durable.append_event(
            AuditEvent(realm=realm, type=type, at=now, user_id=user_id, client_id=client_id, ip=ip, data=data)
        )
        self.plugins.emit(Event(realm=realm, type=type, at=now, user_id=user_id, client_id=client_id, ip=ip, data=data))
