"""examples/nextjs (issue 21, example 1): Next.js (App Router) + NextAuth signing in with
the realm `examples`, driven in Chromium against `idp serve` on both store pairs.

The production build (`next build`) is made once per test session; every test starts
`next start` on the free port standing in for 3000 (the realm's redirect URIs were rewritten
to it by the harness). What is checked:

- OpenID Connect Core 1.0 §3.1.2.1 + RFC 7636 §4.3: the authorization request carries
  state, nonce and an S256 code_challenge (NextAuth `checks: ["pkce", "state", "nonce"]`);
  the server component shows the signed-in user, and userinfo and the videos API
  (examples/resource-server-python) called on the server with the access token.
- RFC 6749 §6 + the seed's golden rule 3: the access token is refreshed on the server
  (proxy.ts), the rotated refresh token is kept (a lost one would trip reuse detection on
  the next refresh, OAuth 2.0 Security BCP §4.14.2), and no refresh token reaches the
  browser in anything it can read: cookies in clear, page HTML, scripts, JSON, RSC payloads.
- RFC 9700 §4.5: an authorization code carried to another browser does not sign in there.
- OIDC Core §10.1.1: refreshed ID tokens signed by a key of `idp keys rotate` still validate.
- OpenID Connect RP-Initiated Logout 1.0 §2: sign-out goes to end_session_endpoint with
  id_token_hint and post_logout_redirect_uri, ends the Tessera session and the app's, and
  the refresh token is revoked (RFC 7009 §2.2, seen through introspection, RFC 7662 §2.2).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.jwk import OctKey

from tests.examples.conftest import EXAMPLES, ExamplesIdp, jwt_header, sign_in, skip_or_fail

APP = EXAMPLES / "nextjs"
CLIENT_ID = "nextjs"
CLIENT_SECRET = "change-me-nextjs-secret-0123456789abcdef"  # the realm's loopback demo default
SESSION_COOKIE = "next-auth.session-token"
NODE_REQUIRED = (20, 9)  # next@16: engines.node >= 20.9.0
# Refresh whenever a page renders: the realm's access tokens live 10 minutes.
ALWAYS_REFRESH = str(10**6)


@pytest.fixture(scope="session")
def nextjs_build() -> Path:
    """`next build` once per test session, from the dependencies `make examples-deps` installed."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        skip_or_fail("Node.js and npm are not installed (apt-get install nodejs npm)")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if tuple(int(part) for part in version.lstrip("v").split(".")[:2]) < NODE_REQUIRED:
        skip_or_fail(f"Next.js 16 needs Node.js >= 20.9, found {version}")
    if not (APP / "node_modules" / ".bin" / "next").exists():
        skip_or_fail(f"{APP}/node_modules is missing: run `make examples-deps` (npm ci from the lock file)")
    result = subprocess.run(["npm", "run", "build"], cwd=APP, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NEXT_TELEMETRY_DISABLED": "1"})
    assert result.returncode == 0, f"next build failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
    return APP


@pytest.fixture
def nextjs(examples_idp: ExamplesIdp, start_example, nextjs_build: Path):
    """start(**env) → (app_url, session_secret): `next start` against this IdP."""

    def start(**env: str) -> tuple[str, str]:
        port = examples_idp.port(3000)
        secret = secrets.token_urlsafe(32)
        start_example("nextjs", ["npm", "run", "serve"], cwd=nextjs_build, port=port, env={
            "PORT": str(port), "ISSUER": examples_idp.issuer, "NEXTAUTH_SECRET": secret,
            "API_URL": f"http://127.0.0.1:{examples_idp.port(8082)}", "NEXT_TELEMETRY_DISABLED": "1",
            "JWKS_MAX_AGE": "1", **env})  # the harness's IdP: keys.verifier_cache_ttl 1s
        return examples_idp.url(3000), secret

    return start


def session_token(page, secret: str) -> dict:
    """NextAuth's session cookie decrypted as NextAuth does (next-auth/jwt `decode`): JWE
    dir + A256GCM under HKDF-SHA256(NEXTAUTH_SECRET, info "NextAuth.js Generated Encryption Key")."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    value = cookies.get(SESSION_COOKIE) or "".join(
        cookies[name] for name in sorted((n for n in cookies if n.startswith(f"{SESSION_COOKIE}.")),
                                         key=lambda n: int(n.rsplit(".", 1)[1])))
    assert value, f"no session cookie among {sorted(cookies)}"
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"",
               info=b"NextAuth.js Generated Encryption Key").derive(secret.encode())
    decrypted = jwe.decrypt_compact(value, OctKey.import_key(key), algorithms=["dir", "A256GCM"])
    return json.loads(decrypted.plaintext)


def introspect(idp: ExamplesIdp, token: str) -> dict:
    response = httpx.post(f"{idp.issuer}/introspect", data={"token": token}, auth=(CLIENT_ID, CLIENT_SECRET))
    return response.raise_for_status().json()


def sign_in_through_app(page, idp: ExamplesIdp, app: str, email: str | None = None) -> dict[str, list[str]]:
    """Home → "Sign in with Tessera" → the realm's form → back home; the /authorize query."""
    authorize: list[str] = []
    page.on("request", lambda r: authorize.append(r.url) if "/authorize?" in r.url else None)
    page.goto(f"{app}/")
    page.get_by_role("button", name="Sign in with Tessera").click()
    page.wait_for_url(f"{idp.issuer}/login**")
    sign_in(page, idp, email=email)
    page.wait_for_url(f"{app}/")
    assert authorize, "the sign-in never reached Tessera's authorization endpoint"
    return parse_qs(urlsplit(authorize[0]).query)


def text_of(page, testid: str) -> str:
    return page.get_by_test_id(testid).inner_text()


def videos_caller(page) -> dict:
    """The videos API's answer shown by the page (it names the token's subject and client)."""
    return json.loads(text_of(page, "videos"))["caller"]


def test_sign_in_with_pkce_state_nonce_and_a_server_component_session(examples_idp, nextjs, python_videos_api,
                                                                        page):
    app, secret = nextjs()
    query = sign_in_through_app(page, examples_idp, app)

    assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"{app}/api/auth/callback/tessera"]
    assert set(query["scope"][0].split()) >= {"openid", "offline_access"}
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"][0] and query["nonce"][0]

    assert text_of(page, "email") == examples_idp.user
    assert text_of(page, "name") == "Alice Example"
    userinfo = json.loads(text_of(page, "userinfo"))  # fetched on the server with the access token
    assert userinfo["email"] == examples_idp.user and userinfo["sub"] == text_of(page, "sub")
    assert text_of(page, "refreshes") == "0"  # a fresh 10-minute token is not refreshed
    assert videos_caller(page) == {"sub": userinfo["sub"], "client_id": CLIENT_ID, "act": None,
                                   "scope": "openid profile email offline_access videos.read"}

    # The session is NextAuth's encrypted, HttpOnly cookie, holding the tokens of this sign-in.
    cookie = next(c for c in page.context.cookies() if c["name"].startswith(SESSION_COOKIE))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    token = session_token(page, secret)
    assert token["sub"] == userinfo["sub"]
    assert introspect(examples_idp, token["accessToken"])["active"] is True
    assert introspect(examples_idp, token["refreshToken"])["active"] is True

    # What the browser may ask NextAuth for (/api/auth/session) holds no token at all.
    session = page.evaluate("fetch('/api/auth/session').then(r => r.json())")
    assert session["user"]["email"] == examples_idp.user
    assert not {"accessToken", "refreshToken", "idToken"} & set(session), session


