"""Passkeys over HTTP with a software authenticator (tests.accounts.soft_authenticator),
both store pairs: the relying party's checks of WebAuthn Level 3 §7.1 (registration) and
§7.2 (authentication) one by one, the challenge's single use, binding and lifetime
(§13.4.3), the signature counter (§6.1.1), and the account pages' guards (session, CSRF,
recent sign-in, the last factor of a `required` realm). The browser tests
(test_passkeys_browser.py) run the same ceremonies in Chromium; test_passkeys_mfa.py has
the passkey as a second factor."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from engine.store import WebAuthnCredential
from tests.accounts.passkey_http import (
    PAGE,
    authenticator,
    enrol,
    enrolled,
    finish_sign_in,
    login_form,
    page_csrf,
    passkey_idp,
    passkey_sign_in,
    sign_in_options,
    signed_in,
)
from tests.accounts.soft_authenticator import b64u
from tests.oauth.conftest import ACME, SPA_REDIRECT, build_idp, jwt_parts, query_of
from tests.oauth.flow import authorize, exchange, form_fields, login_for_code


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    return await passkey_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory())


# registration (§7.1)


async def test_enrolment_stores_the_key_named_by_the_user(idp):
    """§7.1: a `none` attestation with user verification registers the key under its
    credential id and the name typed (trimmed, single-spaced); the page lists it."""
    user = await signed_in(idp)
    auth = authenticator(idp)
    first = await enrol(idp, auth, name="  My   phone ")
    # The user's first second factor: its recovery codes, shown once (issue 20).
    assert first.status == 200 and "Your passkey was added." in await first.text()
    assert len(re.findall(r"<li><code>", await first.text())) == 10
    assert await idp.services.durable.count_recovery_codes("acme", user.id) == 10
    [stored] = await idp.services.durable.list_passkeys("acme", user.id)
    assert (stored.credential_id, stored.name, stored.user_id) == (b64u(auth.credential_id), "My phone", user.id)
    assert stored.transports == ("internal",) and stored.sign_count == 0
    second = await enrol(idp, authenticator(idp), name="Desk key")
    assert second.status == 303 and second.headers["Location"] == f"{PAGE}?done=added"
    page = await (await idp.client.get(second.headers["Location"])).text()
    assert "Your passkey was added." in page and "My phone" in page and "Desk key" in page


async def test_registration_options_ask_for_a_discoverable_credential_with_user_verification(idp):
    """§5.4.6 residentKey required and §5.4.4 userVerification required; RP ID the base
    URL's host; the user handle is the opaque user id; keys held already are excluded."""
    user, auth = await enrolled(idp)
    csrf = await page_csrf(idp)
    document = await (await idp.client.post(f"{PAGE}/options", data={"csrf": csrf})).json()
    options = document["publicKey"]
    assert options["rp"]["id"] == "localhost"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["user"]["id"] == b64u(user.id.encode())
    assert [c["id"] for c in options["excludeCredentials"]] == [b64u(auth.credential_id)]
    assert options["attestation"] == "none"


@pytest.mark.parametrize("breakage", ["unverified", "other_origin", "replayed"])
async def test_registration_refused(idp, breakage):
    """No user verification (§7.1 step 15), another origin (step 9: a phishing page), or
    the same answer twice (the challenge is used up): nothing is stored."""
    user = await signed_in(idp)
    auth = authenticator(idp)
    csrf = await page_csrf(idp)
    document = await (await idp.client.post(f"{PAGE}/options", data={"csrf": csrf})).json()
    credential = auth.create(document["publicKey"], verified=breakage != "unverified",
                             origin="http://evil.example" if breakage == "other_origin" else None)
    form = {"csrf": csrf, "ceremony": document["ceremony"], "name": "Key", "credential": credential}
    if breakage == "replayed":
        assert (await idp.client.post(PAGE, data=form, allow_redirects=False)).status == 200
        await idp.services.durable.delete_passkeys("acme", user.id)
    resp = await idp.client.post(PAGE, data=form, allow_redirects=False)
    assert resp.status == 400
    assert await idp.services.durable.list_passkeys("acme", user.id) == []


