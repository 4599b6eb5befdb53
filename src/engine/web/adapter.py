"""From aiohttp to the protocol core and back: an aiohttp request as a core `Call`
(engine.exchange), the body read within the server's deadline, the caller's address, and
an `Answer` as an aiohttp response.

Built for every token and introspection request, so nothing is copied: the call keeps
the request's own header view and reads its query and body only when the core asks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from multidict import MultiMapping

from engine.errors import InvalidRequest
from engine.exchange import Answer, Call
from engine.oauth.params import MAX_BODY
from engine.oauth.ratelimit import client_ip
from engine.realm import Realm
from engine.services import Services
from engine.web.appkeys import SERVICES

CoreEndpoint = Callable[[Services, Realm, Call], Awaitable[Answer]]


def request_ip(request: web.Request, services: Services | None = None) -> str:
    """`client_ip` of an aiohttp request: its peer and its `X-Forwarded-For` lines."""
    server = (request.app[SERVICES] if services is None else services).runtime.config.server
    if not server.proxy_networks:  # no header is believed: do not even look it up
        return client_ip(server, request.remote)
    return client_ip(server, request.remote, request.headers.getall("X-Forwarded-For", ()))


class AiohttpCall(Call):
    """A core `Call` reading from an aiohttp request."""

    __slots__ = ("request",)

    def __init__(self, request: web.Request, ip: str) -> None:
        super().__init__(request.method, request.headers, ip)
        self.request = request

    @property
    def query(self) -> MultiMapping[str]:
        return self.request.query

    @property
    def cookies(self) -> Mapping[str, str]:
        return self.request.cookies

    @property
    def route(self) -> Mapping[str, str]:
        return self.request.match_info

    @property
    def content_type(self) -> str:
        return self.request.content_type

    @property
    def content_length(self) -> int | None:
        return self.request.content_length

    async def body(self) -> bytes:
        return await read_body(self.request)

    def body_now(self) -> bytes | None:
        content = self.request.content
        if content.is_eof():  # the whole body came with the head (every small form)
            return content.read_nowait(MAX_BODY + 1)
        return None


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the server's `http.body_timeout` (a client that trickles a
    body cannot hold a handler and its connection for ever), and no more than one byte
    past `MAX_BODY` (the core refuses a longer body: engine.oauth.params)."""
    content = request.content
    if content.is_eof():  # the whole body came with the head (every small form): nothing to wait for
        return content.read_nowait(MAX_BODY + 1)
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
    return body


class RequestTimeout(InvalidRequest):
    """The body did not arrive within the deadline."""

    status = 408

    def __init__(self) -> None:  # the rest of the body may still come: not a request boundary
        super().__init__("the request body did not arrive in time", headers={"Connection": "close"})


def response(answer: Answer) -> web.Response:
    """The aiohttp response of a core answer (its cookies set as `set_cookie`/`del_cookie`
    would: the same `Set-Cookie` lines)."""
    result = web.Response(status=answer.status, body=answer.body, headers=answer.headers)
    for cookie in answer.cookies:
        if cookie.cleared:
            result.del_cookie(cookie.name, path=cookie.path)
            continue
        result.set_cookie(cookie.name, cookie.value, path=cookie.path, max_age=cookie.max_age,
                          secure=cookie.secure, httponly=cookie.httponly, samesite=cookie.samesite)
    return result


def call_of(request: web.Request, services: Services | None = None) -> AiohttpCall:
    """The core `Call` of an aiohttp request, with its caller's address (`services`: the
    app's, when the caller holds them already)."""
    return AiohttpCall(request, request_ip(request, services))


def adapt(endpoint: CoreEndpoint) -> Callable[[web.Request, Realm], Awaitable[web.Response]]:
    """The realm handler (engine.web.routing) serving a core endpoint."""

    async def handler(request: web.Request, realm: Realm) -> web.Response:
        services = request.app[SERVICES]
        return response(await endpoint(services, realm, call_of(request, services)))

    handler.__name__ = endpoint.__name__
    handler.__doc__ = endpoint.__doc__
    # engine.web.routing calls the endpoint itself (one coroutine less on every API request)
    handler.core_endpoint = endpoint  # type: ignore[attr-defined]
    return handler