def test_a_code_carried_to_another_browser_does_not_sign_in(examples_idp, nextjs, page):
    """RFC 9700 §4.5 (authorization code injection), RFC 7636 §1, OIDC Core §15.5.2: the
    callback needs the state, PKCE verifier and nonce cookies of the browser that started
    the sign-in; the same, unused code opens a session in that browser only."""
    app, _ = nextjs()
    held: list[str] = []
    login = re.compile(re.escape(f"{examples_idp.issuer}/login/"))

    def hold(route) -> None:
        """The sign-in form's answer: keep the redirect back to the app instead of following it."""
        answer = route.fetch(max_redirects=0)
        location = answer.headers.get("location", "")
        if "/api/auth/callback/tessera?" not in location:
            route.fulfill(response=answer)
            return
        held.append(location)
        route.fulfill(status=200, content_type="text/plain", body="held")

    page.route(login, hold)
    page.goto(f"{app}/")
    page.get_by_role("button", name="Sign in with Tessera").click()
    page.wait_for_url(f"{examples_idp.issuer}/login**")
    sign_in(page, examples_idp)
    page.get_by_text("held").wait_for()
    assert held, "Tessera never redirected back to the callback"

    other = page.context.browser.new_context()
    try:
        stranger = other.new_page()
        stranger.goto(held[0])
        assert "error=OAuthCallback" in stranger.url
        assert not any(c["name"].startswith(SESSION_COOKIE) for c in other.cookies())
    finally:
        other.close()

    page.goto(held[0])
    page.wait_for_url(f"{app}/")
    assert text_of(page, "email") == examples_idp.user


