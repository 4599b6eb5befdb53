"""An IdP with strong sign-in on (issue 20), and the HTTP steps of a sign-in with a second
factor, as a user agent takes them."""

from __future__ import annotations

import re
from html import unescape

import pyotp

from tests.oauth.conftest import SPA_REDIRECT, build_idp
from tests.oauth.flow import authorize, form_fields, submit_login

MFA_ACME = f"""\
name: acme
display_name: ACME
mfa: {{totp: {{totp}}, passkeys: off, remember_device: {{remember}}, recovery_codes: 4}}
providers:
  - id: password
    type: password
    argon2: {{{{memory_cost: 1024, time_cost: 1, parallelism: 1}}}}
clients:
  - client_id: spa
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    scopes: [openid, profile, email, offline_access]
    consent: implicit
  - client_id: strict
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    scopes: [openid, profile, email]
    consent: implicit
    require_mfa: true
"""
PASSWORD = "correct horse battery"


async def mfa_idp(tmp_path, backend, aiohttp_client, port: int, *, totp: str = "optional", remember: str = "0",
                  extra: str = ""):
    """The IdP; `extra`: more realm settings (YAML lines)."""
    acme = MFA_ACME.replace("{totp}", totp).replace("{remember}", remember).replace("{{", "{").replace("}}", "}")
    if totp == "off":  # a client requiring MFA where none is offered is a configuration problem
        acme = acme[:acme.index("  - client_id: strict")]
    return await build_idp(tmp_path, backend, aiohttp_client, port, acme=acme + extra)


def action_of(html: str, form_id: str | None = None) -> str:
    if form_id is not None:
        html = html[html.index(f'id="{form_id}"') - 200:]
    return unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))


def fields_of(html: str, form_id: str) -> dict[str, str]:
    start = html.index(f'id="{form_id}"')
    return form_fields(html[start:html.index("</form>", start)])


async def password_step(idp, *, client_id: str = "spa", **extra):
    """/authorize, then the password: the answer to the password form (and the verifier)."""
    if client_id == "strict":
        extra.setdefault("scope", "openid profile email")
    resp, verifier = await authorize(idp, client_id=client_id, **extra)
    assert resp.status == 303, await resp.text()
    assert "/login?" in resp.headers["Location"]
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)
    return resp, verifier


async def enrol_totp(idp, location: str) -> tuple[str, list[str], object]:
    """On the enrolment page at `location`: read the secret shown, confirm it with a code;
    (secret, recovery codes shown, the answer to 'continue')."""
    page = await idp.client.get(location, allow_redirects=False)
    assert page.status == 200, await page.text()
    html = await page.text()
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', html).group(1)
    assert "<svg" in html  # the QR code, inline
    code = pyotp.TOTP(secret).at(idp.clock.timestamp())
    resp = await idp.client.post(action_of(html, "totp-enrol-form"),
                                 data={**fields_of(html, "totp-enrol-form"), "code": code}, allow_redirects=False)
    assert resp.status == 200, await resp.text()
    shown = await resp.text()
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", shown)
    go_on = await idp.client.post(action_of(shown), data=form_fields(shown), allow_redirects=False)
    return secret, codes, go_on


async def second_factor(idp, location: str, code: str, *, method: str = "totp"):
    page = await idp.client.get(location, allow_redirects=False)
    assert page.status == 200, await page.text()
    html = await page.text()
    form_id = "totp-form" if method == "totp" else "recovery-form"
    return await idp.client.post(action_of(html, form_id), data={**fields_of(html, form_id), "code": code},
                                 allow_redirects=False)
