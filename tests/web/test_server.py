"""`idp serve`'s serving loop (engine.web.server): the one HTTP stack, with deadlines.

Issue 23 item 11: a request head (or body) that does not arrive within a deadline is
dropped; idle keep-alive connections are bounded. Slowloris-style clients must not hold
connections and handlers for ever."""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
import time

import pytest

from engine.config import load_config
from engine.plugins import Plugins
from engine.web import server
from engine.web.app import create_app

REALM = """\
name: acme
providers:
  - {id: password, type: password, argon2: {memory_cost: 1024, time_cost: 1, parallelism: 1}}
clients:
  - client_id: spa
    type: public
    redirect_uris: ["http://localhost:3000/callback"]
    consent: implicit
"""


@pytest.fixture
async def serving(tmp_path, unused_tcp_port_factory):
    """`server.serve` of an embedded-store app with 0.5 s deadlines, as `idp serve` runs it."""
    port = unused_tcp_port_factory()
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent(REALM))
    (tmp_path / "idp.yaml").write_text(
        f"base_url: http://127.0.0.1:{port}\nrealms: realms/\nroot_realm: acme\n"
        f"storage: {{durable: 'sqlite:///{tmp_path}/idp.sqlite3', ephemeral: 'memory://'}}\n"
        "http: {idle_timeout: 1s, body_timeout: 1s}\n"
    )
    config = load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models())
    app = create_app(config, environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    task = asyncio.create_task(server.serve(app, "127.0.0.1", port, idle_timeout=1.0))
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        break
    yield port
    task.cancel()
    with pytest.raises((asyncio.CancelledError, Exception)):
        await task


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bytes, float]:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), seconds)
    return data, time.monotonic() - started


async def test_every_request_is_answered_by_the_app(serving):
    reader, writer = await asyncio.open_connection("127.0.0.1", serving)
    writer.write(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"X-Request-Id" in head  # the app's middleware answered
    assert json.loads(body)["issuer"] == f"http://127.0.0.1:{serving}"


async def test_a_head_that_never_completes_is_dropped(serving):
    """A slow-header client (Slowloris) loses the connection at the deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", serving)
    writer.write(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\n")  # no end of head
    await writer.drain()
    data, took = await _closed_within(reader, 5)
    assert data == b"" and took < 3


async def test_an_idle_keep_alive_connection_is_closed(serving):
    reader, writer = await asyncio.open_connection("127.0.0.1", serving)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert first.startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(reader.read(int(first.split(b"Content-Length: ")[1].split(b"\r\n")[0])), 5)
    data, took = await _closed_within(reader, 5)  # then nothing: the server closes it
    assert data == b"" and took < 3


async def test_a_body_that_does_not_arrive_in_time_is_refused(serving):
    reader, writer = await asyncio.open_connection("127.0.0.1", serving)
    writer.write(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: 100\r\n\r\ngrant_type=client_cre")  # 79 bytes never come
    await writer.drain()
    data = await asyncio.wait_for(reader.read(4096), 5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"Connection: close" in head  # what is left of the body is no request boundary
    assert json.loads(body)["error"] == "invalid_request"
