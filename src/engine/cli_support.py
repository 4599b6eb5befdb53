"""What every `idp` command needs: the configuration loaded (or its problems printed),
the stores opened as the server opens them, a realm that exists."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from engine.config import Config, ConfigError, load_config
from engine.plugins import Plugins

if TYPE_CHECKING:
    from engine.services import Services


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Process start-up only: loading allocates millions of objects that all live on (10,000
    realms), and the cyclic collector would rescan the growing heap again and again (a
    third of the load time); nothing here makes cycles worth collecting mid-load."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            # What was loaded goes straight to the oldest generation (freeze, then unfreeze:
            # no scan) instead of being scanned by the next young collections (~0.4 s).
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def load_or_exit(path: str, plugins: Plugins) -> Config:
    try:
        with collector_paused():
            return load_config(path, plugins.providers.settings_models())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:  # noqa: BLE001 - a configuration never gets a traceback (issue 23 item 3)
        print(f"{path}:1: cannot load the configuration: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("1 problem(s) found", file=sys.stderr)
        raise SystemExit(2) from None


def with_stores(config: Config, plugins: Plugins, work: Callable[[Services], Awaitable[int]]) -> int:
    """Run `work(services)` with the stores open, as the server would have them."""
    from engine.web.app import create_app
    from engine.web.appkeys import SERVICES

    async def main() -> int:
        app = create_app(config, plugins=plugins)
        contexts = [ctx(app) for ctx in app.cleanup_ctx]
        for ctx in contexts:
            await ctx.__anext__()
        try:
            return await work(app[SERVICES])
        finally:
            for ctx in reversed(contexts):
                try:
                    await ctx.__anext__()
                except StopAsyncIteration:
                    pass

    return asyncio.run(main())


def realm_or_exit(config: Config, name: str) -> None:
    """Exit with a clear message unless `name` is a configured realm."""
    if name not in config.realms:
        print(f"no realm named {name!r}; realms: {', '.join(sorted(config.realms))}", file=sys.stderr)
        raise SystemExit(2)
