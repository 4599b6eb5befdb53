"""Configuration hot reload (SIGHUP, `idp reload`): the new configuration is loaded and
validated off the event loop, then swapped in as a whole between requests. A bad
configuration is refused and logged, and the old one keeps serving. In-flight logins
survive: their state lives in the ephemeral store, keyed by realm name.

Reloads run one at a time, in the order they were asked for: of two quick SIGHUPs around
an edit, the second reads the file after the first is done, so the older file can never
be the one left serving (and one snapshot is written at a time)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from engine import events
from engine.config import ConfigError, load_config
from engine.config.plan import diff, snapshot, snapshot_text, write_snapshot_text
from engine.realm import build_runtime

log = logging.getLogger("engine.reload")
LOCK = "engine.reload.lock"  # key in services.extras


async def reload_config(services: Any) -> bool:
    """Reload from the same file; True if the new configuration is now serving."""
    lock = services.extras.get(LOCK)
    if lock is None:
        lock = services.extras[LOCK] = asyncio.Lock()  # FIFO: reloads apply in the order asked
    async with lock:
        return await _reload(services)


async def _reload(services: Any) -> bool:
    current = services.runtime.config
    models = services.plugins.providers.settings_models()
    try:
        config = await asyncio.to_thread(load_config, current.path, models)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("reload refused: %s", problem)
        log.error("reload refused: %d problem(s); the previous configuration keeps serving", len(exc.problems))
        return False
    if config.server.storage != current.server.storage or config.server.base_url != current.server.base_url:
        log.error("reload refused: storage and base_url changes need a restart")
        return False

    def compare() -> tuple[list[str], str]:
        # Off the event loop: seconds of work with 10,000 realms.
        applied = snapshot_text(config)
        return diff(snapshot(current), json.loads(applied)), applied

    changes, applied = await asyncio.to_thread(compare)
    runtime = build_runtime(config, services.plugins, services)
    services.runtime = runtime  # one assignment: requests see the old or the new, never a mix
    await asyncio.to_thread(write_snapshot_text, config.path.parent / config.server.keys.data_dir, applied)
    for line in changes:
        log.info("reload: %s", line)
    log.info("configuration reloaded: %d change(s), %d realm(s)", len(changes), len(runtime.realms))
    touched = {line.split(".")[1] for line in changes if line[2:].startswith("realms.")}
    for name in sorted(touched & set(runtime.realms)):
        await services.audit(name, events.CONFIG_RELOADED, changes=sum(f"realms.{name}." in c for c in changes))
    return True
