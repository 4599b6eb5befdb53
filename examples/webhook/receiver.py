"""The receiving side of a signed webhook (aiohttp): an event is accepted only with a
Tessera access token for this receiver (`aud` = webhooks.shop) from an allowed sender
(`client_id`), verified locally against the JWKS like any resource server does (the
verifier of examples/resource-server-python: typ at+jwt, signature, iss, aud, exp).

    python examples/webhook/receiver.py        # POST http://localhost:8085/webhooks/billing

GET /events lists what was accepted. Settings (environment): ISSUER
(http://localhost:4000/realms/examples), AUDIENCE (webhooks.shop), SENDERS (billing: the
client ids allowed to send), PORT (8085).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "resource-server-python"))
from verifier import AccessTokenVerifier, InvalidToken  # noqa: E402  (the resource server's verifier)

ISSUER = os.environ.get("ISSUER", "http://localhost:4000/realms/examples")
AUDIENCE = os.environ.get("AUDIENCE", "webhooks.shop")
SENDERS = set(os.environ.get("SENDERS", "billing").split(","))
PORT = int(os.environ.get("PORT", "8085"))

VERIFIER = web.AppKey("verifier", AccessTokenVerifier)
EVENTS = web.AppKey("events", list)
log = logging.getLogger("receiver")


async def billing_webhook(request: web.Request) -> web.Response:
    kind, _, token = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not token:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": f'Bearer realm="{AUDIENCE}"'})
    try:
        claims = await request.app[VERIFIER].verify(token.strip())
    except InvalidToken as exc:
        log.warning("refused a webhook: %s", exc)
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": f'Bearer realm="{AUDIENCE}", error="invalid_token"'},
                                   text="invalid token") from None
    if claims.get("client_id") not in SENDERS or claims["sub"] != claims.get("client_id"):
        log.warning("refused a webhook from %s", claims.get("client_id"))
        raise web.HTTPForbidden(text="this sender may not call this webhook")
    event = await request.json()
    request.app[EVENTS].append({"from": claims["client_id"], "event": event})
    log.info("accepted %s from %s", event.get("type"), claims["client_id"])
    return web.json_response({"accepted": True})


async def events(request: web.Request) -> web.Response:
    return web.json_response(request.app[EVENTS])


async def _client(app: web.Application):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        app[VERIFIER] = AccessTokenVerifier(ISSUER, AUDIENCE, session)
        yield


def create_app() -> web.Application:
    app = web.Application()
    app[EVENTS] = []
    app.cleanup_ctx.append(_client)
    app.router.add_post("/webhooks/billing", billing_webhook)
    app.router.add_get("/events", events)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(create_app(), host="127.0.0.1", port=PORT, print=lambda line: print(line, flush=True))
