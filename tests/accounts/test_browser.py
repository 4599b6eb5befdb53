"""End to end in a real headless browser (issue 5, "Tests"): Debian's Chromium driven by
Playwright for Python against a real server on a loopback port, mail caught by a real
SMTP server (aiosmtpd), and a tiny relying party (an aiohttp app on another port).

register → open the verification link from the mail → sign in through the client's
`/authorize` → consent → back at the client's redirect URI with a code that the client
exchanges for tokens. A screenshot of every page is written to `test-artifacts/browser/`.

Without Chromium or Playwright the test is skipped locally and fails in CI
(TESSERA_REQUIRE_PRODUCTION_STORES=1, as for the production stores).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import textwrap
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.accounts.conftest import CHEAP_ARGON2, SmtpSink, link_in
from tests.oauth.conftest import jwt_parts

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CLIENT_SECRET = "shop-secret-" + "s" * 32
PASSPHRASE = "velvet lantern orchard 42"


def browser_or_skip():
    """Playwright's async API, or skip (locally) / fail (CI) with the reason."""
    reason = None
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        reason = f"Playwright for Python is not installed ({exc}); pip install -e '.[test]'"
    else:
        if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
            reason = f"Chromium not found at {CHROMIUM}; apt-get install chromium (or set TESSERA_CHROMIUM)"
    if reason is not None:
        if os.environ.get("TESSERA_REQUIRE_PRODUCTION_STORES") == "1":
            pytest.fail(f"{reason}; CI requires the browser test", pytrace=False)
        pytest.skip(reason)
    return async_playwright