async def test_enrolment_needs_a_session_the_csrf_token_and_a_recent_sign_in(idp):
    """As the account security page (engine.accounts.security): a sign-in older than 5
    minutes (or none) is sent there to sign in again; the forms carry the CSRF token."""
    await signed_in(idp)
    csrf = await page_csrf(idp)
    assert (await idp.client.post(f"{PAGE}/options", data={"csrf": "forged"})).status == 400
    idp.clock.advance(301)  # the sign-in is now more than 5 minutes old
    stale = await idp.client.post(f"{PAGE}/options", data={"csrf": csrf})
    assert stale.status == 403 and (await stale.json())["error"] == "login_required"
    for resp in (await idp.client.get(PAGE, allow_redirects=False),
                 await idp.client.post(f"{PAGE}/remove", data={"csrf": csrf, "credential_id": "x"},
                                       allow_redirects=False)):
        assert resp.status == 303 and resp.headers["Location"] == "/account/security"
    idp.client.session.cookie_jar.clear()
    assert (await idp.client.get(PAGE, allow_redirects=False)).headers["Location"] == "/account/security"


# authentication (§7.2)


async def test_passwordless_sign_in_issues_a_multi_factor_id_token(idp):
    """No email typed: the assertion's credential and user handle name the account. The
    ID token's amr (RFC 8176) is a hardware key, a verified user, and so `mfa`."""
    user, auth = await enrolled(idp)
    idp.client.session.cookie_jar.clear()
    fields = await login_form(idp)
    options = await sign_in_options(idp, fields)
    assert "allowCredentials" not in options["publicKey"] or not options["publicKey"]["allowCredentials"]
    assert options["publicKey"]["userVerification"] == "required"
    resp = await finish_sign_in(idp, fields, options, auth.get(options["publicKey"]))
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    assert location.startswith(SPA_REDIRECT), location
    assert "code" in query_of(location)
    [stored] = await idp.services.durable.list_passkeys("acme", user.id)
    assert stored.sign_count == 1 and stored.last_used_at is not None


async def test_passkey_amr_reaches_the_id_token(idp):
    user, auth = await enrolled(idp)
    idp.client.session.cookie_jar.clear()
    resp, verifier = await authorize(idp)
    html = await (await idp.client.get(resp.headers["Location"])).text()
    form = re.search(r'<form method="post" action="[^"]*/passkeys/sign-in".*?</form>', html, re.S).group(0)
    fields = form_fields(form)
    options = await sign_in_options(idp, fields)
    done = await finish_sign_in(idp, fields, options, auth.get(options["publicKey"]))
    tokens = await (await exchange(idp, query_of(done.headers["Location"])["code"], verifier)).json()
    claims = jwt_parts(tokens["id_token"])[1]
    assert claims["sub"] == user.id
    assert claims["amr"] == ["hwk", "user", "mfa"]


@pytest.mark.parametrize("breakage", ["unverified", "other_origin", "counter_not_growing", "other_user_handle"])
async def test_sign_in_refused(idp, breakage):
    """§7.2: user verification required (step 17), the origin (step 12), a counter that
    does not grow (§6.1.1: a clone), a user handle that is not the key's owner (step 6).
    The login page says why in general terms; no code; the counter is not moved."""
    user, auth = await enrolled(idp)
    ok = await passkey_sign_in(idp, auth)
    assert ok.status == 303
    kw = {"unverified": {"verified": False}, "other_origin": {"origin": "http://evil.example"},
          "counter_not_growing": {"counter": 1}, "other_user_handle": {"user_handle": b"usr_someoneelse"}}[breakage]
    resp = await passkey_sign_in(idp, auth, **kw)
    assert resp.status == 400
    assert 'role="alert"' in await resp.text()
    [stored] = await idp.services.durable.list_passkeys("acme", user.id)
    assert stored.sign_count == 1
    failures = [e.data for e in await idp.services.durable.list_events("acme") if e.type == "login_failed"]
    assert failures[-1]["provider"] == "passkey"


