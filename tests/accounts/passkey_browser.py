"""A real Chromium with a CDP virtual authenticator (WebAuthn Level 3 §11.1: the
automation's virtual authenticators, as Chrome DevTools exposes them) against a real
Tessera on `http://localhost:<port>`, on both store pairs (the `backend` fixture).

WebAuthn refuses an IP address as RP ID, so the IdP's base URL is `localhost` (a secure
context over plain HTTP); the relying party stays on 127.0.0.1."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from engine.accounts.users import create_user
from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.accounts.conftest import CHEAP_ARGON2
from tests.accounts.test_browser import CHROMIUM, CHROMIUM_ARGS, CLIENT_SECRET, RelyingParty, browser_or_skip

PASSWORD = "velvet lantern orchard 42"
# WebAuthn.addVirtualAuthenticator: a platform authenticator with discoverable credentials
# and user verification that succeeds (a passkey on a laptop with a screen lock).
AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                 "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}


def realm_yaml(client_port: int, mfa: str = "mfa: {passkeys: optional}\n") -> str:
    return textwrap.dedent(f"""\
        name: acme
        display_name: ACME
        providers:
          - {{id: password, type: password, argon2: {CHEAP_ARGON2}}}
        clients:
          - client_id: shop
            name: Example Shop
            type: confidential
            secret: ${{SHOP_SECRET}}
            redirect_uris: ["http://127.0.0.1:{client_port}/callback"]
            scopes: [openid, profile, email, offline_access]
            consent: implicit
        """) + mfa


@dataclass
class PasskeyWorld:
    issuer: str
    app: Any
    relying_party: RelyingParty
    page: Any
    cdp: Any
    authenticator_id: str

    @property
    def services(self) -> Any:
        return self.app[SERVICES]

    async def add_user(self, email: str = "ada@example.com", password: str | None = PASSWORD) -> Any:
        realm = self.services.runtime.realms["acme"]
        return await create_user(self.services, realm, email=email, password=password, email_verified=True,
                                 profile={"name": "Ada Lovelace"})

    async def sign_in_with_password(self, email: str = "ada@example.com", password: str = PASSWORD) -> None:
        page = self.page
        await page.goto(self.relying_party.base + "/")
        await page.click("#signin")
        await page.wait_for_url("**/login?flow=*")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(password)
        await page.click("button:has-text('Sign in')")

    async def back_at_application(self) -> None:
        """The browser is at the application's callback (the login page has an `#email` too)."""
        await self.page.wait_for_url(f"{self.relying_party.base}/callback?*")
        await self.page.wait_for_selector("p#email")

    async def enrol_passkey(self, name: str) -> None:
        """On the account security page, in its passkeys section."""
        page = self.page
        await page.goto(self.issuer + "/account/security")
        await page.get_by_label("Name of the new passkey").fill(name)
        await page.click("button:has-text('Add a passkey')")
        await page.wait_for_selector("text=Your passkey was added.")
        if await page.locator("#recovery-codes").count():  # the first factor: its recovery codes, once
            await page.click("a:has-text('Done')")
            await page.wait_for_url("**/account/security")

    async def authenticator_credentials(self) -> list[dict[str, Any]]:
        answer = await self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        return answer["credentials"]


def cdp_id_to_base64url(value: str) -> str:
    """CDP gives credential ids in standard base64; the store keeps base64url."""
    return base64.urlsafe_b64encode(base64.b64decode(value)).rstrip(b"=").decode()


@asynccontextmanager
async def passkey_world(tmp_path, backend, aiohttp_server, ports, *, mfa: str = "mfa: {passkeys: optional}\n",
                        relying_party: Any = None, client_secret: str = CLIENT_SECRET) -> AsyncIterator[PasskeyWorld]:
    """`relying_party(issuer, client_port)`: the application (an aiohttp app at `.app`);
    by default the small one of tests.accounts.test_browser."""
    async_playwright = browser_or_skip()
    idp_port, client_port = ports(), ports()
    issuer = f"http://localhost:{idp_port}"
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(realm_yaml(client_port, mfa))
    (tmp_path / "idp.yaml").write_text(
        f"base_url: {issuer}\nrealms: realms/\nroot_realm: acme\n"
        f"storage: {{durable: '{backend.durable_url}', ephemeral: '{backend.ephemeral_url}'}}\n")
    config = load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(),
                         environ={"SHOP_SECRET": client_secret})
    app = create_app(config, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"p" * 32).decode()})
    await aiohttp_server(app, host="127.0.0.1", port=idp_port)
    relying_party = (relying_party or RelyingParty)(issuer, client_port)
    await aiohttp_server(relying_party.app, host="127.0.0.1", port=client_port)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            cdp = await context.new_cdp_session(page)
            await cdp.send("WebAuthn.enable")
            added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
            yield PasskeyWorld(issuer, app, relying_party, page, cdp, added["authenticatorId"])
        finally:
            await browser.close()


async def sign_in_with_passkey(world: PasskeyWorld) -> None:
    """A new visit (no session) from the application, then "Sign in with a passkey": no
    email typed, the authenticator picks the discoverable credential."""
    page = world.page
    await page.context.clear_cookies()
    await page.goto(world.relying_party.base + "/")
    await page.click("#signin")
    await page.wait_for_url("**/login?flow=*")
    await page.click("button:has-text('Sign in with a passkey')")


def id_token_claims(world: PasskeyWorld) -> dict[str, Any]:
    from tests.oauth.conftest import jwt_parts

    assert world.relying_party.tokens is not None
    return jwt_parts(world.relying_party.tokens["id_token"])[1]
