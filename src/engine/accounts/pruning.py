"""Removing self-registered accounts whose email was never verified (issue 23 item 13),
`lifetimes.unverified_account` (7 days by default) after they were made.

Unbounded sign-ups of addresses nobody owns would otherwise squat those addresses and grow
the user table for ever. Only accounts made through /register and still unverified go;
verified accounts, accounts an operator made (`idp users add`) and federated accounts are
never touched. Each removal takes the account's credentials, identities, consents and
refresh families with it in one transaction (DurableStore.delete_unverified_users), ends
its browser sessions and access tokens (the per-user cut-off marker), and is recorded as an
`unverified_account_removed` audit event.

Run by every serving instance once an hour (`prune_loop`, started in engine.web.lifecycle;
instances racing on the same rows is harmless: each row is deleted once) and on demand by
`idp users prune`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from engine.accounts.sessions import end_user_sessions
from engine.realm import Realm

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger(__name__)

UNVERIFIED_ACCOUNT_REMOVED = "unverified_account_removed"
BATCH = 500  # users per transaction: a big backlog never holds one long lock
INTERVAL = 3600.0  # seconds between sweeps of a serving instance


async def prune_unverified(services: Services, realm: Realm) -> list[str]:
    """Remove the realm's self-registered accounts unverified for `lifetimes.unverified_account`;
    their ids."""
    cutoff = services.clock.now() - realm.config.lifetimes.unverified_account
    removed: list[str] = []
    while True:
        ids = await services.durable.delete_unverified_users(realm.name, cutoff, limit=BATCH)
        for user_id in ids:
            await end_user_sessions(services, realm, user_id)
            await services.audit(realm.name, UNVERIFIED_ACCOUNT_REMOVED, user_id=user_id,
                                 after=str(realm.config.lifetimes.unverified_account))
        removed.extend(ids)
        if len(ids) < BATCH:
            return removed


async def prune_all(services: Services) -> int:
    """One sweep over every realm; the number of accounts removed."""
    total = 0
    for realm in list(services.runtime.realms.values()):
        total += len(await prune_unverified(services, realm))
    if total:
        log.info("removed %d self-registered accounts never verified", total)
    return total


async def prune_loop(services: Services, interval: float = INTERVAL) -> None:
    delay = random.uniform(30, 120)  # the first sweep soon after the start, not an hour later
    while True:
        await asyncio.sleep(delay)
        delay = interval * random.uniform(0.8, 1.2)  # instances spread out
        try:
            await prune_all(services)
        except Exception:  # a store outage must not end the schedule
            log.exception("pruning unverified accounts failed; will retry")
