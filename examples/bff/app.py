"""A backend-for-frontend (aiohttp): the browser holds only an HttpOnly session cookie;
the tokens stay on this server, which signs in with Tessera as a confidential client
(Authlib: authorization code + PKCE), verifies the ID token (joserfc), refreshes the access
token when it is about to expire (refresh tokens rotate: the new one replaces the old),
and attaches it to the API calls it proxies. Sign-out revokes the refresh token and goes
through RP-initiated logout.

    python examples/bff/app.py          # http://localhost:8081

Settings (environment): ISSUER (http://localhost:4000/realms/examples), CLIENT_ID (bff),
BFF_CLIENT_SECRET (the realm's demo default), PORT (8081), PUBLIC_URL
(http://localhost:$PORT), API_URL (http://localhost:8082, the videos API), REFRESH_MARGIN
(60: refresh when the access token has fewer seconds left).
"""

from __future__ import annotations

import html
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from httpx2 import AsyncClient
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ISSUER = os.environ.get("ISSUER", "http://localhost:4000/realms/examples").rstrip("/")
CLIENT_ID = os.environ.get("CLIENT_ID", "bff")
CLIENT_SECRET = os.environ.get("BFF_CLIENT_SECRET", "change-me-bff-secret-0123456789abcdef")
PORT = int(os.environ.get("PORT", "8081"))
PUBLIC_URL = os.environ.get("PUBLIC_URL", f"http://localhost:{PORT}").rstrip("/")
API_URL = os.environ.get("API_URL", "http://localhost:8082").rstrip("/")
REFRESH_MARGIN = int(os.environ.get("REFRESH_MARGIN", "60"))
SCOPE = "openid profile email offline_access videos.read videos.write"
COOKIE = "bff_session"
log = logging.getLogger("bff")


@dataclass
class Session:
    """Server-side state behind one cookie. Nothing here ever reaches the browser."""

    pending: dict[str, str] = field(default_factory=dict)  # state, nonce, code_verifier of a sign-in
    token: dict[str, Any] | None = None  # access, refresh and ID tokens, expires_at
    user: dict[str, Any] | None = None  # the verified ID token's claims
    created: float = field(default_factory=time.monotonic)


