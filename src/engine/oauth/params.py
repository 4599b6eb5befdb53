"""Reading request parameters: query string and form bodies (RFC 6749 §3.1, §3.2), and a
JSON body on the token endpoint as the seed's examples send it. A parameter sent twice is
an error (§3.1: "Request and response parameters MUST NOT be included more than once")."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDictProxy

from engine.errors import InvalidRequest
from engine.web.appkeys import SERVICES

MAX_BODY = 64 * 1024
FORM = "application/x-www-form-urlencoded"


async def form_params(request: web.Request, *, allow_json: bool = False, query: bool = False) -> dict[str, str]:
    """Parameters of a POST (form, or JSON if allowed) or, with `query`, of a GET."""
    if request.method in ("GET", "HEAD"):
        if not query:
            raise InvalidRequest("use POST")
        return single_valued(request.query)
    if request.content_length and request.content_length > MAX_BODY:
        raise InvalidRequest("request body too large")
    # The header as clients send it is compared first: parsing it (`content_type`) costs
    # more than the rest of a small form (issue 7: every token and introspection request).
    if request.headers.get("Content-Type") == FORM or request.content_type == FORM:
        return form_body(await read_body(request))
    content_type = request.content_type
    if content_type == "application/json" and allow_json:
        try:
            data = json.loads(await read_body(request) or b"{}")
        except ValueError:
            raise InvalidRequest("the JSON body is malformed") from None
        if not isinstance(data, dict) or not all(isinstance(v, str | int | float) for v in data.values()):
            raise InvalidRequest("the JSON body must be an object of string values")
        return {str(k): str(v) for k, v in data.items()}
    if not content_type or content_type == "application/octet-stream":
        body = await read_body(request)
        if not body:
            return single_valued(request.query) if query else {}
    raise InvalidRequest("use Content-Type: application/x-www-form-urlencoded")


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the server's `http.body_timeout` (a client that trickles a
    body cannot hold a handler and its connection for ever) and `MAX_BODY`."""
    timeout = request.app[SERVICES].runtime.config.server.http.body_timeout.total_seconds()
    try:
        async with asyncio.timeout(timeout):
            body = await request.content.read(MAX_BODY + 1)
            while len(body) <= MAX_BODY and not request.content.at_eof():
                chunk = await request.content.read(MAX_BODY + 1 - len(body))
                if not chunk:
                    break
                body += chunk
    except TimeoutError:
        raise RequestTimeout() from None
    if len(body) > MAX_BODY:
        raise InvalidRequest("request body too large")
    return body


class RequestTimeout(InvalidRequest):
    """The body did not arrive within the deadline."""

    status = 408

    def __init__(self) -> None:  # the rest of the body may still come: not a request boundary
        super().__init__("the request body did not arrive in time", headers={"Connection": "close"})


def form_body(body: bytes) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (UTF-8, as RFC 6749 Appendix B says):
    what `request.post()` gives, without building a multidict on the hot paths."""
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("the form body is not valid UTF-8") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidRequest(f"parameter {key} was sent more than once")
        params[key] = value
    return params


def single_valued(values: MultiDictProxy) -> dict[str, str]:
    params: dict[str, str] = {}
    for key in values.keys():
        found = values.getall(key)
        if len(found) > 1:
            raise InvalidRequest(f"parameter {key} was sent more than once")
        value = found[0]
        if not isinstance(value, str):
            raise InvalidRequest(f"parameter {key} must be a string")
        params[key] = value
    return params
