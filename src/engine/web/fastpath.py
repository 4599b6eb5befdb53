"""The hot endpoints at the protocol level (issue 7: verifiers fetch discovery and JWKS,
services get tokens, gateways introspect them, far more often than anything else happens).

Every connection starts with `FastProtocol`. It parses each request head with httptools
(llhttp, the parser uvicorn uses) and

- answers plain `GET`/`HEAD`s of a realm's discovery document or JWKS whose
  pre-serialised body is at hand (`engine.cached_body`) itself, with the body and headers
  aiohttp would send (`ETag`, `Cache-Control`, `If-None-Match` → 304, `X-Request-Id`,
  CORS `*`, `Date`), counted in the metrics and the access log like any request;
- answers form `POST`s to `/token` and `/introspect` with the endpoints' own code
  (`engine.web.fastposts`), those that wait on a store once they are done, one at a time,
  in order;
- hands the connection, and every byte not yet answered, to aiohttp for good at the first
  request that is anything else (another path or method, a query, HTTP/1.0,
  `Connection: close`, an upgrade, chunked bodies, a head httptools refuses, keys not read
  yet), so aiohttp stays the server of record for everything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from email.utils import formatdate
from time import perf_counter, time
from typing import Any

import httptools
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from engine.cached_body import CachedBody
from engine.logs import accept_request_id
from engine.oauth import discovery, jwks
from engine.oauth.params import MAX_BODY
from engine.web.appkeys import SERVICES
from engine.web.cors import EXPOSE_HEADERS
from engine.web.fastposts import Posts
from engine.web.middleware import record_request
from engine.web.routing import RealmPaths

log = logging.getLogger("engine.web")

MAX_HEAD = 8192  # a longer head is aiohttp's to judge
MAX_BUFFER = 4 * MAX_BODY  # bytes read ahead while a request runs; reading pauses beyond
KEEPALIVE = 75.0  # seconds a connection may stay silent (aiohttp's keepalive_timeout)
DOCUMENT_PATHS = (discovery.PATH, *jwks.PATHS)  # as engine.web.app routes them
_DOCUMENTS = RealmPaths(DOCUMENT_PATHS)
_CORS = f"Access-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: {EXPOSE_HEADERS}\r\n"


class HttpDate:
    """The `Date` header value (RFC 9110 §6.6.1), formatted once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._value = ""

    def __call__(self) -> str:
        now = int(time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True)
        return self._value


http_date = HttpDate()
_ERROR_BODY = b'{"error": "server_error", "error_description": "internal error"}'
_SERVER_ERROR = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json; charset=utf-8\r\n"
                 b"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(_ERROR_BODY), _ERROR_BODY))


class _Head:
    """What httptools saw of one request head."""

    __slots__ = ("url", "headers", "raw", "complete", "method", "plain", "close")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}  # names lower-cased
        self.raw: list[tuple[bytes, bytes]] = []  # as sent
        self.complete = False  # the whole message (a head without a body)
        self.method = b""
        self.plain = False  # HTTP/1.1 with a Host, no upgrade: ours to answer
        self.close = False  # the client asks to close after the answer

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower in self.headers:  # a repeated header: aiohttp's to judge
            raise httptools.HttpParserError("repeated header")
        self.headers[lower] = value
        self.raw.append((name, value))

    def on_message_complete(self) -> None:
        self.complete = True


def parse_head(head: bytes) -> _Head | None:
    """A request head (through its blank line), or None when httptools refuses it."""
    parsed = _Head()
    parser = httptools.HttpRequestParser(parsed)
    try:
        parser.feed_data(head)
    except httptools.HttpParserError:
        return None
    headers = parsed.headers
    parsed.method = parser.get_method()
    parsed.plain = parser.get_http_version() == "1.1" and not parser.should_upgrade() and b"host" in headers
    # HTTP/1.1 keeps the connection unless the client says `close` (RFC 9112 §9.3);
    # httptools forgets it once the message is complete, so the header decides.
    parsed.close = b"close" in [t.strip() for t in headers.get(b"connection", b"").lower().split(b",")]
    return parsed


