"""The floor of the chosen stack under client_credentials (issue 17): a minimal aiohttp
app, on the event loop `idp serve` uses (uvloop), whose `POST /token` does the least an
identity provider must do for a client_credentials grant and nothing more:

- reads the form (`grant_type=client_credentials`);
- authenticates the client from its `Authorization: Basic` header: the SHA-256 of the
  presented secret compared in constant time with the configured hash (as a realm file
  stores it, `secret_sha256`);
- signs one RS256 access token through `engine.tokens.jwt.sign` with a 2048-bit key from
  `engine.tokens.keys.generate_key` (Tessera's own sign call and key size), the claims of
  Tessera's access token (RFC 9068: `iss`, `sub`, `aud`, `client_id`, `scope`, `iat`,
  `exp`, a fresh `jti`; `typ: at+jwt`), built per request;
- answers the token response as JSON with `Cache-Control: no-store`.

No middleware, no access log, no store, no rate limit, no metrics: what Tessera's
client_credentials reaches next to it (in turns, same core) is what its own work per
request (routing, middleware, realm lookup, rate limit and revocation round trips, audit,
access log, metrics) leaves of the stack's floor. Usage: aiohttp_floor.py PORT SECRET
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import sys
import time

from aiohttp import web

from engine.tokens import jwt
from engine.tokens.keys import generate_key

CLIENT_ID = "svc-rs256"
ISSUER = "http://127.0.0.1:4100/realms/bench"  # the length of Tessera's issuer
AUDIENCE = "https://api.bench.example"
KEY = generate_key("RS256")


def error(code: str, status: int = 400) -> web.Response:
    return web.json_response({"error": code}, status=status, headers={"Cache-Control": "no-store"})


def make_app(secret: str) -> web.Application:
    secret_sha256 = hashlib.sha256(secret.encode()).digest()

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return error("unsupported_grant_type")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        try:
            client_id, _, presented = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return error("invalid_client", 401)
        if scheme.lower() != "basic" or client_id != CLIENT_ID or not hmac.compare_digest(
                hashlib.sha256(presented.encode()).digest(), secret_sha256):
            return error("invalid_client", 401)
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": client_id, "aud": AUDIENCE, "client_id": client_id, "scope": "api.read",
                  "iat": now, "exp": now + 600, "jti": secrets.token_urlsafe(16)}
        access_token = jwt.sign(claims, KEY, KEY.kid, "RS256", typ="at+jwt")
        return web.json_response({"access_token": access_token, "token_type": "Bearer", "expires_in": 600,
                                  "scope": "api.read"}, headers={"Cache-Control": "no-store"})

    async def ready(request: web.Request) -> web.Response:  # for the benchmark's readiness poll
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/", ready)
    return app


def main() -> None:
    try:
        import uvloop
    except ImportError:
        loop = None
    else:
        loop = uvloop.new_event_loop()
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=loop)


if __name__ == "__main__":
    main()
