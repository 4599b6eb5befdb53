"""What only a serving process does (not tests, not one-shot CLI commands): record the
applied configuration for `idp plan`, reload on SIGHUP, run scheduled key rotation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from engine.config.plan import write_snapshot
from engine.reload import reload_config
from engine.tokens.rotation import rotation_loop
from engine.web.appkeys import SERVICES

log = logging.getLogger("engine")


async def serving(app: web.Application) -> AsyncIterator[None]:
    services: Any = app[SERVICES]
    config = services.runtime.config
    await asyncio.to_thread(write_snapshot, config, config.path.parent / config.server.keys.data_dir)
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()

    def on_sighup() -> None:
        log.info("SIGHUP: reloading configuration")
        task = loop.create_task(reload_config(services))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    rotation = loop.create_task(rotation_loop(services))
    try:
        yield
    finally:
        rotation.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rotation
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)
