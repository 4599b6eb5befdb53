"""The raw floors (information since issue 17) and the login-flow floor of target 6a: the
least a Python server on this core can do per request,
with none of an identity provider's work. Usage: floor_server.py PORT

- `POST /token`: one RS256 JWT signed by the sign ceiling's own operation
  (`limits.sign_operation`, through `engine.tokens.jwt.sign`), answered as JSON. What
  it reaches next to the sign ceiling is what the kernel (loopback TCP, one read and one
  write per request) and the least Python per request leave of it: 1a's "everything but
  the signature" cannot cost less.
- `POST /login`: one argon2id verify, the argon2id limit's own operation
  (`limits.argon2_operation`: the password plugin's `Argon2Hasher` at the realm's default
  parameters), on one hashing thread as `idp serve` runs it on one core, and
  the two RS256 signatures of a code exchange (ID token and access token), in one
  request instead of a flow's four: 6a's ceiling with a flow's unavoidable work.
- The same work in the login flow's own four requests, as `bench/loadgen.py login` drives
  them (`--base` this server): `GET /realms/bench/authorize` (303 to the login page),
  `GET /realms/bench/login` (the form), `POST /realms/bench/login` (the verify; 303 back
  with a code), `POST /realms/bench/token` (the two signatures). Flows are kept in a dict:
  no store, no checks. What it reaches next to the argon2id rate is 6a's ceiling for the
  flow as Tessera serves it, measured by the same load generator.

A raw asyncio protocol on uvloop (no HTTP framework; `idp serve` answers through aiohttp): heads
split at the blank line, the body by its `Content-Length`, keep-alive, no routing, no
validation. Not a server to copy: it trusts its client (the benchmark's wrk).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvloop
from limits import argon2_operation, sign_operation  # the very operations the limits time

from engine.accounts.passwords import yield_to_the_event_loop  # idp serve's hashing thread priority

SIGN = sign_operation("RS256")
VERIFY = argon2_operation()
HASHING = ThreadPoolExecutor(1, thread_name_prefix="floor-hash", initializer=yield_to_the_event_loop)
FLOW = "/realms/bench/"
FLOWS: dict[str, str] = {}  # flow id -> redirect_uri


def respond(transport: Any, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(data), data))


def see_other(transport: Any, location: str) -> None:
    transport.write(b"HTTP/1.1 303 See Other\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location.encode())


async def login(transport: Any) -> None:
    verified = await asyncio.get_running_loop().run_in_executor(HASHING, VERIFY)
    respond(transport, {"verified": verified, "id_token": SIGN(), "access_token": SIGN(), "token_type": "Bearer"})


async def flow_login(transport: Any, form: dict[str, list[str]]) -> None:
    await asyncio.get_running_loop().run_in_executor(HASHING, VERIFY)
    see_other(transport, f"{FLOWS.pop(form['flow'][0])}?code={secrets.token_urlsafe(32)}")


def flow_step(transport: Any, method: bytes, target: str, body: bytes) -> None:
    """One of the login flow's four requests (see the module's docstring)."""
    url = urlsplit(target)
    step = url.path[len(FLOW):]
    if step == "authorize":
        flow = secrets.token_urlsafe(16)
        FLOWS[flow] = parse_qs(url.query)["redirect_uri"][0]
        see_other(transport, f"{FLOW}login?flow={flow}")
    elif step == "login" and method == b"GET":
        page = (f'<!doctype html><form method="post" action="{FLOW}login">'
                f'<input type="hidden" name="flow" value="{parse_qs(url.query)["flow"][0]}">'
                '<input name="email"><input name="password" type="password"><button>Sign in</button></form>').encode()
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(page), page))
    elif step == "login":
        asyncio.get_running_loop().create_task(flow_login(transport, parse_qs(body.decode())))
    else:  # token: the code exchange's ID token and access token
        respond(transport, {"access_token": SIGN(), "id_token": SIGN(), "token_type": "Bearer", "expires_in": 600})


class Floor(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end + 2].lower()
            at = head.find(b"\r\ncontent-length:")
            size = int(head[at + 17:head.index(b"\r\n", at + 2)]) if at >= 0 else 0
            if len(buffer) < end + 4 + size:
                break
            method, target, _ = buffer[:buffer.index(b"\r\n")].split(b" ", 2)
            body = buffer[end + 4:end + 4 + size]
            buffer = buffer[end + 4 + size:]
            if target.startswith(FLOW.encode()):
                flow_step(self.transport, method, target.decode(), body)
            elif target == b"/login":
                asyncio.get_running_loop().create_task(login(self.transport))
            else:
                respond(self.transport, {"access_token": SIGN(), "token_type": "Bearer", "expires_in": 600})
        self.buffer = buffer


async def serve(port: int) -> None:
    await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", port, backlog=1024)
    await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
