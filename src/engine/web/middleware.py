"""Error rendering, once (STYLE.md §3): protocol errors as RFC 6749 §5.2 JSON with
`Cache-Control: no-store` on API endpoints, as a readable HTML page on browser endpoints;
an unreachable store as 503 `temporarily_unavailable`; anything else as a logged 500."""

from __future__ import annotations

import html
import logging

from aiohttp import web

from engine.errors import NotFound, OAuthError, ServerError, TemporarilyUnavailable
from engine.store.protocols import StoreUnavailable
from engine.web.appkeys import BROWSER

log = logging.getLogger("engine.web")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def render_error(request: web.Request, exc: OAuthError) -> web.Response:
    headers = {**NO_STORE, **exc.headers}
    if request.get(BROWSER):
        title = "Something went wrong" if exc.status >= 500 else "This request cannot be completed"
        text = html.escape(exc.description or exc.error)
        body = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width'><title>{title}</title></head>"
            f"<body><main><h1>{title}</h1><p>{text}</p>"
            f"<p><small>Error code: {html.escape(exc.error)}</small></p></main></body></html>"
        )
        return web.Response(text=body, status=exc.status, content_type="text/html", headers=headers)
    return web.json_response(exc.body(), status=exc.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OAuthError as exc:
        return render_error(request, exc)
    except StoreUnavailable as exc:
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        return render_error(request, TemporarilyUnavailable("a backing store is unavailable; retry shortly"))
    except web.HTTPNotFound:
        return render_error(request, NotFound("no such endpoint"))
    except web.HTTPMethodNotAllowed as exc:
        response = render_error(request, _MethodNotAllowed(f"use {', '.join(sorted(exc.allowed_methods))}"))
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(request, ServerError("internal error"))


class _MethodNotAllowed(OAuthError):
    error = "invalid_request"
    status = 405