def test_refresh_happens_on_the_server_and_never_reaches_the_browser(examples_idp, nextjs, python_videos_api, page):
    app, secret = nextjs(REFRESH_MARGIN=ALWAYS_REFRESH)
    bodies: list[str] = []

    def keep(response) -> None:
        if response.url.startswith(app) and response.status < 300:
            try:
                bodies.append(response.text())
            except Exception:  # a body the browser did not keep (a redirect, a navigation away)
                pass

    page.on("response", keep)
    sign_in_through_app(page, examples_idp, app)
    assert text_of(page, "refreshes") == "1"  # the first page after the callback already refreshed
    refresh_tokens = [session_token(page, secret)["refreshToken"]]
    access_tokens = [session_token(page, secret)["accessToken"]]

    for expected in ("2", "3"):  # each rotation must have been kept, or the next one is a reuse
        page.reload()
        assert page.get_by_test_id("refreshes").inner_text() == expected, page.content()
        token = session_token(page, secret)
        assert token["refreshToken"] not in refresh_tokens, "the refresh token was not rotated"
        refresh_tokens.append(token["refreshToken"])
        access_tokens.append(token["accessToken"])
        assert json.loads(text_of(page, "userinfo"))["email"] == examples_idp.user
        assert videos_caller(page)["client_id"] == CLIENT_ID  # the new access token is accepted

    # Tessera rotated them: only the newest refresh token is alive (RFC 6749 §6, §10.4).
    assert introspect(examples_idp, refresh_tokens[-1])["active"] is True
    assert all(introspect(examples_idp, old)["active"] is False for old in refresh_tokens[:-1])

    # The browser never holds a token in anything it can read.
    page.evaluate("fetch('/api/auth/session').then(r => r.text())")
    readable = [c["value"] for c in page.context.cookies()] + [page.evaluate("document.cookie"), page.content()]
    assert len(bodies) > 5, "no responses of the app were seen"
    for secret_token in refresh_tokens + access_tokens:
        assert not any(secret_token in text for text in readable), "a token in a cookie or the page"
        assert not any(secret_token in body for body in bodies), "a token in a response of the app"
    assert "refresh" not in page.evaluate("document.cookie")


def test_refresh_keeps_working_across_a_key_rotation(examples_idp, nextjs, page):
    """`idp keys rotate` twice (a `next` key, then active): the ID tokens of later refreshes
    are signed by a key the app has not seen, and openid-client validates them (OIDC Core
    §10.1.1: refetch the JWKS on an unknown kid) without a restart of the app."""
    app, secret = nextjs(REFRESH_MARGIN=ALWAYS_REFRESH)
    sign_in_through_app(page, examples_idp, app)
    def kid_after_a_refresh() -> str:
        page.reload()
        assert page.get_by_test_id("session-error").count() == 0, text_of(page, "session-error")
        return jwt_header(session_token(page, secret)["idToken"])["kid"]

    examples_idp.rotate_keys(kid_after_a_refresh)
    refreshes = int(text_of(page, "refreshes"))
    page.reload()
    assert int(text_of(page, "refreshes")) == refreshes + 1
    assert json.loads(text_of(page, "userinfo"))["email"] == examples_idp.user


