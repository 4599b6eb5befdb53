"""Fake upstreams, served for real on loopback by the tests: a Google-shaped OpenID
provider (discovery, JWKS, authorization endpoint that "logs in" a chosen user at once,
token endpoint issuing signed ID tokens) and a GitHub-shaped OAuth 2 server
(`/login/oauth/authorize`, `/login/oauth/access_token`, `/user`, `/user/emails`).

Both check what a real one checks (client credentials, redirect URI, PKCE) and have knobs
to misbehave: deny, fail with 500, or issue ID tokens with a wrong nonce, audience,
expiry, signature or key."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

GOOGLE_CLIENT_ID = "tessera.apps.googleusercontent.com"
GOOGLE_SECRET = "google-secret-" + "g" * 24
GITHUB_CLIENT_ID = "Iv1.tessera"
GITHUB_SECRET = "github-secret-" + "h" * 24

_KEYS: list[RSAKey] = []


def rsa_key(index: int) -> RSAKey:
    """RSA keys shared by the whole run (generating 2048-bit keys is slow)."""
    while len(_KEYS) <= index:
        _KEYS.append(RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True))
    return _KEYS[index]


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def redirect_to(uri: str, **params: str) -> web.Response:
    separator = "&" if "?" in uri else "?"
    return web.Response(status=302, headers={"Location": uri + separator + urlencode(params)})


@dataclass
class GoogleUser:
    sub: str = "google-1001"
    email: str | None = "gail@example.com"
    email_verified: Any = True
    name: str | None = "Gail Google"
    picture: str | None = "https://lh3.example/gail.png"


@dataclass
class FakeGoogle:
    clock: Any  # the IdP's FrozenClock: one notion of "now" for both sides
    issuer: str = ""
    user: GoogleUser = field(default_factory=GoogleUser)
    published: list[RSAKey] = field(default_factory=lambda: [rsa_key(0)])
    signing_key: RSAKey = field(default_factory=lambda: rsa_key(0))
    signing_kid: str | None = None  # header kid override (forged signature under a real kid)
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # overrides for the next tokens
    forge: Any = None  # claims -> id_token string, replacing the honest signature
    deny: bool = False
    token_status: int = 200
    discovery_status: int = 200
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    jwks_fetches: int = 0
    discovery_fetches: int = 0

    def rotate(self) -> None:
        """Roll to a new signing key and stop publishing the old one."""
        self.signing_key = rsa_key(1)
        self.published = [rsa_key(1)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/oauth2/v3/certs", self.jwks)
        app.router.add_get("/o/oauth2/v2/auth", self.authorize)
        app.router.add_post("/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetches += 1
        if self.discovery_status != 200:
            return web.Response(status=self.discovery_status, text="<html>oops</html>")
        return web.json_response({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/o/oauth2/v2/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/oauth2/v3/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": list(self.auth_methods),
            "code_challenge_methods_supported": ["plain", "S256"],
        })

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [key.as_dict() for key in self.published]})

    async def authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        assert query["client_id"] == GOOGLE_CLIENT_ID and query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256" and "openid" in query["scope"].split()
        if self.deny:
            return redirect_to(query["redirect_uri"], error="access_denied", state=query["state"])
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"query": query, "user": self.user}
        return redirect_to(query["redirect_uri"], code=code, state=query["state"])

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({"form": form, "authorization": request.headers.get("Authorization")})
        if self.token_status != 200:
            return web.Response(status=self.token_status, text="Internal Server Error")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if auth := request.headers.get("Authorization"):
            client_id, secret = (unquote(p) for p in base64.b64decode(auth.split()[1]).decode().split(":", 1))
        if (client_id, secret) != (GOOGLE_CLIENT_ID, GOOGLE_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.codes.pop(form.get("code", ""), None)
        if (grant is None or form.get("redirect_uri") != grant["query"]["redirect_uri"]
                or s256(form.get("code_verifier", "")) != grant["query"]["code_challenge"]):
            return web.json_response({"error": "invalid_grant"}, status=400)
        user: GoogleUser = grant["user"]
        now = self.clock.timestamp()
        claims = {"iss": self.issuer, "sub": user.sub, "aud": GOOGLE_CLIENT_ID, "azp": GOOGLE_CLIENT_ID,
                  "iat": now, "exp": now + 3600, "nonce": grant["query"]["nonce"],
                  "email": user.email, "email_verified": user.email_verified,
                  "name": user.name, "picture": user.picture, "at_hash": "ignored"}
        claims = {k: v for k, v in {**claims, **self.id_token_claims}.items() if v is not None}
        header = {"alg": "RS256", "kid": self.signing_kid or self.signing_key.kid}
        id_token = self.forge(claims) if self.forge else jwt.encode(header, claims, self.signing_key)
        return web.json_response({"access_token": "ya29." + secrets.token_urlsafe(16), "expires_in": 3599,
                                  "token_type": "Bearer", "scope": grant["query"]["scope"], "id_token": id_token})


@dataclass
class FakeGitHub:
    base_url: str = ""
    user: dict[str, Any] = field(default_factory=lambda: {
        "id": 583231, "login": "octocat", "name": "The Octocat", "email": None,
        "avatar_url": "https://avatars.example/u/583231", "html_url": "https://github.example/octocat"})
    emails: list[dict[str, Any]] = field(default_factory=lambda: [
        {"email": "583231+octocat@users.noreply.github.com", "primary": False, "verified": True,
         "visibility": None},
        {"email": "octo@example.com", "primary": True, "verified": True, "visibility": "private"},
    ])
    emails_status: int = 200
    deny: bool = False
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/login/oauth/authorize", self.authorize)
        app.router.add_post("/login/oauth/access_token", self.access_token)
        app.router.add_get("/api/v3/user", self.get_user)
        app.router.add_get("/api/v3/user/emails", self.get_emails)
        return app

    async def authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        assert query["client_id"] == GITHUB_CLIENT_ID
        if self.deny:
            return redirect_to(query["redirect_uri"], error="access_denied",
                               error_description="The user has denied your application access.",
                               state=query["state"])
        code = secrets.token_hex(10)
        self.codes[code] = query
        return redirect_to(query["redirect_uri"], code=code, state=query["state"])

    async def access_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        query = self.codes.pop(form.get("code", ""), None)
        if (form.get("client_id"), form.get("client_secret")) != (GITHUB_CLIENT_ID, GITHUB_SECRET):
            result = {"error": "incorrect_client_credentials"}
        elif query is None or form.get("redirect_uri") != query["redirect_uri"]:
            result = {"error": "bad_verification_code"}
        elif s256(form.get("code_verifier", "")) != query.get("code_challenge"):
            result = {"error": "invalid_grant"}
        else:
            token = "gho_" + secrets.token_hex(16)
            self.tokens.add(token)
            result = {"access_token": token, "token_type": "bearer", "scope": query["scope"]}
        if request.headers.get("Accept") != "application/json":  # what GitHub does by default
            return web.Response(text=urlencode(result), content_type="application/x-www-form-urlencoded")
        return web.json_response(result)  # errors come with 200 too, as on GitHub

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    async def get_user(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response(self.user)

    async def get_emails(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "Bad credentials"}, status=401)
        if self.emails_status != 200:
            return web.json_response({"message": "Not Found"}, status=self.emails_status)
        return web.json_response(self.emails)
