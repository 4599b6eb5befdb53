"""Discovery and JWKS at the protocol level (issue 7: verifiers fetch them far more often
than anything else changes them).

Every connection starts with `DocumentProtocol`. While the requests on it are plain
`GET`/`HEAD`s of a realm's discovery document or JWKS whose pre-serialised body is at hand
(`engine.cached_body`), it answers them itself: the request head is parsed by httptools
(llhttp, the parser uvicorn uses), the answer is the body and headers aiohttp would send
(`ETag`, `Cache-Control`, `If-None-Match` → 304, `X-Request-Id`, CORS `*`, `Date`),
counted in the metrics and the access log like any request. The first request that is
anything else (another path or method, a body, a query, HTTP/1.0, an upgrade, a head
httptools refuses, keys not read yet) hands the connection and every byte not yet
answered to aiohttp for good, so aiohttp stays the server of record for everything else:
the application never sees a difference but the speed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from email.utils import formatdate
from time import perf_counter, time
from typing import Any

import httptools
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from engine.cached_body import CachedBody
from engine.logs import REQUEST_ID, accept_request_id
from engine.oauth import discovery, jwks
from engine.web.appkeys import SERVICES
from engine.web.cors import EXPOSE_HEADERS
from engine.web.middleware import record_request

log = logging.getLogger("engine.web")

MAX_HEAD = 8192  # a longer head is aiohttp's to judge
KEEPALIVE = 75.0  # seconds a connection may stay silent (aiohttp's keepalive_timeout)
DOCUMENT_PATHS = (discovery.PATH, *jwks.PATHS)  # as engine.web.app routes them
_REALM_PATH = re.compile(r"^/realms/([A-Za-z0-9_.-]{1,64})(" + "|".join(map(re.escape, DOCUMENT_PATHS)) + ")$")
_CORS = f"Access-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: {EXPOSE_HEADERS}\r\n"


class _Head:
    """What httptools saw of one request head."""

    __slots__ = ("url", "headers", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in self.headers:  # a repeated header: aiohttp's to judge
            raise httptools.HttpParserError("repeated header")
        self.headers[name] = value

    def on_message_complete(self) -> None:
        self.complete = True


class Documents:
    """Answers for document requests, built from the running application's state."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._date_second = 0
        self._date = ""

    def answer(self, head: bytes, remote: str | None = None) -> tuple[bytes, bool] | None:
        """(response bytes, close after) for a request head we can answer, else None."""
        started = perf_counter()
        parsed = _Head()
        parser = httptools.HttpRequestParser(parsed)
        try:
            parser.feed_data(head)
        except httptools.HttpParserError:
            return None
        method = parser.get_method()
        headers = parsed.headers
        if (not parsed.complete or method not in (b"GET", b"HEAD") or parser.get_http_version() != "1.1"
                or parser.should_upgrade() or b"content-length" in headers or b"transfer-encoding" in headers
                or b"expect" in headers or b"host" not in headers):
            return None
        found = self._document(parsed.url.decode("latin-1"))
        if found is None:
            return None
        route, body, max_age = found
        request_id = accept_request_id(headers[b"x-request-id"].decode("latin-1") if b"x-request-id" in headers
                                       else None)
        not_modified = headers.get(b"if-none-match", b"").decode("latin-1") == body.etag
        status = 304 if not_modified else 200
        # HTTP/1.1 keeps the connection unless the client says `close` (RFC 9112 §9.3);
        # httptools forgets it once the message is complete, so the header decides.
        close = b"close" in [t.strip() for t in headers.get(b"connection", b"").lower().split(b",")]
        lines = [
            "HTTP/1.1 304 Not Modified\r\n" if not_modified else "HTTP/1.1 200 OK\r\n",
            f"ETag: {body.etag}\r\nCache-Control: public, max-age={max_age}\r\n",
        ]
        if not not_modified:
            lines.append(f"Content-Type: application/json\r\nContent-Length: {len(body.body)}\r\n")
        lines.append(f"X-Request-Id: {request_id}\r\nDate: {self._http_date()}\r\nServer: {SERVER_SOFTWARE}\r\n")
        if b"origin" in headers:
            lines.append(_CORS)
        if close:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        response = "".join(lines).encode("latin-1")
        if not not_modified and method == b"GET":
            response += body.body
        self._observe(method.decode(), route, status, perf_counter() - started, request_id, remote)
        return response, close

    def _document(self, path: str) -> tuple[str, CachedBody, int] | None:
        services = self.app[SERVICES]
        runtime = services.runtime
        match = _REALM_PATH.match(path)
        if match is not None:
            name, tail, prefix = match.group(1), match.group(2), "/realms/{realm}"
        elif path in DOCUMENT_PATHS and runtime.root_realm:
            name, tail, prefix = runtime.root_realm, path, ""
        else:
            return None
        realm = runtime.realms.get(name)
        if realm is None:
            return None
        if tail == discovery.PATH:
            return prefix + tail, discovery.discovery_body(realm), discovery.MAX_AGE
        found = jwks.jwks_body(services, realm)
        if found is None:  # keys not read yet, or due for a re-read: aiohttp's handler awaits them
            return None
        return prefix + tail, found[0], found[1]

    def _http_date(self) -> str:
        now = int(time())
        if now != self._date_second:
            self._date_second, self._date = now, formatdate(now, usegmt=True)
        return self._date

    def _observe(self, method: str, route: str, status: int, seconds: float, request_id: str,
                 remote: str | None) -> None:
        token = REQUEST_ID.set(request_id)
        try:
            record_request(self.app, method, route, status, seconds, remote)
        finally:
            REQUEST_ID.reset(token)