class RelyingParty:
    """A minimal confidential OAuth client: a sign-in link with state, nonce and PKCE;
    a callback that checks state and `iss` and exchanges the code at the token endpoint."""

    def __init__(self, issuer: str, port: int):
        self.issuer = issuer
        self.base = f"http://127.0.0.1:{port}"
        self.pending: dict[str, dict[str, str]] = {}
        self.tokens: dict | None = None
        self.app = web.Application()
        self.app.router.add_get("/", self.home)
        self.app.router.add_get("/callback", self.callback)

    async def home(self, request: web.Request) -> web.Response:
        state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        self.pending[state] = {"nonce": nonce, "verifier": verifier}
        query = urlencode({"response_type": "code", "client_id": "shop", "redirect_uri": f"{self.base}/callback",
                           "scope": "openid profile email offline_access", "state": state, "nonce": nonce,
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        return web.Response(content_type="text/html", text=(
            "<!doctype html><html lang=en><head><title>Shop</title></head><body><main><h1>Example Shop</h1>"
            f'<p><a id="signin" href="{self.issuer}/authorize?{query}">Sign in with ACME</a></p></main></body></html>'))

    async def callback(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "")
        pending = self.pending.pop(state, None)
        assert pending is not None, "unknown state"
        assert request.query["iss"] == self.issuer  # RFC 9207
        async with aiohttp.ClientSession() as session:
            resp = await session.post(f"{self.issuer}/token", data={
                "grant_type": "authorization_code", "code": request.query["code"],
                "redirect_uri": f"{self.base}/callback", "code_verifier": pending["verifier"],
            }, headers={"Authorization": aiohttp.encode_basic_auth("shop", CLIENT_SECRET)})
            self.tokens = await resp.json()
        claims = jwt_parts(self.tokens["id_token"])[1]
        assert claims["nonce"] == pending["nonce"]
        return web.Response(content_type="text/html", text=(
            "<!doctype html><html lang=en><head><title>Shop: signed in</title></head><body><main>"
            f"<h1>Welcome, {claims.get('name')}</h1><p id=email>{claims['email']}</p>"
            f"<pre>{json.dumps({k: claims[k] for k in ('iss', 'sub', 'email_verified')}, indent=2)}</pre>"
            f"<p>Tokens received: {', '.join(sorted(self.tokens))}</p></main></body></html>"))


async def test_register_verify_sign_in_consent_in_a_real_browser(tmp_path, aiohttp_server, unused_tcp_port_factory):
    async_playwright = browser_or_skip()
    idp_port, client_port, smtp_port = (unused_tcp_port_factory() for _ in range(3))
    issuer = f"http://127.0.0.1:{idp_port}"
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent(f"""\
        name: acme
        display_name: ACME
        mail: {{sender: "ACME <accounts@acme.test>"}}
        providers:
          - {{id: password, type: password, registration: true, argon2: {CHEAP_ARGON2}}}
        clients:
          - client_id: shop
            name: Example Shop
            type: confidential
            secret: ${{SHOP_SECRET}}
            redirect_uris: ["http://127.0.0.1:{client_port}/callback"]
            scopes: [openid, profile, email, offline_access]
            consent: required
        """))
    (tmp_path / "idp.yaml").write_text(
        f"base_url: {issuer}\nrealms: realms/\nroot_realm: acme\n"
        f"storage: {{durable: 'sqlite:///{tmp_path}/idp.sqlite3', ephemeral: 'memory://'}}\n"
        f"mail: {{type: smtp, smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false}}}}\n")
    config = load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(),
                         environ={"SHOP_SECRET": CLIENT_SECRET})
    app = create_app(config, environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"e" * 32).decode()})
    sink = SmtpSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        await aiohttp_server(app, host="127.0.0.1", port=idp_port)
        relying_party = RelyingParty(issuer, client_port)
        await aiohttp_server(relying_party.app, host="127.0.0.1", port=client_port)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob("*.png"):
            old.unlink()

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context()).new_page()
                shots = iter(range(1, 100))

                async def shot(name: str) -> None:
                    await page.screenshot(path=str(ARTIFACTS / f"{next(shots):02d}-{name}.png"), full_page=True)

                await page.goto(relying_party.base + "/")
                await shot("client-home")
                await page.click("#signin")
                await page.wait_for_url("**/login?flow=*")
                assert await page.title() == "Sign in to Example Shop · ACME"
                await shot("login")

                await page.click("text=Create an account")
                await page.wait_for_url("**/register?flow=*")
                await page.get_by_label("Email").fill("grace@example.com")
                await page.get_by_label("Name").fill("Grace Hopper")
                await page.get_by_label("Password").fill(PASSPHRASE)
                await shot("register")
                await page.click("button:has-text('Create account')")
                await page.wait_for_selector("h1:has-text('Check your email')")
                await shot("check-email")

                await app[SERVICES].mail.drain()
                mail = next(m for m in sink.messages if m["To"] == "grace@example.com")
                await page.goto(issuer + link_in(mail, "/verify-email"))
                await shot("verify-email")
                await page.click("button:has-text('Verify my email address')")
                await page.wait_for_url("**/login?flow=*")
                assert await page.get_by_label("Email").input_value() == "grace@example.com"
                assert "Your email address is verified" in await page.content()
                await shot("login-after-verification")

                await page.get_by_label("Password").fill(PASSPHRASE)
                await page.click("button:has-text('Sign in')")
                await page.wait_for_url("**/consent?flow=*")
                await shot("consent")
                await page.click("button:has-text('Allow')")
                await page.wait_for_url(f"{relying_party.base}/callback?*")
                await page.wait_for_selector("#email")
                await shot("client-signed-in")
                assert await page.inner_text("h1") == "Welcome, Grace Hopper"
            finally:
                await browser.close()
    finally:
        smtp.stop()

    tokens = relying_party.tokens
    assert tokens is not None and {"access_token", "id_token", "refresh_token"} <= set(tokens)
    claims = jwt_parts(tokens["id_token"])[1]
    assert claims["email"] == "grace@example.com" and claims["email_verified"] is True
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == [
        "01-client-home.png", "02-login.png", "03-register.png", "04-check-email.png", "05-verify-email.png",
        "06-login-after-verification.png", "07-consent.png", "08-client-signed-in.png"]
