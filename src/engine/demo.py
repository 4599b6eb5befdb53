"""`idp demo`: a tiny relying party for the shipped public client (`frontend`), so a new
user sees a whole sign-in end to end with nothing else installed.

It is what a browser application does with Tessera, written out: discovery, an
authorization request with `state`, `nonce` and PKCE S256 (RFC 7636), the callback with
its `state` and `iss` checked (RFC 9207), the code exchange, the ID token verified against
the JWKS (OIDC Core §3.1.3.7: signature, `iss`, `aud`, `exp`, `nonce`), userinfo, and
RP-initiated logout with `id_token_hint`. Pending logins are kept in memory, bound to the
browser by a cookie; nothing here is meant for production.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

COOKIE = "demo_login"
PENDING_LIFETIME = 600  # seconds the user has at the IdP

STYLE = """body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1d2433}
a.button,button{display:inline-block;background:#2446c7;color:#fff;border:0;border-radius:.4rem;padding:.6rem 1.1rem;
font-size:1rem;text-decoration:none;cursor:pointer}pre{background:#f3f5f9;padding:1rem;border-radius:.4rem;overflow:auto}
.error{color:#a4161a}"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class DemoClient:
    """The relying party: one issuer, one public client, one redirect URI."""

    def __init__(self, issuer: str, client_id: str, base_url: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.base_url = base_url.rstrip("/")
        self.redirect_uri = f"{self.base_url}/callback"
        self.pending: dict[str, dict[str, Any]] = {}  # browser cookie -> the login it started
        self.http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if document.get("issuer") != self.issuer:  # OIDC Discovery §4.3
                raise ValueError(f"discovery names issuer {document.get('issuer')!r}, not {self.issuer!r}")
            self._metadata = document
        return self._metadata

    async def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        assert self.http is not None
        async with self.http.get(url, **kwargs) as response:
            return await response.json(content_type=None)

    # ------------------------------------------------------------------ pages

    async def home(self, request: web.Request) -> web.Response:
        return _page("Tessera demo application", (
            f"<p>This page is a relying party for the client <code>{html.escape(self.client_id)}</code> of "
            f"<code>{html.escape(self.issuer)}</code>.</p>"
            "<p><a class=button href='/login'>Sign in with Tessera</a></p>"))

    async def login(self, request: web.Request) -> web.Response:
        try:
            metadata = await self.metadata()
        except (aiohttp.ClientError, ValueError) as exc:
            return self._error(f"Tessera does not answer at {self.issuer} ({exc}). Start it with `make run`"
                               " (or `idp serve`) and try again.")
        state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        binding = secrets.token_urlsafe(24)
        self._forget_old()
        self.pending[binding] = {"state": state, "nonce": nonce, "verifier": verifier, "at": time.time()}
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
            "scope": "openid profile email", "state": state, "nonce": nonce,
            "code_challenge": _s256(verifier), "code_challenge_method": "S256",
        })
        response = web.HTTPSeeOther(f"{metadata['authorization_endpoint']}?{query}")
        response.set_cookie(COOKIE, binding, httponly=True, samesite="Lax", max_age=PENDING_LIFETIME)
        raise response

    def _forget_old(self) -> None:
        cutoff = time.time() - PENDING_LIFETIME
        for key in [k for k, v in self.pending.items() if v["at"] < cutoff]:
            del self.pending[key]

    async def callback(self, request: web.Request) -> web.Response:
        pending = self.pending.pop(request.cookies.get(COOKIE, ""), None)
        params = request.query
        if pending is None or params.get("state") != pending["state"]:
            return self._error("This sign-in response does not belong to a sign-in started in this browser.")
        if params.get("iss") != self.issuer:  # RFC 9207 mix-up defence
            return self._error(f"The response came from {params.get('iss')!r}, not {self.issuer!r}.")
        if "error" in params:
            return self._error(f"The identity provider answered {params['error']}: "
                               f"{params.get('error_description', '')}")
        metadata = await self.metadata()
        assert self.http is not None
        async with self.http.post(metadata["token_endpoint"], data={
            "grant_type": "authorization_code", "code": params.get("code", ""), "redirect_uri": self.redirect_uri,
            "client_id": self.client_id, "code_verifier": pending["verifier"],
        }) as response:
            tokens = await response.json(content_type=None)
        if "id_token" not in tokens:
            return self._error(f"The code exchange failed: {tokens.get('error')}: {tokens.get('error_description')}")
        try:
            claims = await self._verify_id_token(metadata, tokens["id_token"], pending["nonce"])
        except (JoseError, ValueError) as exc:
            return self._error(f"The ID token was refused: {exc}")
        userinfo = await self._get_json(metadata["userinfo_endpoint"],
                                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
        logout = metadata.get("end_session_endpoint", "") + "?" + urlencode({
            "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": self.base_url + "/",
            "client_id": self.client_id})
        response = _page("You are signed in", (
            f"<p>Hello, {html.escape(str(userinfo.get('name') or userinfo.get('email') or claims['sub']))}.</p>"
            f"<h2>ID token claims (verified)</h2><pre id=claims>{html.escape(json.dumps(claims, indent=2))}</pre>"
            f"<h2>Userinfo</h2><pre id=userinfo>{html.escape(json.dumps(userinfo, indent=2))}</pre>"
            f"<p><a class=button href='{html.escape(logout)}'>Sign out</a></p>"))
        response.del_cookie(COOKIE)
        return response

    async def _verify_id_token(self, metadata: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
        keys = KeySet.import_key_set(await self._get_json(metadata["jwks_uri"]))
        token = jwt.decode(id_token, keys, algorithms=metadata.get("id_token_signing_alg_values_supported"))
        JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer}, aud={"essential": True, "value": self.client_id},
            exp={"essential": True}, nonce={"essential": True, "value": nonce}, sub={"essential": True},
        ).validate(token.claims)
        return dict(token.claims)

    def _error(self, message: str) -> web.Response:
        return _page("Not signed in", f"<p class=error>{html.escape(message)}</p>"
                     "<p><a class=button href='/login'>Try again</a> <a href='/'>Home</a></p>", status=400)

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.home)
        app.router.add_get("/login", self.login)
        app.router.add_get("/callback", self.callback)

        async def http_session(app: web.Application):
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            yield
            await self.http.close()

        app.cleanup_ctx.append(http_session)
        return app


async def serve(client: DemoClient, host: str, port: int) -> None:
    """Serve the demo until cancelled."""
    runner = web.AppRunner(client.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Future()
    finally:
        await runner.cleanup()
