"""The one middleware, `request_middleware`, around every request:

- a request id (`X-Request-Id`: a sane incoming one is kept, else a new one; echoed on
  every response, error pages and redirects included) that every log record of the
  request carries (`engine.logs`);
- error rendering, once (STYLE.md §3): protocol errors as RFC 6749 §5.2 JSON with
  `Cache-Control: no-store` on API endpoints, as a readable HTML page on browser
  endpoints; an unreachable store as 503 `temporarily_unavailable`; anything else as a
  logged 500;
- one access-log line, and the latency and status by route template in the metrics.

It is one middleware, not three, because it runs on every request of the hot paths
(token, introspection, discovery, JWKS): each aiohttp middleware layer and response
signal costs a coroutine per request."""

from __future__ import annotations

import html
import logging
from time import perf_counter
from typing import Any

import asyncpg
from aiohttp import web

from engine.errors import NotFound, OAuthError, ServerError, TemporarilyUnavailable
from engine.exchange import NO_STORE, Answer
from engine.logs import REQUEST_ID, accept_request_id, access_log_writer
from engine.metrics import UNMATCHED
from engine.store.protocols import StoreUnavailable
from engine.web import cors
from engine.web.adapter import response
from engine.web.appkeys import REALM, SERVICES
from engine.web.landing import accepts_html
from engine.web.landing import page as plain_page
from engine.web.routing import DEFAULT_OPTIONS, route_options
from engine.web.templates import render

log = logging.getLogger("engine.web")
access_log = logging.getLogger("engine.access")

REQUEST_ID_HEADER = "X-Request-Id"


def no_store_json(body: Any) -> web.Response:
    """`web.json_response(body, headers=NO_STORE)` (the same bytes and headers), as the
    core's token, introspection and userinfo answers reach aiohttp."""
    return response(Answer.no_store_json(body))


def render_error(request: web.Request, exc: OAuthError) -> web.Response:
    headers = {**NO_STORE, **exc.headers}
    options = route_options(request)
    # Browser routes, and a browser navigating to a path no route serves (an unknown path
    # or realm): a page. API routes and API clients: RFC 6749 §5.2 JSON.
    if options.browser or (options is DEFAULT_OPTIONS and accepts_html(request)):
        title = "Something went wrong" if exc.status >= 500 else "This request cannot be completed"
        realm = request.get(REALM)
        if realm is not None:  # the realm's own (overridable) error page
            try:
                page = render(request, realm, request.app[SERVICES], "error.html", status=exc.status, title=title,
                              message=exc.description or exc.error, code=exc.error)
                page.headers.update(headers)
                return page
            except Exception:  # a broken override must still yield an error page
                log.exception("rendering error.html for realm %s failed", realm.name)
        if exc.status == 404:
            title = "This page does not exist"
        return plain_page(title, f"<p role=alert>{html.escape(exc.description or exc.error)}</p>"
                          f"<p class=help>Error code: {html.escape(exc.error)}</p>", status=exc.status, headers=headers)
    return web.json_response(exc.body(), status=exc.status, headers=headers)


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The response for an exception a handler raised (anything but `web.HTTPException`s
    other than 404/405, which pass through as the responses they are)."""
    if isinstance(exc, web.HTTPNotFound):
        return render_error(request, NotFound("no such endpoint"))
    if isinstance(exc, web.HTTPMethodNotAllowed):
        response = render_error(request, _MethodNotAllowed(f"use {', '.join(sorted(exc.allowed_methods))}"))
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    return render_error(request, protocol_error(exc, request.method, request.path))


def protocol_error(exc: Exception, method: str, path: str) -> OAuthError:
    """The protocol error a handler's exception is answered with: itself, 503
    `temporarily_unavailable` for an unreachable store, else a logged 500."""
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable on %s %s: %s", method, path, exc)
        return TemporarilyUnavailable("a backing store is unavailable; retry shortly")
    if isinstance(exc, asyncpg.DataError):  # e.g. a NUL in text past the input checks (SQLite would store it)
        log.warning("the database refused a value on %s %s: %s", method, path, type(exc).__name__)
        return OAuthError("the request holds a value that cannot be stored")  # 400 invalid_request
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return ServerError("internal error")


class _MethodNotAllowed(OAuthError):
    error = "invalid_request"
    status = 405


def route_template(request: web.Request) -> str:
    """The matched route's template (`/realms/{realm}/token`), never the raw path: bounded
    label values for metrics, and no path-borne value in the logs."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def request_middleware(request: web.Request, handler) -> web.StreamResponse:
    request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    context = REQUEST_ID.set(request_id)
    started = perf_counter()
    try:
        try:
            response = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            response = error_response(request, exc)
        except web.HTTPException as exc:  # redirects and the like, raised by handlers
            exc.headers[REQUEST_ID_HEADER] = request_id
            _finished(request, exc.status, started)
            raise
        except Exception as exc:
            response = error_response(request, exc)
        response.headers[REQUEST_ID_HEADER] = request_id
        cors_mode = route_options(request).cors
        if cors_mode is not None:
            cors.apply(request, response, cors_mode)
        _finished(request, response.status, started)
        return response
    finally:
        REQUEST_ID.reset(context)


def _finished(request: web.Request, status: int, started: float) -> None:
    """The request answered: into the metrics, and one access-log line (with the current
    request id) unless the access log is off."""
    seconds = perf_counter() - started
    method, route = request.method, route_template(request)
    request.app[SERVICES].metrics.observe_request(route, method, status, seconds)
    if not access_log.isEnabledFor(logging.INFO):
        return
    writer = access_log_writer()
    if writer is not None:  # `idp serve`: preformatted, batched (engine.logs.AccessLog)
        writer.write(method, route, status, seconds, request.remote)
        return
    access_log.info(
        "%s %s %d %.2fms", method, route, status, seconds * 1000,
        extra={"method": method, "route": route, "status": status,
               "duration_ms": round(seconds * 1000, 2), "remote": request.remote},
    )
