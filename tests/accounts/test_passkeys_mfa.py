"""Passkeys with engine.accounts.mfa over HTTP (software authenticator, both store
pairs): the second factor after a password (§5.5 allowCredentials: the user's keys), the
enrolment a `required` realm asks during a sign-in (with its recovery codes), and an
operator's reset."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from engine.store import WebAuthnCredential
from tests.accounts.passkey_http import (
    authenticator,
    enrolled,
    passkey_idp,
    passkey_sign_in,
)
from tests.accounts.soft_authenticator import b64u
from tests.oauth.conftest import ACME, SPA_REDIRECT, jwt_parts, query_of
from tests.oauth.flow import authorize, exchange, form_fields


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    return await passkey_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory())


# the second factor (engine.accounts.mfa's page)


async def second_factor_form(idp) -> dict[str, str]:
    """A password sign-in of a user with a passkey: the second-factor page's passkey form."""
    idp.client.session.cookie_jar.clear()
    resp, _ = await authorize(idp)
    login = await idp.client.get(resp.headers["Location"])
    html = await login.text()
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    fields = form_fields(re.search(r'<form method="post" action="[^"]*/login/password".*?</form>', html, re.S)[0])
    resp = await idp.client.post(action, data={**fields, "email": "alice@example.com",
                                               "password": "correct horse battery"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("/mfa"), resp.headers.get("Location")
    page = await (await idp.client.get(resp.headers["Location"])).text()
    form = re.search(r'<form method="post" action="[^"]*/passkeys/second-factor".*?</form>', page, re.S)
    assert form, page
    return form_fields(form.group(0))


async def test_second_factor_lists_the_users_keys_and_counts_failures(idp):
    """§5.5 allowCredentials: the user's own keys. A failed assertion is an `mfa_failed`
    event (method passkey) and the page again with an error; then the right one passes
    with amr pwd + hwk + user + mfa."""
    user, auth = await enrolled(idp)
    fields = await second_factor_form(idp)
    assert (await idp.client.post("/passkeys/second-factor/options", data={"csrf": "forged"})).status == 400
    options = await (await idp.client.post("/passkeys/second-factor/options", data={"csrf": fields["csrf"]})).json()
    assert [c["id"] for c in options["publicKey"]["allowCredentials"]] == [b64u(auth.credential_id)]
    bad = await idp.client.post("/passkeys/second-factor", data={
        **fields, "ceremony": options["ceremony"], "credential": auth.get(options["publicKey"], verified=False)},
        allow_redirects=False)
    assert bad.status == 303 and bad.headers["Location"] == "/mfa?error=passkey"
    assert "The passkey could not be used" in await (await idp.client.get(bad.headers["Location"])).text()
    options = await (await idp.client.post("/passkeys/second-factor/options", data={"csrf": fields["csrf"]})).json()
    good = await idp.client.post("/passkeys/second-factor", data={
        **fields, "ceremony": options["ceremony"], "credential": auth.get(options["publicKey"])},
        allow_redirects=False)
    assert good.status == 303 and good.headers["Location"].startswith(SPA_REDIRECT), await good.text()
    outcomes = [(e.type, e.data.get("method")) for e in await idp.services.durable.list_events("acme")
                if e.type in ("mfa_failed", "mfa_verified")]
    assert outcomes == [("mfa_failed", "passkey"), ("mfa_verified", "passkey")]
    [stored] = await idp.services.durable.list_passkeys("acme", user.id)
    assert stored.sign_count == 2  # the refused assertion recorded nothing


async def test_another_users_key_is_no_second_factor(idp):
    """The assertion must come from a key of the user who gave the password (step 6)."""
    _, auth = await enrolled(idp)
    mallory = await idp.add_user("mallory@example.com")
    other = authenticator(idp)
    await idp.services.durable.add_passkey(WebAuthnCredential(
        realm="acme", credential_id=b64u(other.credential_id), user_id=mallory.id, public_key=other._cose_key(),
        sign_count=0, transports=(), aaguid="", name="Mallory's", created_at=datetime.now(UTC)))
    other.user_handle = mallory.id.encode()
    fields = await second_factor_form(idp)
    options = await (await idp.client.post("/passkeys/second-factor/options", data={"csrf": fields["csrf"]})).json()
    resp = await idp.client.post("/passkeys/second-factor", data={
        **fields, "ceremony": options["ceremony"], "credential": other.get(options["publicKey"])},
        allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/mfa?error=passkey"
    assert not [e for e in await idp.services.durable.list_events("acme") if e.type == "mfa_verified"]


async def test_enrolment_in_the_sign_in_then_the_second_factor_path_is_closed(tmp_path, backend, aiohttp_client,
                                                                             unused_tcp_port_factory):
    """`required`: after the password, the user without a passkey enrols one on the
    enrolment page (stage "enrol"); asserting a key is not accepted there, registering
    one is; the recovery codes are shown once, then the sign-in completes with amr
    pwd + hwk + user + mfa."""
    idp = await passkey_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                            acme=ACME + "mfa: {passkeys: required}\n")
    user = await idp.add_user()
    resp, verifier = await authorize(idp)
    html = await (await idp.client.get(resp.headers["Location"])).text()
    fields = form_fields(re.search(r'<form method="post" action="[^"]*/login/password".*?</form>', html, re.S)[0])
    resp = await idp.client.post("/login/password", data={**fields, "email": "alice@example.com",
                                                          "password": "correct horse battery"}, allow_redirects=False)
    assert resp.headers["Location"].endswith("/mfa/enrol")
    page = await (await idp.client.get("/mfa/enrol")).text()
    enrol_form = form_fields(re.search(r'<form method="post" action="[^"]*/passkeys/enrol".*?</form>', page,
                                       re.S)[0])
    assert (await idp.client.post("/passkeys/second-factor/options", data={"csrf": enrol_form["csrf"]})).status == 400
    options = await (await idp.client.post("/passkeys/enrol/options", data={"csrf": enrol_form["csrf"]})).json()
    auth = authenticator(idp)
    codes_page = await idp.client.post("/passkeys/enrol", data={
        **enrol_form, "ceremony": options["ceremony"], "name": "Laptop",
        "credential": auth.create(options["publicKey"])}, allow_redirects=False)
    assert codes_page.status == 200, await codes_page.text()
    codes = re.findall(r"<li><code>([^<]+)</code></li>", await codes_page.text())
    assert len(codes) == 10 and await idp.services.durable.count_recovery_codes("acme", user.id) == 10
    # The codes shown, the sign-in goes on (once): the passkey is its second factor.
    done = await idp.client.post("/passkeys/enrol/continue", data={"csrf": enrol_form["csrf"]},
                                 allow_redirects=False)
    assert done.status == 303 and done.headers["Location"].startswith(SPA_REDIRECT), await done.text()
    again = await idp.client.post("/passkeys/enrol/continue", data={"csrf": enrol_form["csrf"]},
                                  allow_redirects=False)
    assert again.status == 400
    tokens = await (await exchange(idp, query_of(done.headers["Location"])["code"], verifier)).json()
    assert jwt_parts(tokens["id_token"])[1]["amr"] == ["pwd", "hwk", "user", "mfa"]


async def test_an_operator_reset_removes_the_passkeys(idp):
    """`idp users reset-mfa` (engine.accounts.mfa.reset) takes the passkeys too: they sign
    in no more, and `idp users show` counts none."""
    from engine.accounts import mfa

    user, auth = await enrolled(idp)
    realm = idp.realm()
    assert (await mfa.describe_factors(idp.services, realm, user.id))["passkeys"] == 1
    removed = await mfa.reset(idp.services, realm, user.id)
    assert removed["passkeys"] == 1
    assert (await mfa.describe_factors(idp.services, realm, user.id))["passkeys"] == 0
    assert (await passkey_sign_in(idp, auth)).status == 400
