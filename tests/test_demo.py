"""`idp demo` (issue 18 item 1): the quick start ends in a signed-in user. A real headless
Chromium opens the demo relying party, signs in through Tessera with the shipped kind of
public client (PKCE S256, `state`, `nonce`), sees the verified ID token claims and
userinfo, and signs out through RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2)."""

from __future__ import annotations

import asyncio
import base64
import textwrap

from engine import demo
from engine.accounts.users import create_user
from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.accounts.conftest import CHEAP_ARGON2
from tests.accounts.test_browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip

PASSWORD = "velvet lantern orchard 42"


async def test_the_demo_signs_someone_in_and_out_in_a_real_browser(tmp_path, aiohttp_server,
                                                                   unused_tcp_port_factory):
    async_playwright = browser_or_skip()
    idp_port, demo_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    issuer = f"http://localhost:{idp_port}"
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "default.yaml").write_text(textwrap.dedent(f"""\
        name: default
        display_name: Tessera
        providers:
          - {{id: password, type: password, registration: true, require_verified_email: true,
              argon2: {CHEAP_ARGON2}}}
        clients:
          - client_id: frontend
            name: Example frontend
            type: public
            redirect_uris: ["http://localhost:{demo_port}/callback"]
            post_logout_redirect_uris: ["http://localhost:{demo_port}/"]
            scopes: [openid, profile, email, offline_access]
            consent: implicit
        """))
    (tmp_path / "idp.yaml").write_text(
        f"base_url: {issuer}\nrealms: realms/\nroot_realm: default\n"
        f"storage: {{durable: 'sqlite:///{tmp_path}/idp.sqlite3', ephemeral: 'memory://'}}\n")
    config = load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models())
    app = create_app(config, environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"d" * 32).decode()})
    await aiohttp_server(app, host="127.0.0.1", port=idp_port)
    services = app[SERVICES]
    await create_user(services, services.runtime.realms["default"], email="ada@example.com", password=PASSWORD,
                      email_verified=True, profile={"name": "Ada Lovelace"})

    client = demo.DemoClient(issuer, "frontend", f"http://localhost:{demo_port}")
    serving = asyncio.create_task(demo.serve(client, "127.0.0.1", demo_port))
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context()).new_page()
                for _ in range(100):  # the demo is listening once its page answers
                    try:
                        await page.goto(f"http://localhost:{demo_port}/")
                        break
                    except Exception:
                        await asyncio.sleep(0.05)
                await page.click("text=Sign in with Tessera")
                await page.wait_for_url("**/login?flow=*")
                await page.get_by_label("Email").fill("ada@example.com")
                await page.get_by_label("Password").fill(PASSWORD)
                await page.click("button:has-text('Sign in')")
                await page.wait_for_selector("#claims")
                assert await page.inner_text("h1") == "You are signed in"
                assert "Ada Lovelace" in await page.inner_text("body")
                claims = await page.inner_text("#claims")
                assert f'"iss": "{issuer}"' in claims and '"aud": "frontend"' in claims
                assert '"email": "ada@example.com"' in await page.inner_text("#userinfo")

                await page.click("text=Sign out")  # id_token_hint: no confirmation page
                await page.wait_for_url(f"http://localhost:{demo_port}/*")
                assert "Sign in with Tessera" in await page.inner_text("body")
                # Signed out at the IdP too: signing in again asks for the password.
                await page.click("text=Sign in with Tessera")
                await page.wait_for_url("**/login?flow=*")
            finally:
                await browser.close()
    finally:
        serving.cancel()
