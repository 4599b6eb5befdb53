"""`idp serve`'s serving loop: the one HTTP stack (aiohttp) on a TCP listener.

Every request, in tests and in production, goes through the same app factory, middleware
and handlers (engine.web.app.create_app); this module only listens, bounds connections
and stops cleanly:

- A connection must deliver a complete request head within `server.http.idle_timeout`
  of connecting or of its previous answer, else it is dropped (aiohttp's keep-alive timer,
  which also runs while a head is half received: a slow-header client cannot hold it).
  Bodies are bounded separately, where they are read (engine.oauth.params).
- SIGINT/SIGTERM: stop listening, let requests in flight finish (up to
  `SHUTDOWN_TIMEOUT` s), then the application's cleanup closes the stores.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("engine.server")

SHUTDOWN_TIMEOUT = 15.0


async def serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                idle_timeout: float = 15.0, shutdown_timeout: float = SHUTDOWN_TIMEOUT,
                on_ready: Callable[[], object] | None = None) -> None:
    """Run `app` on `host:port` until a signal ends it (aiohttp's `AppRunner`, whose signal
    handlers raise `GracefulExit`)."""
    runner = web.AppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout,
                           keepalive_timeout=idle_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
        await site.start()
        if on_ready is not None:
            on_ready()
        else:
            log.info("serving on http://%s:%d", host, port)
        await asyncio.Future()  # until a signal ends it
    finally:
        await runner.cleanup()


def run(app: web.Application, host: str, port: int, *, loop: asyncio.AbstractEventLoop,
        reuse_port: bool = False, idle_timeout: float = 15.0, on_ready: Callable[[], object] | None = None) -> None:
    """`web.run_app` for `serve`: the loop runs it to the end, then closes."""
    asyncio.set_event_loop(loop)
    task = loop.create_task(serve(app, host, port, reuse_port=reuse_port, idle_timeout=idle_timeout,
                                  on_ready=on_ready))
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():
            task.cancel()
            try:
                loop.run_until_complete(task)
            except (asyncio.CancelledError, web.GracefulExit, KeyboardInterrupt):
                pass
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
