"""RFC 7662 introspection of JWT access tokens at the protocol level (issue 7: a gateway or
resource server introspects the bearer token of every request it serves, so this is the
IdP's hottest authenticated endpoint).

`engine.web.fastpath` hands a complete `POST /introspect` here (head parsed by httptools,
body by its `Content-Length`). It is answered here only on the path that needs no web
framework: a form body, an authenticated confidential client (`engine.oauth.clients.
authenticate`, the same code the endpoint uses), an access token (`rt_…` refresh tokens
are aiohttp's). The answer is `engine.oauth.introspect.access_token_body` of the same
`TokenService` verification, with the headers the aiohttp endpoint sends
(`engine.web.middleware.no_store_json`, `X-Request-Id`, `Date`, `Server`), counted in the
metrics and the access log like any request. When the token's revocation state must be
read from the store, the answer is a coroutine that the connection awaits (answers stay
in request order). Anything else, errors included (400, 401 with its challenge), returns
None: the connection goes to aiohttp, which answers it with the endpoint itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Coroutine
from time import perf_counter
from typing import Any

from aiohttp.http import SERVER_SOFTWARE

from engine.errors import InvalidToken, OAuthError, TemporarilyUnavailable
from engine.logs import REQUEST_ID, accept_request_id
from engine.oauth.clients import authenticate
from engine.oauth.introspect import INACTIVE, access_token_body
from engine.oauth.params import FORM, MAX_BODY, form_body
from engine.realm import Realm
from engine.store.protocols import StoreUnavailable
from engine.tokens.refresh import PREFIX as REFRESH_PREFIX
from engine.web.appkeys import SERVICES
from engine.web.middleware import NO_STORE, record_request

log = logging.getLogger("engine.web")

PATH = "/introspect"  # as engine.web.app routes it
_REALM_PATH = re.compile(r"^/realms/([A-Za-z0-9_.-]{1,64})" + re.escape(PATH) + "$")
_JSON = "Content-Type: application/json; charset=utf-8\r\n" + "".join(f"{k}: {v}\r\n" for k, v in NO_STORE.items())
_REASONS = {200: "OK", 503: "Service Unavailable"}


class Introspections:
    """Answers for introspection requests, from the running application's services."""

    def __init__(self, app: Any, http_date: Any) -> None:
        self.app = app
        self.http_date = http_date

    def body_length(self, method: bytes, url: bytes, headers: dict[bytes, bytes]) -> int | None:
        """The body length of a request answered here, else None (aiohttp's)."""
        if method != b"POST" or not url.endswith(PATH.encode()) or headers.get(b"content-type") != FORM.encode():
            return None
        if b"transfer-encoding" in headers or b"expect" in headers or b"content-encoding" in headers:
            return None
        length = headers.get(b"content-length", b"")
        if not length.isdigit() or len(length) > 6 or int(length) > MAX_BODY:
            return None
        return int(length) if self._route(url.decode("latin-1")) is not None else None

    def _route(self, path: str) -> tuple[Realm, str] | None:
        runtime = self.app[SERVICES].runtime
        match = _REALM_PATH.match(path)
        if match is not None:
            realm, route = runtime.realms.get(match.group(1)), "/realms/{realm}" + PATH
        elif path == PATH and runtime.root_realm:
            realm, route = runtime.realms.get(runtime.root_realm), PATH
        else:
            return None
        return (realm, route) if realm is not None else None

    def answer(self, url: bytes, headers: dict[bytes, bytes], body: bytes,
               remote: str | None) -> bytes | Coroutine[Any, Any, bytes] | None:
        """The response bytes, a coroutine making them, or None (aiohttp answers)."""
        started = perf_counter()
        found = self._route(url.decode("latin-1"))
        if found is None:
            return None
        realm, route = found
        services = self.app[SERVICES]
        try:
            params = form_body(body)
            authorization = headers.get(b"authorization")
            authenticate(realm, authorization.decode("latin-1") if authorization is not None else None, params,
                         allow_public=False)
        except OAuthError:
            return None  # the endpoint's error answer (400, 401 and its challenge) is aiohttp's
        token = params.get("token")
        if not token or token.startswith(REFRESH_PREFIX):
            return None
        request_id = accept_request_id(headers[b"x-request-id"].decode("latin-1") if b"x-request-id" in headers
                                       else None)
        try:
            claims = services.tokens.access_claims_now(realm, token)
        except InvalidToken:
            return self._respond(INACTIVE, 200, route, started, request_id, remote)
        if claims is not None:
            return self._respond(access_token_body(claims), 200, route, started, request_id, remote)
        return self._later(realm, token, route, started, request_id, remote)

    async def _later(self, realm: Realm, token: str, route: str, started: float, request_id: str,
                     remote: str | None) -> bytes:
        """The answer once the revocation state (or the realm's keys) came from the stores."""
        try:
            body = access_token_body(await self.app[SERVICES].tokens.verify_access_token(realm, token))
        except InvalidToken:
            body = INACTIVE
        except StoreUnavailable as exc:  # as the middleware answers it
            log.warning("store unavailable on POST %s: %s", route, exc)
            error = TemporarilyUnavailable("a backing store is unavailable; retry shortly")
            return self._respond(error.body(), error.status, route, started, request_id, remote)
        return self._respond(body, 200, route, started, request_id, remote)

    def _respond(self, body: dict[str, Any], status: int, route: str, started: float, request_id: str,
                 remote: str | None) -> bytes:
        data = json.dumps(body).encode()
        head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\n{_JSON}X-Request-Id: {request_id}\r\n"
                f"Content-Length: {len(data)}\r\nDate: {self.http_date()}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n")
        token = REQUEST_ID.set(request_id)
        try:
            record_request(self.app, "POST", route, status, perf_counter() - started, remote)
        finally:
            REQUEST_ID.reset(token)
        return head.encode("latin-1") + data