class Documents:
    """Answers for document requests, built from the running application's state."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def answer(self, parsed: _Head, remote: str | None = None) -> tuple[bytes, bool] | None:
        """(response bytes, close after) for a request we can answer, else None."""
        started = perf_counter()
        method = parsed.method
        headers = parsed.headers
        if (not parsed.plain or not parsed.complete or method not in (b"GET", b"HEAD")
                or b"content-length" in headers or b"transfer-encoding" in headers or b"expect" in headers):
            return None
        found = self._document(parsed.url.decode("latin-1"))
        if found is None:
            return None
        route, body, max_age = found
        request_id = accept_request_id(headers[b"x-request-id"].decode("latin-1") if b"x-request-id" in headers
                                       else None)
        not_modified = headers.get(b"if-none-match", b"").decode("latin-1") == body.etag
        status = 304 if not_modified else 200
        close = parsed.close
        lines = [
            "HTTP/1.1 304 Not Modified\r\n" if not_modified else "HTTP/1.1 200 OK\r\n",
            f"ETag: {body.etag}\r\nCache-Control: public, max-age={max_age}\r\n",
        ]
        if not not_modified:
            lines.append(f"Content-Type: application/json\r\nContent-Length: {len(body.body)}\r\n")
        lines.append(f"X-Request-Id: {request_id}\r\nDate: {http_date()}\r\nServer: {SERVER_SOFTWARE}\r\n")
        if b"origin" in headers:
            lines.append(_CORS)
        if close:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        response = "".join(lines).encode("latin-1")
        if not not_modified and method == b"GET":
            response += body.body
        record_request(self.app, method.decode(), route, status, perf_counter() - started, remote, request_id)
        return response, close

    def _document(self, path: str) -> tuple[str, CachedBody, int] | None:
        services = self.app[SERVICES]
        found = _DOCUMENTS.match(path, services.runtime)
        if found is None:
            return None
        realm, route, tail = found
        if tail == discovery.PATH:
            return route, discovery.discovery_body(realm), discovery.MAX_AGE
        keys = jwks.jwks_body(services, realm)
        if keys is None:  # keys not read yet, or due for a re-read: aiohttp's handler awaits them
            return None
        return route, keys[0], keys[1]


class FastProtocol(asyncio.Protocol):
    """A connection: documents and API requests answered here until the first other
    request, then aiohttp's."""

    def __init__(self, server: web.Server, documents: Documents, posts: Posts,
                 connections: set[FastProtocol], keepalive: float = KEEPALIVE) -> None:
        self.server, self.documents, self.connections = server, documents, connections
        self.posts = posts
        self.keepalive = keepalive
        self.idle: asyncio.TimerHandle | None = None
        self.loop: Any = None
        self.last_active = 0.0
        self.transport: Any = None
        self.remote: str | None = None
        self.writing_paused = False  # the client does not read: answer nothing more for now
        self.reading_paused = False  # the transport's reading, paused by us
        self.running: asyncio.Task[None] | None = None  # the API request being answered
        self.closing = False  # close once the request running is answered (shutdown)
        self.buffer = bytearray()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else None
        self.connections.add(self)
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()
        self.idle = self.loop.call_at(self.last_active + self.keepalive, self._close_if_silent)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self.running is None:
            self.connections.discard(self)  # else once its request is done (a shutdown waits for it)

    def _close_if_silent(self) -> None:
        """A connection silent for `keepalive` seconds is closed, as aiohttp would (one
        timer per connection, moved only when it fires); never while a request runs."""
        due = self.last_active + self.keepalive
        if self.loop.time() >= due and self.running is None:
            self.close()
        else:
            self.idle = self.loop.call_at(max(due, self.loop.time() + 1.0), self._close_if_silent)

    def _stop_timer(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None

    def _pace_reading(self) -> None:
        """Reading pauses while the client does not read our answers, or while more than
        `MAX_BUFFER` bytes wait behind a running request."""
        pause = self.writing_paused or len(self.buffer) > MAX_BUFFER
        if pause != self.reading_paused and not self.transport.is_closing():
            self.reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def pause_writing(self) -> None:  # a client that sends faster than it reads waits
        self.writing_paused = True
        self._pace_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._pace_reading()
        self._answer_buffered()  # what was read before the pause

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        self.buffer += data
        if self.running is None:
            self._answer_buffered()
        self._pace_reading()

    def _answer_buffered(self) -> None:
        buffer = self.buffer
        while buffer and not self.writing_paused and self.running is None:  # answers go out in order
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self.hand_over()
                return
            parsed = parse_head(bytes(buffer[:end + 4]))
            if parsed is None:
                self.hand_over()
                return
            try:
                answer = self.documents.answer(parsed, self.remote)
                if answer is None:
                    answer = self._post(parsed, end + 4)
                    if answer is None:
                        return  # handed over, or waiting for the rest of the body
                    if not isinstance(answer, tuple):
                        self.running = self.loop.create_task(self._finish(answer))
                        return
                else:
                    del buffer[:end + 4]
            except Exception:  # never lose a connection to a bug here: aiohttp answers instead
                log.exception("fast path failed; handing the request to aiohttp")
                self.hand_over()
                return
            self.transport.write(answer[0])
            if answer[1]:
                self.close()
                return

    def _post(self, parsed: _Head, head_end: int) -> tuple[bytes, bool] | Coroutine[Any, Any, bytes] | None:
        """The answer to a token or introspection request at the head of the buffer (its
        bytes then taken off the buffer), a coroutine making it, or None: handed over to
        aiohttp (not ours) or not complete yet."""
        accepted = self.posts.accept(parsed.method, parsed.url, parsed.headers) if parsed.plain and not parsed.close \
            else None
        if accepted is None:
            self.hand_over()
            return None
        size, route = accepted
        if len(self.buffer) < head_end + size:
            return None  # the rest of the body is still on its way
        body = bytes(self.buffer[head_end:head_end + size])
        answer = self.posts.answer(route, parsed.headers, body, self.remote)
        if answer is None:
            self.hand_over()
            return None
        del self.buffer[:head_end + size]
        return (answer, False) if isinstance(answer, bytes) else answer

    async def _finish(self, making: Coroutine[Any, Any, bytes]) -> None:
        """Write an answer that needed the stores, then go on with the buffered requests."""
        try:
            data, close = await making, False
        except Exception:  # not an error the endpoint knows (those are in the answer): a bug
            log.exception("a request on the fast path failed")
            data, close = _SERVER_ERROR, True
        finally:
            self.running = None
        self.last_active = self.loop.time()
        if self.transport.is_closing():
            self.connections.discard(self)
            return
        self.transport.write(data)
        if close or self.closing:
            self.close()
            return
        self._answer_buffered()
        self._pace_reading()

    def eof_received(self) -> bool | None:
        return None  # close (a half-closed client gets nothing more from us)

    def hand_over(self) -> None:
        """aiohttp's protocol takes the connection and the bytes not answered yet."""
        self._stop_timer()
        self.connections.discard(self)
        handler = self.server()
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        if self.reading_paused:  # aiohttp paces its own reading and writing
            self.transport.resume_reading()
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            handler.data_received(data)

    def shut(self) -> None:
        """Stopping: close now, or right after the request that is running."""
        self.closing = True
        if self.running is None:
            self.close()

    def close(self) -> None:
        self._stop_timer()
        self.connections.discard(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                shutdown_timeout: float = 15, keepalive: float = KEEPALIVE) -> None:
    """Run `app` until SIGINT/SIGTERM (aiohttp's `AppRunner`, whose signal handlers raise
    `GracefulExit`), its connections starting with `FastProtocol`. Stopping: stop
    listening, close the fast-path connections (those running an API request once it is
    answered, within `shutdown_timeout`), then aiohttp drains the requests in flight for
    up to `shutdown_timeout` s and the application's cleanup closes the stores."""
    runner = web.AppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    server = runner.server
    assert server is not None
    documents, connections = Documents(app), set()
    posts = Posts(app, http_date)
    listener = None
    try:
        listener = await asyncio.get_running_loop().create_server(
            lambda: FastProtocol(server, documents, posts, connections, keepalive), host, port,
            reuse_port=reuse_port or None, backlog=1024,
        )
        log.info("serving on http://%s:%d", host, port)
        await asyncio.Future()  # until a signal ends it
    finally:
        if listener is not None:
            listener.close()
        for connection in list(connections):
            connection.shut()
        running = [c.running for c in connections if c.running is not None]
        if running:
            await asyncio.wait(running, timeout=shutdown_timeout)
        await runner.cleanup()


def run(app: web.Application, host: str, port: int, *, loop: asyncio.AbstractEventLoop,
        reuse_port: bool = False) -> None:
    """`web.run_app` for `serve`: the loop runs it to the end, then closes."""
    asyncio.set_event_loop(loop)
    task = loop.create_task(serve(app, host, port, reuse_port=reuse_port))
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():
            task.cancel()
            try:
                loop.run_until_complete(task)
            except (asyncio.CancelledError, web.GracefulExit, KeyboardInterrupt):
                pass
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