class DocumentProtocol(asyncio.Protocol):
    """A connection: documents answered here until the first other request, then aiohttp's."""

    def __init__(self, server: web.Server, documents: Documents, connections: set[DocumentProtocol],
                 keepalive: float = KEEPALIVE) -> None:
        self.server, self.documents, self.connections = server, documents, connections
        self.keepalive = keepalive
        self.idle: asyncio.TimerHandle | None = None
        self.loop: Any = None
        self.last_active = 0.0
        self.transport: Any = None
        self.remote: str | None = None
        self.reading_paused = False
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
        self.connections.discard(self)

    def _close_if_silent(self) -> None:
        """A connection silent for `keepalive` seconds is closed, as aiohttp would (one
        timer per connection, moved only when it fires)."""
        due = self.last_active + self.keepalive
        if self.loop.time() >= due:
            self.close()
        else:
            self.idle = self.loop.call_at(due, self._close_if_silent)

    def _stop_timer(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None

    def pause_writing(self) -> None:  # a client that sends faster than it reads waits
        self.reading_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.reading_paused = False
        self.transport.resume_reading()
        self._answer_buffered()  # what was read before the pause

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        self.buffer += data
        self._answer_buffered()

    def _answer_buffered(self) -> None:
        buffer = self.buffer
        while buffer and not self.reading_paused:  # a client that does not read gets no more
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self.hand_over()
                return
            try:
                answer = self.documents.answer(bytes(buffer[:end + 4]), self.remote)
            except Exception:  # never lose a connection to a bug here: aiohttp answers instead
                log.exception("document fast path failed; handing the request to aiohttp")
                answer = None
            if answer is None:
                self.hand_over()
                return
            del buffer[:end + 4]
            self.transport.write(answer[0])
            if answer[1]:
                self.close()
                return

    def eof_received(self) -> bool | None:
        return None  # close (a half-closed client gets nothing more from us)

    def hand_over(self) -> None:
        """aiohttp's protocol takes the connection and the bytes not answered yet."""
        self._stop_timer()
        self.connections.discard(self)
        handler = self.server()
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        if self.reading_paused:  # aiohttp paces its own writes; reading was ours to pause
            self.transport.resume_reading()
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            handler.data_received(data)

    def close(self) -> None:
        self._stop_timer()
        self.connections.discard(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                shutdown_timeout: float = 15, keepalive: float = KEEPALIVE) -> None:
    """Run `app` until SIGINT/SIGTERM (aiohttp's `AppRunner`, whose signal handlers raise
    `GracefulExit`), its connections starting with `DocumentProtocol`. Stopping: stop
    listening, close the document connections (never busy between two events), then
    aiohttp drains the requests in flight for up to `shutdown_timeout` s and the
    application's cleanup closes the stores."""
    runner = web.AppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    server = runner.server
    assert server is not None
    documents, connections = Documents(app), set()
    listener = None
    try:
        listener = await asyncio.get_running_loop().create_server(
            lambda: DocumentProtocol(server, documents, connections, keepalive), host, port,
            reuse_port=reuse_port or None, backlog=1024,
        )
        log.info("serving on http://%s:%d", host, port)
        await asyncio.Future()  # until a signal ends it
    finally:
        if listener is not None:
            listener.close()
        for connection in list(connections):
            connection.close()
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
