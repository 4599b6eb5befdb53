"""The videos API: an aiohttp resource server that trusts Tessera's access tokens.

    python examples/resource-server-python/server.py

GET /videos needs the scope videos.read, POST /videos videos.write; the answer names who
asked (`sub`, `client_id`, and `act` for a token obtained by token exchange). Settings:
ISSUER (http://localhost:4000/realms/examples), AUDIENCE (videos-api), PORT (8082),
JWKS_REFETCH_INTERVAL (10 s).
"""

from __future__ import annotations

import json
import logging
import os

import aiohttp
from aiohttp import web
from verifier import AccessTokenVerifier, InvalidToken, scopes

ISSUER = os.environ.get("ISSUER", "http://localhost:4000/realms/examples")
AUDIENCE = os.environ.get("AUDIENCE", "videos-api")
PORT = int(os.environ.get("PORT", "8082"))
REFETCH_INTERVAL = float(os.environ.get("JWKS_REFETCH_INTERVAL", "10"))  # seconds between refetches on an unknown kid

VERIFIER = web.AppKey("verifier", AccessTokenVerifier)
VIDEOS = web.AppKey("videos", list)


def _challenge(status: type[web.HTTPException], error: str, description: str) -> web.HTTPException:
    """RFC 6750 §3: the Bearer challenge with the error code."""
    return status(
        headers={"WWW-Authenticate": f'Bearer realm="{AUDIENCE}", error="{error}", error_description="{description}"'},
        text=json.dumps({"error": error, "error_description": description}), content_type="application/json")


def require(scope: str):
    def decorator(handler):
        async def wrapper(request: web.Request) -> web.StreamResponse:
            kind, _, token = request.headers.get("Authorization", "").partition(" ")
            if kind.lower() != "bearer" or not token:
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": f'Bearer realm="{AUDIENCE}"'})
            try:
                claims = await request.app[VERIFIER].verify(token.strip())
            except InvalidToken as exc:
                raise _challenge(web.HTTPUnauthorized, "invalid_token", str(exc).replace('"', "'")) from None
            if scope not in scopes(claims):
                raise _challenge(web.HTTPForbidden, "insufficient_scope", f"needs {scope}")
            request["claims"] = claims
            return await handler(request)
        return wrapper
    return decorator


def _caller(claims: dict) -> dict:
    return {"sub": claims["sub"], "client_id": claims.get("client_id"), "act": claims.get("act"),
            "scope": claims.get("scope")}


@require("videos.read")
async def list_videos(request: web.Request) -> web.Response:
    return web.json_response({"videos": request.app[VIDEOS], "caller": _caller(request["claims"])})


@require("videos.write")
async def add_video(request: web.Request) -> web.Response:
    body = await request.json()
    video = {"id": len(request.app[VIDEOS]) + 1, "title": str(body.get("title", "untitled"))[:200],
             "owner": request["claims"]["sub"]}
    request.app[VIDEOS].append(video)
    return web.json_response({"video": video, "caller": _caller(request["claims"])}, status=201)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _client(app: web.Application):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        app[VERIFIER] = AccessTokenVerifier(ISSUER, AUDIENCE, session, refetch_interval=REFETCH_INTERVAL)
        yield


def create_app() -> web.Application:
    app = web.Application()
    app[VIDEOS] = [{"id": 1, "title": "Welcome to Tessera", "owner": "system"}]
    app.cleanup_ctx.append(_client)
    app.router.add_get("/videos", list_videos)
    app.router.add_post("/videos", add_video)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(create_app(), host="127.0.0.1", port=PORT, print=lambda line: print(line, flush=True))