async def test_a_challenge_is_used_once(idp):
    """§13.4.3: the same assertion posted again (a replay) is refused: its challenge is gone."""
    _, auth = await enrolled(idp)
    idp.client.session.cookie_jar.clear()
    fields = await login_form(idp)
    options = await sign_in_options(idp, fields)
    credential = auth.get(options["publicKey"])
    assert (await finish_sign_in(idp, fields, options, credential)).status == 303
    idp.client.session.cookie_jar.clear()
    fields = await login_form(idp)  # a new sign-in, the old ceremony and answer replayed
    replay = await finish_sign_in(idp, fields, options, credential)
    assert replay.status == 400
    assert "expired or was used already" in await replay.text()


async def test_a_challenge_is_bound_to_its_flow(idp):
    """Options fetched for one sign-in cannot finish another (a ceremony started on an
    attacker's page, finished in the victim's flow)."""
    _, auth = await enrolled(idp)
    idp.client.session.cookie_jar.clear()
    first = await login_form(idp)
    options = await sign_in_options(idp, first)
    second = await login_form(idp)
    resp = await finish_sign_in(idp, second, options, auth.get(options["publicKey"]))
    assert resp.status == 400
    assert "started on another page" in await resp.text()


async def test_sign_in_needs_the_flows_csrf_token(idp):
    idp.client.session.cookie_jar.clear()
    fields = await login_form(idp)
    resp = await idp.client.post("/passkeys/sign-in/options", data={"flow": fields["flow"], "csrf": "forged"})
    assert resp.status == 400


# managing passkeys


async def test_rename_and_remove_only_ones_own(idp):
    user, auth = await enrolled(idp)
    await idp.services.durable.set_recovery_codes("acme", user.id, ["0" * 64, "1" * 64], idp.clock.now())
    credential_id = b64u(auth.credential_id)
    csrf = await page_csrf(idp)
    renamed = await idp.client.post(f"{PAGE}/rename", data={"csrf": csrf, "credential_id": credential_id,
                                                            "name": "Desk key"}, allow_redirects=False)
    assert renamed.status == 303
    assert (await idp.services.durable.find_passkey("acme", credential_id)).name == "Desk key"
    # Another account's key, named by its id: not found.
    other = await idp.add_user("bob@example.com")
    await idp.services.durable.add_passkey(WebAuthnCredential(
        realm="acme", credential_id="bobs-key", user_id=other.id, public_key=b"k", sign_count=0, transports=(),
        aaguid="", name="Bob's", created_at=datetime.now(UTC)))
    assert (await idp.client.post(f"{PAGE}/remove", data={"csrf": csrf, "credential_id": "bobs-key"})).status == 400
    assert await idp.services.durable.find_passkey("acme", "bobs-key") is not None
    removed = await idp.client.post(f"{PAGE}/remove", data={"csrf": csrf, "credential_id": credential_id},
                                    allow_redirects=False)
    assert removed.status == 303
    assert await idp.services.durable.list_passkeys("acme", user.id) == []
    assert await idp.services.durable.count_recovery_codes("acme", user.id) == 0  # none left to get around
    assert (await passkey_sign_in(idp, auth)).status == 400  # a removed key signs in no more
    types = [e.type for e in await idp.services.durable.list_events("acme")]
    assert {"passkey_added", "passkey_renamed", "passkey_removed"} <= set(types)