class Bff:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.metadata: dict[str, Any] = {}
        self.keys: KeySet | None = None
        self.http = AsyncClient(timeout=10)

    def oauth(self, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(CLIENT_ID, CLIENT_SECRET, scope=SCOPE, redirect_uri=f"{PUBLIC_URL}/callback",
                                 code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
                                 timeout=10, **kwargs)

    async def discover(self) -> None:
        response = await self.http.get(f"{ISSUER}/.well-known/openid-configuration")
        response.raise_for_status()
        self.metadata = response.json()
        if self.metadata["issuer"] != ISSUER:  # OIDC Discovery §4.3
            raise RuntimeError(f"the discovery document names issuer {self.metadata['issuer']!r}")

    async def key_set(self, refresh: bool = False) -> KeySet:
        if self.keys is None or refresh:
            response = await self.http.get(self.metadata["jwks_uri"])
            response.raise_for_status()
            self.keys = KeySet.import_key_set(response.json())
        return self.keys

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """OIDC Core §3.1.3.7: signature by the issuer's key, iss, aud, exp, nonce."""
        try:
            decoded = jwt.decode(id_token, await self.key_set(), algorithms=["RS256", "ES256", "EdDSA"])
        except JoseError:  # perhaps a key published since we fetched the set
            decoded = jwt.decode(id_token, await self.key_set(refresh=True), algorithms=["RS256", "ES256", "EdDSA"])
        jwt.JWTClaimsRegistry(
            leeway=30, iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": CLIENT_ID},
            exp={"essential": True}, sub={"essential": True}, nonce={"essential": True, "value": nonce},
        ).validate(decoded.claims)
        return decoded.claims

    def session(self, request: web.Request) -> tuple[str | None, Session | None]:
        sid = request.cookies.get(COOKIE)
        return (sid, self.sessions.get(sid)) if sid else (None, None)

    async def access_token(self, session: Session) -> str:
        """The session's access token, refreshed first when it is about to expire."""
        token = session.token
        assert token is not None
        if token["expires_at"] - time.time() < REFRESH_MARGIN:
            async with self.oauth(token=token) as client:
                session.token = dict(await client.refresh_token(self.metadata["token_endpoint"],
                                                                refresh_token=token["refresh_token"]))
            session.token.setdefault("id_token", token.get("id_token"))
            session.token.setdefault("refresh_token", token["refresh_token"])
            log.info("refreshed the access token (the refresh token rotated: %s)",
                     session.token["refresh_token"] != token["refresh_token"])
        return session.token["access_token"]


BFF = web.AppKey("bff", Bff)


def _page(body: str) -> web.Response:
    return web.Response(content_type="text/html", text=f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Videos (BFF)</title></head>
<body><h1>Videos</h1>{body}</body></html>""")


def _same_origin(request: web.Request) -> bool:
    """State-changing requests come from our own pages (CSRF; the cookie is SameSite=Lax too)."""
    return request.headers.get("Origin") == PUBLIC_URL


async def home(request: web.Request) -> web.Response:
    _, session = request.app[BFF].session(request)
    if session is None or session.user is None:
        return _page('<p>You are not signed in.</p><p><a id="sign-in" href="/login">Sign in</a></p>')
    user = session.user
    name = html.escape(str(user.get("name") or user["sub"]))
    email = html.escape(str(user.get("email", "")))
    return _page(f"""<p id="who">Signed in as <strong>{name}</strong> ({email})</p>
<button id="load">Load my videos</button> <pre id="videos"></pre>
<form method="post" action="/logout"><button id="sign-out" type="submit">Sign out</button></form>
<script>
document.getElementById("load").onclick = async () => {{
  const response = await fetch("/api/videos");
  document.getElementById("videos").textContent = response.status + " " + await response.text();
}};
</script>""")


async def login(request: web.Request) -> web.Response:
    bff = request.app[BFF]
    for old in [k for k, v in bff.sessions.items() if v.user is None and time.monotonic() - v.created > 600]:
        del bff.sessions[old]  # sign-ins started and never finished
    sid = secrets.token_urlsafe(32)
    session = Session()
    code_verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    async with bff.oauth() as client:
        url, state = client.create_authorization_url(bff.metadata["authorization_endpoint"],
                                                     code_verifier=code_verifier, nonce=nonce)
    session.pending = {"state": state, "nonce": nonce, "code_verifier": code_verifier}
    bff.sessions[sid] = session
    response = web.HTTPFound(url)
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Lax", secure=PUBLIC_URL.startswith("https:"), path="/")
    raise response


async def callback(request: web.Request) -> web.Response:
    bff = request.app[BFF]
    old_sid, session = bff.session(request)
    pending = session.pending if session else {}
    if not pending or request.query.get("state") != pending.get("state"):
        return _page('<p>This sign-in expired or was not started here. <a href="/login">Sign in again</a></p>')
    if "error" in request.query:  # RFC 6749 §4.1.2.1
        return _page(f"<p>Sign-in failed: {html.escape(request.query['error'])}</p>")
    if request.query.get("iss") != ISSUER:  # RFC 9207: the answer comes from our issuer
        return _page("<p>Sign-in failed: the answer names another issuer.</p>")
    try:
        async with bff.oauth(state=pending["state"]) as client:
            token = dict(await client.fetch_token(bff.metadata["token_endpoint"], code=request.query.get("code", ""),
                                                  code_verifier=pending["code_verifier"]))
        user = await bff.verify_id_token(token["id_token"], pending["nonce"])
    except (OAuthError, JoseError, KeyError) as exc:
        log.warning("sign-in failed: %s", exc)
        return _page("<p>Sign-in failed.</p>")
    bff.sessions.pop(old_sid, None)
    sid = secrets.token_urlsafe(32)  # a new id once signed in (no session fixation)
    bff.sessions[sid] = Session(token=token, user=user)
    response = web.HTTPFound("/")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Lax", secure=PUBLIC_URL.startswith("https:"), path="/")
    raise response


async def api_videos(request: web.Request) -> web.Response:
    """Proxies the videos API with the session's access token."""
    bff = request.app[BFF]
    _, session = bff.session(request)
    if session is None or session.token is None:
        return web.json_response({"error": "not signed in"}, status=401)
    if request.method != "GET" and not _same_origin(request):
        return web.json_response({"error": "cross-origin request refused"}, status=403)
    try:
        access_token = await bff.access_token(session)
    except OAuthError as exc:  # the refresh token was revoked (sign-out elsewhere, reuse detected)
        log.warning("refresh failed: %s", exc)
        session.token = session.user = None
        return web.json_response({"error": "signed out"}, status=401)
    upstream = await bff.http.request(request.method, f"{API_URL}/videos", content=await request.read(),
                                      headers={"Authorization": f"Bearer {access_token}",
                                               "Content-Type": request.content_type})
    return web.Response(status=upstream.status_code, body=upstream.content, content_type="application/json")


async def logout(request: web.Request) -> web.Response:
    bff = request.app[BFF]
    if not _same_origin(request):
        return web.json_response({"error": "cross-origin request refused"}, status=403)
    sid, session = bff.session(request)
    bff.sessions.pop(sid, None)
    target = "/"
    if session is not None and session.token is not None:
        async with bff.oauth() as client:  # RFC 7009: the refresh token dies with the session
            await client.revoke_token(bff.metadata["revocation_endpoint"], session.token["refresh_token"],
                                      token_type_hint="refresh_token")
        # OIDC RP-Initiated Logout 1.0 §2: end the IdP session too, then come back here.
        target = bff.metadata["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": session.token["id_token"], "post_logout_redirect_uri": f"{PUBLIC_URL}/",
            "client_id": CLIENT_ID})
    response = web.HTTPFound(target)
    response.del_cookie(COOKIE, path="/")
    raise response


async def _lifecycle(app: web.Application):
    bff = Bff()
    await bff.discover()
    app[BFF] = bff
    yield
    await bff.http.aclose()


def create_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/", home)
    app.router.add_get("/login", login)
    app.router.add_get("/callback", callback)
    app.router.add_route("GET", "/api/videos", api_videos)
    app.router.add_route("POST", "/api/videos", api_videos)
    app.router.add_post("/logout", logout)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(create_app(), host="127.0.0.1", port=PORT, print=lambda line: print(line, flush=True))
