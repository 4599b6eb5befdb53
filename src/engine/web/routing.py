"""Realm routing: every realm endpoint is served at `/realms/<name>/<path>` and, for the
root realm, at `/<path>`. The realm is resolved here, once, and handed to the handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from engine.errors import NotFound
from engine.realm import Realm
from engine.web.appkeys import BROWSER, REALM, SERVICES

RealmHandler = Callable[[web.Request, Realm], Awaitable[web.StreamResponse]]


def resolve_realm(request: web.Request) -> Realm:
    runtime = request.app[SERVICES].runtime
    name = request.match_info.get("realm", runtime.root_realm)
    realm = runtime.realms.get(name) if name else None
    if realm is None:
        raise NotFound(f"no realm named {name!r}" if name else "no root realm is configured")
    return realm


def add_realm_route(
    app: web.Application,
    methods: Iterable[str],
    path: str,
    handler: RealmHandler,
    *,
    browser: bool = False,
) -> None:
    """Serve `handler` for `path` in every realm; `browser` routes render errors as HTML."""

    async def scoped(request: web.Request) -> web.StreamResponse:
        request[BROWSER] = browser
        realm = resolve_realm(request)
        request[REALM] = realm
        return await handler(request, realm)

    scoped.__name__ = getattr(handler, "__name__", "realm_handler")
    for prefix in ("/realms/{realm}", ""):
        for method in methods:
            app.router.add_route(method, prefix + path, scoped)
