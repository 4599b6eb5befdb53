"""Cross-origin requests (the Fetch standard's CORS protocol) for the endpoints that
browser applications call directly: a single-page app reads discovery and the JWKS,
exchanges its code at /token, and calls /userinfo and /revoke.

- Discovery and JWKS are public documents: any origin may read them
  (`Access-Control-Allow-Origin: *`).
- /token, /userinfo and /revoke (`CLIENTS`) answer an *allowed* `Origin` with that origin
  and `Vary: Origin`: the origins of the realm's clients' redirect URIs (a SPA at
  `http://localhost:3000/callback` may call from `http://localhost:3000`) and each
  client's `web_origins`. Any other origin gets no CORS headers, so the browser withholds
  the response from the page. CORS is not what protects these endpoints (client
  authentication, PKCE and bearer tokens are); it decides which pages may read the answers.
- A preflight (`OPTIONS`) is answered 204 with the methods and request headers allowed
  (`Authorization`, `Content-Type`, `X-Request-Id`), cached by the browser for 10 minutes;
  from an origin that is not allowed, 403 with a JSON error that says so.
- Credentials (cookies) are never allowed cross-origin: none of these endpoints reads the
  SSO cookie.
- /introspect is for resource servers, not browsers: no CORS.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from aiohttp import web

from engine.config.models import origin_of
from engine.realm import Realm
from engine.web.appkeys import REALM

PUBLIC = "public"
CLIENTS = "clients"

ALLOW_HEADERS = "Authorization, Content-Type, X-Request-Id"
EXPOSE_HEADERS = "WWW-Authenticate, Retry-After, X-Request-Id"
MAX_AGE = "600"

_allowed: WeakKeyDictionary[Realm, frozenset[str]] = WeakKeyDictionary()


def allowed_origins(realm: Realm) -> frozenset[str]:
    """Every origin the realm's clients may call from (computed once per realm object; a
    reload builds new realm objects)."""
    origins = _allowed.get(realm)
    if origins is None:
        found = {origin_of(uri) for client in realm.config.clients for uri in client.redirect_uris}
        found.update(client_origin for client in realm.config.clients for client_origin in client.web_origins)
        origins = _allowed[realm] = frozenset(o for o in found if o)
    return origins


def apply(request: web.Request, response: web.StreamResponse, mode: str) -> None:
    """Add the CORS response headers for a request from another origin (the middleware
    calls this for every response of a CORS-enabled route, errors included)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    headers = response.headers
    if mode == PUBLIC:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers.add("Vary", "Origin")
        realm = request.get(REALM)
        if realm is None or origin not in allowed_origins(realm):
            return
        headers["Access-Control-Allow-Origin"] = origin
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def preflight_handler(methods: list[str], mode: str):
    """The `OPTIONS` handler of a CORS-enabled route serving `methods`."""
    allow_methods = ", ".join(methods)

    async def preflight(request: web.Request, realm: Realm) -> web.Response:
        origin = request.headers.get("Origin")
        if mode != PUBLIC and origin is not None and origin not in allowed_origins(realm):
            return web.json_response(
                {"error": "invalid_request",
                 "error_description": f"the origin {origin} is not allowed: add it to a client's web_origins"},
                status=403, headers={"Vary": "Origin"},
            )
        return web.Response(status=204, headers={  # the middleware adds the origin headers
            "Access-Control-Allow-Methods": allow_methods,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": MAX_AGE,
            "Allow": f"{allow_methods}, OPTIONS",
        })

    return preflight
