"""The floor under targets 1a and 6a: the least a Python server on this core can do per
request, with none of an identity provider's work. Usage: floor_server.py PORT

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

A raw asyncio protocol on uvloop, as `engine.web.fastpath` answers its requests: heads
split at the blank line, the body by its `Content-Length`, keep-alive, no routing, no
validation. Not a server to copy: it trusts its client (the benchmark's wrk).
"""

from __future__ import annotations

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvloop
from limits import argon2_operation, sign_operation  # the very operations the limits time

SIGN = sign_operation("RS256")
VERIFY = argon2_operation()
HASHING = ThreadPoolExecutor(1, thread_name_prefix="floor-hash")


def respond(transport: Any, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(data), data))


async def login(transport: Any) -> None:
    verified = await asyncio.get_running_loop().run_in_executor(HASHING, VERIFY)
    respond(transport, {"verified": verified, "id_token": SIGN(), "access_token": SIGN(), "token_type": "Bearer"})


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
            is_login = b" /login " in buffer[:buffer.index(b"\r\n")]
            buffer = buffer[end + 4 + size:]
            if is_login:
                asyncio.get_running_loop().create_task(login(self.transport))
            else:
                respond(self.transport, {"access_token": SIGN(), "token_type": "Bearer", "expires_in": 600})
        self.buffer = buffer


async def serve(port: int) -> None:
    await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", port, backlog=1024)
    await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
