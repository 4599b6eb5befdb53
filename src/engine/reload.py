"""Configuration hot reload (SIGHUP, `idp reload`): the new configuration is loaded and
validated off the event loop, then swapped in as a whole between requests. A bad
configuration is refused and logged, and the old one keeps serving. In-flight logins
survive: their state lives in the ephemeral store, keyed by realm name.

Reloads run one at a time, in the order they were asked for: of two quick SIGHUPs around
an edit, the second reads the file after the first is done, so the older file can never
be the one left serving (and one snapshot is written at a time).

A reload that fails for any reason, an exception nobody expected included, is one
`reload refused: <reason>` log line and one `config_reloads_total{result="refused"}`; the
old configuration keeps serving (issue 23 item 4)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from engine import events
from engine.config import Config, ConfigError, load_config
from engine.config.plan import diff, snapshot, snapshot_text, write_snapshot_text
from engine.realm import build_runtime

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger("engine.reload")
SHOWN_PROBLEMS = 10  # in the one log line; `idp check` lists them all


class Refused(Exception):
    """A reload that must not apply; the message is the reason."""


async def reload_config(services: Services) -> bool:
    """Reload from the same file; True if the new configuration is now serving."""
    async with services.reload_lock:  # FIFO: reloads apply in the order asked
        try:
            applied = await _reload(services)
        except Refused as exc:
            log.error("reload refused: %s", exc)
            _count(services, "refused")
            return False
        except Exception as exc:  # noqa: BLE001 - whatever it is, the old configuration keeps serving
            log.error("reload refused: unexpected %s: %s; the previous configuration keeps serving",
                      type(exc).__name__, _one_line(str(exc)))
            _count(services, "refused")
            return False
        _count(services, "applied")
        await _after_swap(services, *applied)
        return True


def _count(services: Services, result: str) -> None:
    services.metrics.config_reloads.labels(result).inc()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


async def _reload(services: Services) -> tuple[Config, list[str], str]:
    """Load, check and swap in the new configuration; raise `Refused` (or anything) to
    keep the old one. Nothing is changed before the single assignment at the end."""
    current = services.runtime.config
    models = services.plugins.providers.settings_models()
    try:
        config = await asyncio.to_thread(load_config, current.path, models)
    except ConfigError as exc:
        shown = [_one_line(problem) for problem in exc.problems[:SHOWN_PROBLEMS]]
        if len(exc.problems) > SHOWN_PROBLEMS:
            shown.append(f"and {len(exc.problems) - SHOWN_PROBLEMS} more (`idp check` lists them all)")
        raise Refused(f"{len(exc.problems)} problem(s): {'; '.join(shown)};"
                      " the previous configuration keeps serving") from None
    if config.server.storage != current.server.storage or config.server.base_url != current.server.base_url:
        raise Refused("storage and base_url changes need a restart")

    def compare() -> tuple[list[str], str]:
        # Off the event loop: seconds of work with 10,000 realms.
        applied = snapshot_text(config)
        return diff(snapshot(current), json.loads(applied)), applied

    changes, applied = await asyncio.to_thread(compare)
    runtime = build_runtime(config, services.plugins, services)
    services.runtime = runtime  # one assignment: requests see the old or the new, never a mix
    return config, changes, applied


async def _after_swap(services: Services, config: Config, changes: list[str], applied: str) -> None:
    """Record what now serves; a failure here is logged (the new configuration serves)."""
    runtime = services.runtime
    try:
        await asyncio.to_thread(write_snapshot_text, config.path.parent / config.server.keys.data_dir, applied)
    except Exception as exc:  # noqa: BLE001 - `idp plan` is stale, serving is not affected
        log.error("reload applied, but the snapshot for `idp plan` could not be written: %s", _one_line(str(exc)))
    for line in changes:
        log.info("reload: %s", line)
    log.info("configuration reloaded: %d change(s), %d realm(s)", len(changes), len(runtime.realms))
    touched = {line.split(".")[1] for line in changes if line[2:].startswith("realms.")}
    try:
        for name in sorted(touched & set(runtime.realms)):
            await services.audit(name, events.CONFIG_RELOADED, changes=sum(f"realms.{name}." in c for c in changes))
    except Exception as exc:  # noqa: BLE001 - the audit store may be down; the reload stands
        log.error("reload applied, but its audit event could not be recorded: %s", _one_line(str(exc)))
