"""Realm routing: every realm endpoint is served at `/realms/<name>/<path>` and, for the
root realm, at `/<path>`. The realm is resolved here, once, and handed to the handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from engine.errors import NotFound
from engine.realm import Realm
from engine.services import Services
from engine.web.adapter import call_of, response
from engine.web.appkeys import REALM, SERVICES
from engine.web.cors import preflight_handler

RealmHandler = Callable[[web.Request, Realm], Awaitable[web.StreamResponse]]
REALM_PREFIX = "/realms/{realm}"


@dataclass(frozen=True)
class RouteOptions:
    """How the middleware treats a route's responses: errors as HTML pages (`browser`),
    CORS headers (`cors`: `engine.web.cors.PUBLIC` or `CLIENTS`)."""

    browser: bool = False
    cors: str | None = None


DEFAULT_OPTIONS = RouteOptions()


def route_options(request: web.Request) -> RouteOptions:
    """The options of the route that matched (defaults for system routes: 404, 405).
    Kept on the route's handler, not set on every request (issue 7: the hot paths)."""
    return getattr(request.match_info.handler, "route_options", DEFAULT_OPTIONS)


def resolve_realm(request: web.Request, services: Services | None = None) -> Realm:
    """The realm of `/realms/<name>/...`, or the root realm's for `/...`. The root realm has
    one issuer, the base URL, so it is not served under `/realms/<root>` as well (OIDC
    Discovery §4.3: an issuer is the URL its configuration is fetched under)."""
    runtime = (request.app[SERVICES] if services is None else services).runtime
    name = request.match_info.get("realm")
    if name is None:
        name = runtime.root_realm
    elif name == runtime.root_realm:
        raise NotFound(f"realm {name!r} is the root realm: its issuer is {runtime.config.server.base_url},"
                       " and its endpoints are served there")
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
    cors: str | None = None,
) -> None:
    """Serve `handler` for `path` in every realm; `browser` routes render errors as HTML;
    `cors` (`engine.web.cors.PUBLIC` or `CLIENTS`) lets pages of other origins call it."""
    methods = list(methods)
    options = RouteOptions(browser, cors)

    def scope(handler: RealmHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        core = getattr(handler, "core_endpoint", None)
        if core is not None:  # a protocol-core endpoint (engine.web.adapter.adapt): called from here
            async def scoped(request: web.Request) -> web.StreamResponse:
                services = request.app[SERVICES]
                realm = resolve_realm(request, services)
                request[REALM] = realm
                return response(await core(services, realm, call_of(request, services)))
        else:
            async def scoped(request: web.Request) -> web.StreamResponse:
                realm = resolve_realm(request)
                request[REALM] = realm
                return await handler(request, realm)

        scoped.__name__ = getattr(handler, "__name__", "realm_handler")
        scoped.route_options = options  # type: ignore[attr-defined]
        return scoped

    scoped = scope(handler)
    preflight = scope(preflight_handler(methods, cors)) if cors is not None else None
    for prefix in (REALM_PREFIX, ""):
        for method in methods:
            app.router.add_route(method, prefix + path, scoped)
        if preflight is not None:
            app.router.add_route("OPTIONS", prefix + path, preflight)
