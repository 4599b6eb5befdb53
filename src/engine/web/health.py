"""Process-wide probes for load balancers: `/healthz` (the process answers) and `/readyz`
(both stores answer; otherwise 503 naming the ones that do not)."""

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
    if down:
        return web.json_response(
            {"status": "unavailable", "unavailable": down}, status=503, headers={"Cache-Control": "no-store"}
        )
    return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})