async def test_the_script_is_served_from_the_realm_and_the_pages_use_no_inline_script(idp):
    script = await idp.client.get("/static/passkeys.js")
    assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert "navigator.credentials" in await script.text()
    idp.client.session.cookie_jar.clear()
    resp, _ = await authorize(idp)
    login = await idp.client.get(resp.headers["Location"])
    html = await login.text()
    assert '<script src="/static/passkeys.js" defer></script>' in html
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # CSP: script-src 'self', no inline
    assert "script-src" not in login.headers["Content-Security-Policy"]  # default-src 'self' covers it


async def test_passkeys_off_offers_nothing(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """`mfa.passkeys: off` (the default): no button, and the endpoints are not there."""
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory())
    await idp.add_user()
    resp, _ = await authorize(idp)
    html = await (await idp.client.get(resp.headers["Location"])).text()
    assert "Sign in with a passkey" not in html
    fields = form_fields(html)
    assert (await idp.client.post("/passkeys/sign-in/options", data=fields)).status == 404
    await login_for_code(idp)
    assert (await idp.client.get(PAGE)).status == 404


async def test_the_last_factor_of_a_required_realm_stays(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """`mfa.passkeys: required`: removing the user's only second factor is refused."""
    idp = await passkey_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                            acme=ACME + "mfa: {passkeys: required}\n")
    user = await idp.add_user()
    auth = authenticator(idp)
    # Enrolled earlier (as the required enrolment would): the key as registration stores it.
    await idp.services.durable.add_passkey(WebAuthnCredential(
        realm="acme", credential_id=b64u(auth.credential_id), user_id=user.id, public_key=auth._cose_key(),
        sign_count=0, transports=("internal",), aaguid="", name="Only key", created_at=datetime.now(UTC)))
    auth.user_handle = user.id.encode()
    assert (await passkey_sign_in(idp, auth)).status == 303
    csrf = await page_csrf(idp)
    refused = await idp.client.post(f"{PAGE}/remove", data={"csrf": csrf, "credential_id": b64u(auth.credential_id)})
    assert refused.status == 409
    assert "requires a second factor" in await refused.text()
    assert len(await idp.services.durable.list_passkeys("acme", user.id)) == 1


# more of §7.2 and §13.4.3


async def test_an_expired_challenge_is_refused(idp):
    """A challenge lives 5 minutes (engine.accounts.passkeys.CEREMONY_SECONDS), by the app's clock."""
    _, auth = await enrolled(idp)
    idp.client.session.cookie_jar.clear()
    fields = await login_form(idp)
    options = await sign_in_options(idp, fields)
    idp.clock.advance(301)
    resp = await finish_sign_in(idp, fields, options, auth.get(options["publicKey"]))
    assert resp.status == 400
    assert "expired" in await resp.text()


async def test_a_disabled_account_cannot_sign_in_with_its_passkey(idp):
    user, auth = await enrolled(idp)
    await idp.services.durable.update_user("acme", user.id, disabled=True)
    resp = await passkey_sign_in(idp, auth)
    assert resp.status == 400
    assert "cannot sign in" in await resp.text()


async def test_a_passkey_signs_in_again_for_the_account_page(idp):
    """The account security page asks for a fresh sign-in after 5 minutes: a passkey
    gives it (no application: back to the account page)."""
    _, auth = await enrolled(idp)
    idp.clock.advance(400)
    resp = await idp.client.get("/account/security", allow_redirects=False)
    assert resp.status == 303 and "/login?flow=" in resp.headers["Location"]
    html = await (await idp.client.get(resp.headers["Location"])).text()
    fields = form_fields(re.search(r'<form method="post" action="[^"]*/passkeys/sign-in".*?</form>', html, re.S)[0])
    options = await sign_in_options(idp, fields)
    done = await finish_sign_in(idp, fields, options, auth.get(options["publicKey"]))
    assert done.status == 303 and done.headers["Location"].endswith("/account/security"), done.headers.get("Location")
    page = await idp.client.get("/account/security", allow_redirects=False)
    assert page.status == 200 and "Laptop" in await page.text()
