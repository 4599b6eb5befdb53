"""Scheduled key rotation (`signing.rotate_every`): a background task on every instance
steps the rotation of realms whose keys this instance has loaded. Each step is
compare-and-set in the durable store, so instances racing each other have one winner;
nothing here lists all realms (10,000 realms cost nothing until used)."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger("engine.keys")

INTERVAL = 60.0


def rotation_due(rows: list[Any], now: Any, rotate_every: Any) -> bool:
    """Is there anything to do: an old active key, a pending next key, a key to retire?"""
    for row in rows:
        if row.status == "next":
            return True
        if row.status == "retiring" and row.retire_after is not None and row.retire_after <= now:
            return True
        if row.status == "active" and now - (row.activated_at or row.created_at) >= rotate_every:
            return True
    return False


async def rotate_due_realms(services: Services) -> None:
    now = services.clock.now()
    for name in services.keys.loaded_realms():
        realm = services.runtime.realms.get(name)
        if realm is None:
            continue
        rows = await services.durable.list_signing_keys(name)
        config = realm.config
        if rotation_due(rows, now, config.signing.rotate_every):
            lifetime = max(config.lifetimes.access_token, config.lifetimes.id_token)
            changes = await services.keys.rotate(
                name, list(config.signing.algs), max_token_lifetime=lifetime,
                rotate_every=config.signing.rotate_every,
            )
            for change in changes:
                log.info("realm %s: %s", name, change)


async def rotation_loop(services: Services, interval: float = INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))
        try:
            await rotate_due_realms(services)
        except Exception:  # a store outage must not kill the scheduler
            log.exception("scheduled key rotation failed; will retry")
