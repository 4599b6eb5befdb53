"""Delivery of the back-channel logout queue (OIDC Back-Channel Logout 1.0 §2.5, §2.8;
engine.oauth.backchannel fills it).

At least once: a serving instance claims due rows from the durable store under a lease
(`claim_logout_deliveries`: one atomic UPDATE ... RETURNING, so two instances never send
the same row at once; a row claimed by an instance that dies is due again when the lease
ends, and a queued row waits in the store across restarts). Each attempt POSTs a freshly
signed logout token (the `jti` stays the same, so a receiver can tell a retry), through
the app's shared client session, with a short timeout and no redirect followed (a 3xx
would replay the token elsewhere). 200 or 204 is delivered (§2.8); anything else is
retried after 1 s, 2 s, 4 s, ... at most 10 min apart, and given up an hour after the
logout (a logout token is only good for two minutes after each signing; the RP's session
will have ended by itself long before). Failures and deliveries are counted in
`backchannel_logout_failures_total{realm}` and `backchannel_logout_deliveries_total{realm}`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp

from engine.store.protocols import LogoutDelivery

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # longer than one attempt can take (TIMEOUT)
GIVE_UP_AFTER = timedelta(hours=1)
MAX_BACKOFF = 600.0  # seconds
BATCH = 50
POLL_EVERY = 1.0  # seconds between looks at the queue when it is empty
PRUNE_EVERY = 3600.0  # seconds between removals of the session records of expired sessions
TIMEOUT = aiohttp.ClientTimeout(total=5, connect=3)
DELIVERED = (200, 204)


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failure: 1 s, 2 s, 4 s, ... at most MAX_BACKOFF."""
    return timedelta(seconds=min(2.0 ** max(attempts - 1, 0), MAX_BACKOFF))


async def deliver_due(services: Services, limit: int = BATCH) -> int:
    """Claim the deliveries due now and attempt each once; how many were claimed."""
    now = services.clock.now()
    claimed = await services.durable.claim_logout_deliveries(now, now + LEASE, limit)
    if claimed:
        await asyncio.gather(*(_attempt(services, delivery, now) for delivery in claimed))
    return len(claimed)


async def _attempt(services: Services, delivery: LogoutDelivery, now: datetime) -> None:
    durable = services.durable
    try:
        realm = services.runtime.realms.get(delivery.realm)
        client = realm.client(delivery.client_id) if realm is not None else None
        uri = client.backchannel_logout_uri if client is not None else None
        if realm is None or client is None or uri is None:
            await durable.finish_logout_delivery(delivery.id)  # removed by a reload: nobody to tell
            return
        token = await services.tokens.logout_token(realm, client, subject=delivery.subject,
                                                   session_id=delivery.session_id, jti=delivery.id)
        status = await _post(services, uri, token)
        if status in DELIVERED:
            services.metrics.backchannel_deliveries.labels(delivery.realm).inc()
            await durable.finish_logout_delivery(delivery.id)
            return
        services.metrics.backchannel_failures.labels(delivery.realm).inc()
        next_at = now + backoff(delivery.attempts)
        if next_at - delivery.created_at > GIVE_UP_AFTER:
            log.warning("back-channel logout to client %s of realm %s given up after %d attempts (last: %s)",
                        delivery.client_id, delivery.realm, delivery.attempts, status)
            await durable.finish_logout_delivery(delivery.id)
        else:
            log.info("back-channel logout to client %s of realm %s failed (%s); attempt %d at %s",
                     delivery.client_id, delivery.realm, status, delivery.attempts + 1, next_at.isoformat())
            await durable.retry_logout_delivery(delivery.id, next_at)
    except Exception:  # the store: the lease ends and the row is due again
        log.exception("back-channel logout delivery %s could not be recorded", delivery.client_id)


async def _post(services: Services, uri: str, token: str) -> int | str:
    """The receiver's status, or why there was none (never the token: it is a credential)."""
    session = services.http
    if session is None:
        return "no HTTP client"
    try:
        async with session.post(uri, data={"logout_token": token}, allow_redirects=False,
                                timeout=TIMEOUT) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return type(exc).__name__


async def delivery_loop(services: Services, every: float = POLL_EVERY) -> None:
    """Run by every serving instance (engine.web.lifecycle)."""
    loop = asyncio.get_running_loop()
    pruned_at = loop.time()
    while True:
        claimed = 0
        try:
            claimed = await deliver_due(services)
            if loop.time() - pruned_at >= PRUNE_EVERY:
                pruned_at = loop.time()
                await _forget_expired_sessions(services)
        except Exception:  # a store outage must not end the schedule
            log.exception("back-channel logout delivery failed; will retry")
        if claimed < BATCH:
            await asyncio.sleep(every)


async def _forget_expired_sessions(services: Services) -> None:
    realms = services.runtime.realms.values()
    longest = max((r.config.lifetimes.session for r in realms), default=timedelta(days=30))
    await services.durable.forget_session_clients(services.clock.now() - longest - timedelta(days=1))
