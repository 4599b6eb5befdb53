"""Everything a handler needs, owned by the app (one object under one typed key)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.accounts.passwords import PasswordService
from engine.accounts.users import Accounts
from engine.clock import Clock
from engine.events import Event
from engine.logs import current_request_id
from engine.metrics import Metrics
from engine.plugins import Plugins
from engine.realm import Runtime
from engine.store.protocols import AuditEvent, DurableStore, EphemeralStore
from engine.tokens.issue import TokenService
from engine.tokens.keys import KeyManager
from engine.tokens.refresh import RefreshTokens

if TYPE_CHECKING:  # these modules import this one's users: names for the type checker only
    import aiohttp

    from engine.mail.service import MailService
    from engine.oauth.ratelimit import LocalCounters

log = logging.getLogger("engine.audit")


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
    # The shared client session for upstreams, only while the app runs (engine.http).
    http: aiohttp.ClientSession | None = None
    # Templated mail, delivered in the background (engine.mail.service).
    mail: MailService = field(default=None)  # type: ignore[assignment]
    # Sign-in delays (engine.accounts.lockout.default_sleep); tests inject one that records.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # This process's rate-limit windows (engine.oauth.ratelimit), made on first use.
    rate_counters: LocalCounters | None = None
    # Reloads run one at a time, in the order asked (engine.reload); asyncio.Lock binds
    # to the running loop only when first contended, so it can be made here.
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    metrics: Metrics = field(default_factory=Metrics)  # this app's Prometheus metrics (engine.metrics)
    _pending_audits: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

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
        """Record an audit event durably and hand it to the `tessera_event` sinks (the
        metrics sink among them). The request id, when there is one, joins the data so an
        event can be matched with its request's log lines."""
        now = self.clock.now()
        if "request_id" not in data and (request_id := current_request_id()) is not None:
            data["request_id"] = request_id
        await self.durable.append_event(
            AuditEvent(realm=realm, type=type, at=now, user_id=user_id, client_id=client_id, ip=ip, data=data)
        )
        self.plugins.emit(Event(realm=realm, type=type, at=now, user_id=user_id, client_id=client_id, ip=ip, data=data))

    def audit_soon(self, realm: str, type: str, data: dict[str, Any] | None = None) -> None:
        """`audit` from synchronous code (it is the key manager's `on_event` callback):
        recorded in the background; `drain_audits` waits for what is pending before the
        stores close."""

        async def record() -> None:
            try:
                await self.audit(realm, type, **(data or {}))
            except Exception:  # an audit write must not break what it records
                log.warning("could not record the %s event of realm %s", type, realm, exc_info=True)

        task = asyncio.get_running_loop().create_task(record())
        self._pending_audits.add(task)
        task.add_done_callback(self._pending_audits.discard)

    async def drain_audits(self) -> None:
        while self._pending_audits:
            await asyncio.gather(*list(self._pending_audits), return_exceptions=True)
