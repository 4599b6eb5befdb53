"""`POST /token` and `POST /introspect` at the protocol level (issue 7: services get their
tokens, and gateways introspect the tokens they are shown, far more often than anything
else happens at an IdP).

`engine.web.fastpath` hands a complete request here (head parsed by httptools, body by its
`Content-Length`) when it is a form (`application/x-www-form-urlencoded`, with or without
parameters such as a charset) to one of these endpoints of a realm. It runs the endpoints'
own code, without the web framework:

- `/token`: `engine.oauth.token.token_answer` (client authentication, every grant),
  after the same rate-limit count as the aiohttp handler; errors as the middleware renders
  them (RFC 6749 §5.2 JSON, `Cache-Control: no-store`, the error's own headers such as the
  401 challenge or `Retry-After`). Requests with an `Origin` (CORS) stay aiohttp's.
- `/introspect` of access tokens (`rt_…` refresh tokens and every error are aiohttp's):
  `engine.oauth.clients.authenticate`, then `TokenService.access_claims_now`, the cached
  part of `verify_access_token`, so a token whose revocation state is known is answered
  without a task; otherwise the verification with its store read.

An answer is the response bytes, or a coroutine that makes them (the connection awaits it;
answers stay in request order); None hands the request to aiohttp. The bytes carry the
headers the aiohttp endpoints send (`engine.web.middleware.no_store_json`, `X-Request-Id`,
`Date`, `Server`), and every answer is counted in the metrics and the access log like any
request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from time import perf_counter
from typing import Any

from aiohttp.http import SERVER_SOFTWARE

from engine.errors import InvalidToken, OAuthError
from engine.logs import accept_request_id
from engine.oauth.clients import authenticate
from engine.oauth.introspect import INACTIVE, access_token_body
from engine.oauth.params import FORM, MAX_BODY, form_body
from engine.oauth.ratelimit import caller_address, enforce
from engine.oauth.token import token_answer
from engine.realm import Realm
from engine.tokens.refresh import PREFIX as REFRESH_PREFIX
from engine.web.appkeys import SERVICES
from engine.web.middleware import JSON_NO_STORE, protocol_error, record_request
from engine.web.routing import RealmPaths

TOKEN, INTROSPECT = "/token", "/introspect"  # as engine.web.app routes them
_ENDPOINTS = RealmPaths((TOKEN, INTROSPECT))
_FORM = FORM.encode()
_JSON = "".join(f"{name}: {value}\r\n" for name, value in JSON_NO_STORE.items())  # as no_store_json

Answer = bytes | Coroutine[Any, Any, bytes] | None
Route = tuple[Realm, str, str]  # the realm, the route template (metrics), the endpoint


def _is_form(content_type: bytes | None) -> bool:
    """A form body, as the endpoints' `request.content_type` sees it: the media type alone,
    any case, whatever its parameters (Spring's and axios' `...;charset=UTF-8`; the body is
    read as UTF-8 either way, RFC 6749 Appendix B)."""
    if content_type == _FORM:
        return True
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == _FORM


class Posts:
    """Answers for token and introspection requests, from the running application."""

    def __init__(self, app: Any, http_date: Callable[[], str]) -> None:
        self.app = app
        self.http_date = http_date

    def accept(self, method: bytes, url: bytes, headers: dict[bytes, bytes]) -> tuple[int, Route] | None:
        """(body length, route) of a request answered here, else None (aiohttp's)."""
        if method != b"POST" or not _is_form(headers.get(b"content-type")):
            return None
        if (b"transfer-encoding" in headers or b"expect" in headers or b"content-encoding" in headers
                or b"origin" in headers):
            return None
        length = headers.get(b"content-length", b"")
        if not length.isdigit() or len(length) > 6 or int(length) > MAX_BODY:
            return None
        route = self._route(url)
        return (int(length), route) if route is not None else None

    def _route(self, url: bytes) -> Route | None:
        """(realm, route template, endpoint) of a path served here."""
        return _ENDPOINTS.match(url.decode("latin-1"), self.app[SERVICES].runtime)

    def answer(self, route: Route, headers: dict[bytes, bytes], body: bytes, remote: str | None) -> Answer:
        """The response bytes, a coroutine making them, or None (aiohttp answers)."""
        started = perf_counter()
        realm, template, endpoint = route
        try:
            params = form_body(body)
        except OAuthError:
            return None
        authorization = headers.get(b"authorization")
        auth = authorization.decode("latin-1") if authorization is not None else None
        request_id = accept_request_id(headers[b"x-request-id"].decode("latin-1") if b"x-request-id" in headers
                                       else None)
        call = _Call(self, template, started, request_id, remote)
        if endpoint == TOKEN:
            forwarded = headers.get(b"x-forwarded-for")
            ip = caller_address(self.app[SERVICES], forwarded.decode("latin-1") if forwarded else None, remote)
            return call.token(realm, params, auth, ip)
        return self._introspection(call, realm, params, auth)

    def _introspection(self, call: _Call, realm: Realm, params: dict[str, str], auth: str | None) -> Answer:
        try:
            authenticate(realm, auth, params, allow_public=False)
        except OAuthError:
            return None  # the endpoint's error answer (400, 401 and its challenge) is aiohttp's
        token = params.get("token")
        if not token or token.startswith(REFRESH_PREFIX):
            return None
        try:
            claims = self.app[SERVICES].tokens.access_claims_now(realm, token)
        except InvalidToken:
            return call.respond(200, INACTIVE)
        if claims is not None:
            return call.respond(200, access_token_body(claims))
        return call.introspect(realm, token)


class _Call:
    """One request answered here: what its response and its metrics need."""

    __slots__ = ("posts", "route", "started", "request_id", "remote")

    def __init__(self, posts: Posts, route: str, started: float, request_id: str, remote: str | None) -> None:
        self.posts, self.route, self.started, self.request_id, self.remote = posts, route, started, request_id, remote

    async def token(self, realm: Realm, params: dict[str, str], auth: str | None, ip: str) -> bytes:
        services = self.posts.app[SERVICES]
        try:
            await enforce(services, realm, "token", ip, realm.config.rate_limits.token_per_ip)
            return self.respond(200, await token_answer(services, realm, params, auth, ip))
        except Exception as exc:
            return self.error(exc)

    async def introspect(self, realm: Realm, token: str) -> bytes:
        """When the revocation state (or the realm's keys) must come from the stores."""
        try:
            body = access_token_body(await self.posts.app[SERVICES].tokens.verify_access_token(realm, token))
        except InvalidToken:
            body = INACTIVE
        except Exception as exc:
            return self.error(exc)
        return self.respond(200, body)

    def error(self, exc: Exception) -> bytes:
        """As `engine.web.middleware.error_response` renders it for an API route."""
        error = protocol_error(exc, "POST", self.route)
        return self.respond(error.status, error.body(), error.headers)

    def respond(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
        data = json.dumps(body).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items()) if headers else ""
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n{_JSON}{extra}X-Request-Id: {self.request_id}\r\n"
                f"Content-Length: {len(data)}\r\nDate: {self.posts.http_date()}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n")
        record_request(self.posts.app, "POST", self.route, status, perf_counter() - self.started, self.remote,
                       self.request_id)
        return head.encode("latin-1") + data