def test_a_refresh_tessera_refuses_ends_the_session(examples_idp, nextjs, page):
    """Revoked at the IdP (`idp users revoke-sessions`): the next refresh fails with
    invalid_grant and the page says the session ended, instead of showing stale data."""
    app, _ = nextjs(REFRESH_MARGIN=ALWAYS_REFRESH)
    email = f"nextjs-{secrets.token_hex(4)}@example.com"
    examples_idp.add_user(email, "Revoked Example")
    sign_in_through_app(page, examples_idp, app, email=email)
    assert text_of(page, "email") == email

    examples_idp.cli("users", "revoke-sessions", "--realm", "examples", "--user", email)
    page.reload()
    assert "RefreshAccessTokenError" in text_of(page, "session-error")
    assert page.get_by_test_id("userinfo").count() == 0 and page.get_by_test_id("videos").count() == 0


def test_rp_initiated_logout_ends_both_sessions_and_revokes_the_refresh_token(examples_idp, nextjs, page):
    app, secret = nextjs()
    sign_in_through_app(page, examples_idp, app)
    refresh_token = session_token(page, secret)["refreshToken"]
    idp_cookies = {c["name"] for c in page.context.cookies() if c["name"].startswith("tessera_session")}
    assert idp_cookies, "no Tessera session cookie after sign-in"

    # A sign-out posted from another site's page is refused (and carries no SameSite=Lax cookie).
    refused = httpx.post(f"{app}/api/logout", headers={"Origin": "https://attacker.example"})
    assert refused.status_code == 403

    end_session: list[str] = []
    page.on("request", lambda r: end_session.append(r.url) if r.url.startswith(f"{examples_idp.issuer}/logout")
            else None)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{app}/")
    page.get_by_test_id("signed-out").wait_for()

    assert end_session, "sign-out did not go through Tessera's end_session_endpoint"
    query = parse_qs(urlsplit(end_session[0]).query)
    assert query["post_logout_redirect_uri"] == [f"{app}/"]
    hint = json.loads(base64.urlsafe_b64decode(query["id_token_hint"][0].split(".")[1] + "=="))
    assert hint["iss"] == examples_idp.issuer and hint["aud"] in (CLIENT_ID, [CLIENT_ID])

    names = {c["name"] for c in page.context.cookies()}
    assert not any(name.startswith(SESSION_COOKIE) for name in names), names
    assert not idp_cookies & names, "the Tessera session cookie survived the logout"
    assert introspect(examples_idp, refresh_token)["active"] is False

    # Signing in again asks for the password: Tessera's session is gone, not just the app's.
    page.get_by_role("button", name="Sign in with Tessera").click()
    page.wait_for_url(f"{examples_idp.issuer}/login**")
    assert page.locator("input[name=password]").count() == 1


def test_the_demo_secrets_are_refused_off_loopback(examples_idp, start_example, nextjs_build: Path):
    """The `change-me` defaults serve a loopback NEXTAUTH_URL only (the realm's own rule for
    its demo secrets): on a public URL without NEXTAUTH_SECRET the app answers no page."""
    port = examples_idp.port(3000)
    env = {"PORT": str(port), "ISSUER": examples_idp.issuer, "NEXT_TELEMETRY_DISABLED": "1",
           "NEXTAUTH_URL": "https://videos.example.com", "NEXTAUTH_SECRET": "", "NEXTJS_CLIENT_SECRET": ""}
    app = start_example("nextjs", ["npm", "run", "serve"], cwd=nextjs_build, port=port, env=env)
    response = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
    assert response.status_code == 500
    assert "NEXTAUTH_SECRET must be set" in app.output()
