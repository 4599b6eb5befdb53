"""What only a serving process does (not tests, not one-shot CLI commands): record the
applied configuration for `idp plan`, reload on SIGHUP, run scheduled key rotation,
the removal of never-verified self-registered accounts and the back-channel logout queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.accounts.pruning import prune_loop
from engine.config.plan import write_snapshot_in_turns
from engine.reload import reload_config
from engine.tokens.rotation import rotation_loop
from engine.web.appkeys import SERVICES
from engine.web.backchannel import delivery_loop

if TYPE_CHECKING:
    pass

log = logging.getLogger("engine")


async def _write_snapshot(config: Any) -> None:
    try:
        await write_snapshot_in_turns(config, config.path.parent / config.server.keys.data_dir)
    except Exception:  # logged; serving goes on without it
        log.exception("could not write the applied-configuration snapshot for `idp plan`")


async def serving(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    config = services.runtime.config
    loop = asyncio.get_running_loop()
    # Not awaited here: with 10,000 realms the snapshot is seconds of work that readiness
    # need not wait for (issue 7: ready in <= 10 s); it is built between requests.
    snapshot = loop.create_task(_write_snapshot(config))
    reloads: set[asyncio.Task[bool]] = set()

    async def reload() -> bool:
        await snapshot  # the start's snapshot first: the last one written is what applies
        return await reload_config(services)

    def on_sighup() -> None:
        log.info("SIGHUP: reloading configuration")
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    rotation = loop.create_task(rotation_loop(services))
    pruning = loop.create_task(prune_loop(services))
    logouts = loop.create_task(delivery_loop(services))  # queued back-channel logouts, this start's too
    try:
        yield
    finally:
        await snapshot  # a stop right after the start still leaves what was applied
        for task in (rotation, pruning, logouts):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)
