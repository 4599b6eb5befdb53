"""`{issuer}/account/security` (issue 20): behind the SSO session, re-authentication when
the session's authentication is older than five minutes, TOTP enrolment (RFC 6238 codes
from the secret the page shows) and removal, recovery codes regenerated, the last factor
of a `required` realm kept; CSRF on every form. Both store pairs."""

from __future__ import annotations

import re

import pyotp
import pytest

from engine.accounts import security
from tests.accounts.mfa_helpers import PASSWORD, action_of, fields_of, mfa_idp, second_factor
from tests.oauth.flow import form_fields


async def account_sign_in(idp, *, code_secret: str | None = None):
    """Open the account page without a (recent) session: the login page, the password, the
    second factor when the user has one; back at the account page."""
    resp = await idp.client.get("/account/security", allow_redirects=False)
    assert resp.status == 303 and "/login?flow=" in resp.headers["Location"], resp.headers.get("Location")
    page = await idp.client.get(resp.headers["Location"])
    html = await page.text()
    assert "your account settings" in html
    resp = await idp.client.post(action_of(html), data={**form_fields(html), "email": "alice@example.com",
                                                        "password": PASSWORD}, allow_redirects=False)
    if code_secret is not None:
        assert resp.headers["Location"].endswith("/mfa")
        resp = await second_factor(idp, resp.headers["Location"], pyotp.TOTP(code_secret).at(idp.clock.timestamp()))
    assert resp.status == 303 and resp.headers["Location"].endswith("/account/security"), resp.headers
    page = await idp.client.get("/account/security", allow_redirects=False)
    assert page.status == 200
    return await page.text()


async def enrol_from_account(idp) -> tuple[str, list[str]]:
    page = await idp.client.get("/account/security/totp")
    html = await page.text()
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', html).group(1)
    resp = await idp.client.post(action_of(html, "totp-enrol-form"), allow_redirects=False, data={
        **fields_of(html, "totp-enrol-form"), "code": pyotp.TOTP(secret).at(idp.clock.timestamp())})
    assert resp.status == 200, await resp.text()
    return secret, re.findall(r"<li><code>([a-z0-9-]+)</code></li>", await resp.text())


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    return await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory())


async def test_enrol_regenerate_and_remove_totp(idp):
    user = await idp.add_user()
    html = await account_sign_in(idp)
    assert "Set up an authenticator app" in html
    secret, codes = await enrol_from_account(idp)
    assert len(codes) == 4
    html = await (await idp.client.get("/account/security")).text()
    assert "An authenticator app is set up" in html and "4 recovery codes left" in html
    # regenerate: a new set, the old codes gone
    resp = await idp.client.post("/account/security/recovery-codes", data=fields_of(html, "recovery"),
                                 allow_redirects=False)
    new_codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", await resp.text())
    assert len(new_codes) == 4 and not set(new_codes) & set(codes)
    # remove (an optional realm: allowed)
    html = await (await idp.client.get("/account/security")).text()
    resp = await idp.client.post("/account/security/totp/remove", data=fields_of(html, "totp"), allow_redirects=False)
    assert resp.status == 303
    assert await idp.services.durable.get_totp("acme", user.id) is None
    assert await idp.services.durable.count_recovery_codes("acme", user.id) == 0  # no factor left: gone too
    types = [e.type for e in await idp.services.durable.list_events("acme")]
    assert {"totp_enrolled", "totp_removed", "recovery_codes_generated"} <= set(types)


async def test_forms_need_the_csrf_token(idp):
    await idp.add_user()
    await account_sign_in(idp)
    resp = await idp.client.post("/account/security/totp/remove", data={"csrf": "forged"}, allow_redirects=False)
    assert resp.status == 400


async def test_an_old_authentication_signs_in_again(idp):
    await idp.add_user()
    await account_sign_in(idp)
    secret, _ = await enrol_from_account(idp)
    idp.clock.advance(security.REAUTHENTICATE_AFTER + 1)
    # the session is still there (SSO), but its authentication is too old for this page:
    # the password and the second factor again
    html = await account_sign_in(idp, code_secret=secret)
    assert "An authenticator app is set up" in html


async def test_the_last_factor_of_a_required_realm_cannot_be_removed(tmp_path, backend, aiohttp_client,
                                                                     unused_tcp_port_factory):
    idp = await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), totp="required")
    user = await idp.add_user()
    resp = await idp.client.get("/account/security", allow_redirects=False)
    page = await idp.client.get(resp.headers["Location"])
    html = await page.text()
    resp = await idp.client.post(action_of(html), data={**form_fields(html), "email": "alice@example.com",
                                                        "password": PASSWORD}, allow_redirects=False)
    assert resp.headers["Location"].endswith("/mfa/enrol")  # required: enrolment first, even here
    from tests.accounts.mfa_helpers import enrol_totp
    _, _, done = await enrol_totp(idp, resp.headers["Location"])
    assert done.headers["Location"].endswith("/account/security")
    html = await (await idp.client.get("/account/security")).text()
    resp = await idp.client.post("/account/security/totp/remove", data=fields_of(html, "totp"), allow_redirects=False)
    assert resp.status == 409 and "last second factor" in await resp.text()
    assert await idp.services.durable.get_totp("acme", user.id) is not None
