"""Process-wide probes for load balancers: `/healthz` (the process answers) and `/readyz`
(both stores answer and every realm's signing keys this instance has read can be decrypted;
otherwise 503 naming the stores that do not answer and the realms whose keys are unusable)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from engine.web.appkeys import SERVICES

PROBE_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    stores = {"durable": services.durable, "ephemeral": services.ephemeral}
    results = await asyncio.gather(
        *(asyncio.wait_for(store.ping(), PROBE_TIMEOUT) for store in stores.values()),
        return_exceptions=True,
    )
    down = [name for name, result in zip(stores, results, strict=True) if isinstance(result, BaseException)]
    # Realms whose published keys this instance cannot decrypt (wrong or missing
    # IDP_KEY_ENCRYPTION_KEY): it cannot sign or serve their JWKS, so it is not ready.
    unusable = dict(getattr(services.keys, "unusable", None) or {})
    if unusable:
        down.append("keys")
    if down:
        body: dict[str, object] = {"status": "unavailable", "unavailable": down}
        if unusable:
            body["unusable_keys"] = [
                {"realm": realm, "kid": kid, "reason": "cannot be decrypted: wrong or missing IDP_KEY_ENCRYPTION_KEY"}
                for realm, kid in sorted(unusable.items())
            ]
        return web.json_response(body, status=503, headers={"Cache-Control": "no-store"})
    return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})
