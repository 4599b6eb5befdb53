"""Passkeys over HTTP with a software authenticator (tests.accounts.soft_authenticator):
the IdP (base URL on `localhost`), and a user agent's steps (sign in, enrol, sign in with
a passkey), for test_passkeys.py and test_passkeys_mfa.py."""

from __future__ import annotations

import base64
import re

from engine.clock import FrozenClock
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.accounts.soft_authenticator import SoftAuthenticator
from tests.oauth.conftest import ACME, OTHER, Idp, write_config
from tests.oauth.flow import authorize, form_fields, login_for_code

PASSKEYS_ON = ACME + "mfa: {passkeys: optional}\n"
PAGE = "/account/security/passkeys"


async def passkey_idp(tmp_path, backend, aiohttp_client, port: int, acme: str = PASSKEYS_ON) -> Idp:
    """The IdP with its base URL on `localhost` (a WebAuthn relying party id may not be an
    IP address: `idp check` refuses it), reached over 127.0.0.1."""
    config = write_config(tmp_path, backend, {"acme": acme, "other": OTHER}, f"http://localhost:{port}")
    clock = FrozenClock()
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    client = await aiohttp_client(app, server_kwargs={"port": port})
    return Idp(client=client, services=app[SERVICES], clock=clock)


def authenticator(idp) -> SoftAuthenticator:
    return SoftAuthenticator(idp.services.runtime.config.server.base_url, "localhost")


async def signed_in(idp):
    user = await idp.add_user()
    code, _, _ = await login_for_code(idp)
    assert code
    return user


async def page_csrf(idp) -> str:
    page = await idp.client.get(PAGE)
    assert page.status == 200, await page.text()
    return form_fields(await page.text())["csrf"]


async def enrol(idp, auth: SoftAuthenticator, name: str = "Laptop", **create_kw):
    csrf = await page_csrf(idp)
    options = await idp.client.post(f"{PAGE}/options", data={"csrf": csrf})
    assert options.status == 200, await options.text()
    document = await options.json()
    return await idp.client.post(PAGE, data={"csrf": csrf, "ceremony": document["ceremony"], "name": name,
                                             "credential": auth.create(document["publicKey"], **create_kw)},
                                 allow_redirects=False)


async def login_form(idp) -> dict[str, str]:
    """A new authorization in this browser: the hidden fields of the passkey form."""
    resp, _ = await authorize(idp)
    assert resp.status == 303
    html = await (await idp.client.get(resp.headers["Location"])).text()
    form = re.search(r'<form method="post" action="[^"]*/passkeys/sign-in".*?</form>', html, re.S)
    assert form, html
    return form_fields(form.group(0))


async def sign_in_options(idp, fields: dict[str, str]) -> dict:
    resp = await idp.client.post("/passkeys/sign-in/options", data={"flow": fields["flow"], "csrf": fields["csrf"]})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def finish_sign_in(idp, fields, options, credential: str):
    return await idp.client.post("/passkeys/sign-in", data={**fields, "ceremony": options["ceremony"],
                                                            "credential": credential}, allow_redirects=False)


async def passkey_sign_in(idp, auth: SoftAuthenticator, **get_kw):
    idp.client.session.cookie_jar.clear()
    fields = await login_form(idp)
    options = await sign_in_options(idp, fields)
    return await finish_sign_in(idp, fields, options, auth.get(options["publicKey"], **get_kw))


async def enrolled(idp) -> tuple[object, SoftAuthenticator]:
    user = await signed_in(idp)
    auth = authenticator(idp)
    resp = await enrol(idp, auth)
    assert resp.status == 200 and "recovery-codes" in await resp.text(), await resp.text()
    return user, auth
