"""Self-registration (issue 5, rule 1): `/register` when the realm's password provider
allows it; email, name, password; the account starts unverified; an address already
registered gets the same response while its owner is mailed instead."""

from __future__ import annotations

import re

import pytest

from tests.accounts.conftest import PASSWORD, html_of, link_in, text_of
from tests.accounts.helpers import flow_id, forgot, get_form, register, verify
from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange, submit_login


def strip_tokens(html: str) -> str:
    return re.sub(r'value="[^"]*"', 'value=""', html)


async def test_registration_is_off_unless_the_provider_allows_it(idp):
    """Rule 1: `/register` exists only where the password provider says `registration: true`."""
    resp = await idp.client.get("/realms/other/register")
    assert resp.status == 404 and "does not allow creating accounts" in await resp.text()
    resp = await idp.client.post("/realms/other/register", data={"email": "x@example.com"})
    assert resp.status == 404


async def test_register_creates_an_unverified_account_and_mails_a_link(idp):
    """Rule 1 + 2: the new account starts unverified; a verification link is mailed."""
    resp = await register(idp, "new@example.com", name="New Person")
    html = await resp.text()
    assert resp.status == 200 and "Check your email" in html and "new@example.com" in html
    user = await idp.services.accounts.by_email("acme", "new@example.com")
    assert user is not None and user.email_verified is False and user.profile == {"name": "New Person"}
    mail = await idp.last_mail("new@example.com")
    assert mail["From"] == "ACME Accounts <accounts@acme.test>"
    assert mail["Subject"] == "Verify your email address for ACME"
    assert "/verify-email?token=" in link_in(mail, "/verify-email")
    events = [e.type for e in await idp.services.durable.list_events("acme")]
    assert "user_registered" in events


async def test_taken_address_gets_the_same_response_and_its_owner_is_mailed(idp):
    """Rule 1: registration never reveals who has an account: same status, same page,
    the same work (one password hash each), and the owner gets a mail instead."""
    owner = await idp.add_user("taken@example.com", "the owner's own passphrase")
    hashes = []
    original = idp.services.passwords.hash

    async def counting_hash(hasher, password):
        hashes.append(password)
        return await original(hasher, password)

    idp.services.passwords.hash = counting_hash
    new = await register(idp, "fresh@example.com", PASSWORD, "Somebody")
    taken = await register(idp, "taken@example.com", PASSWORD, "Somebody")
    assert new.status == taken.status == 200
    assert strip_tokens(await new.text()).replace("fresh@", "X@") == \
        strip_tokens(await taken.text()).replace("taken@", "X@")
    assert len(hashes) == 2  # the taken address hashed the password too
    # Nothing about the existing account changed.
    assert await idp.services.accounts.password_hash("acme", owner.id) is not None
    user = await idp.services.accounts.by_email("acme", "taken@example.com")
    assert user.id == owner.id and user.profile == {"name": "Alice"}
    mail = await idp.last_mail("taken@example.com")
    assert "already has an account" in text_of(mail) and "/forgot-password" in text_of(mail)
    assert "/verify-email" not in text_of(mail)  # verified already: no verification link


async def test_taken_unverified_address_gets_a_fresh_verification_link(idp):
    """Rule 2: the owner of an unverified address that signs up again can still verify."""
    await idp.add_user("pending@example.com", verified=False)
    await register(idp, "pending@example.com")
    mail = await idp.last_mail("pending@example.com")
    resp = await verify(idp, link_in(mail, "/verify-email"))
    assert resp.status == 200
    assert (await idp.services.accounts.by_email("acme", "pending@example.com")).email_verified


async def test_email_is_matched_case_insensitively(idp):
    """Rule 1: `Taken@Example.com` is the same account as `taken@example.com`."""
    await idp.add_user("taken@example.com")
    await register(idp, "Taken@EXAMPLE.com")
    mail = await idp.last_mail("taken@example.com")
    assert "already has an account" in text_of(mail)


async def test_invalid_fields_are_explained_next_to_each_field(idp):
    """Rule 7: errors are shown per field (aria-invalid, aria-describedby), values kept."""
    resp = await register(idp, "not-an-email", "short", "")
    html = await resp.text()
    assert resp.status == 400
    assert 'id="email-error"' in html and 'id="name-error"' in html and 'id="password-error"' in html
    assert 'aria-invalid="true"' in html and 'value="not-an-email"' in html
    assert await idp.services.accounts.by_email("acme", "not-an-email") is None


async def test_weak_password_is_refused_before_the_address_is_looked_up(idp):
    """Rule 1 + 4: the policy answers the same for a taken and a free address."""
    await idp.add_user("taken@example.com")
    taken = await register(idp, "taken@example.com", "password1")
    free = await register(idp, "free@example.com", "password1")
    assert taken.status == free.status == 400
    assert "too common" in await taken.text() and "too common" in await free.text()
    assert await idp.services.accounts.by_email("acme", "free@example.com") is None
    assert await idp.mails() == []


async def test_registration_needs_the_csrf_token_and_cookie(idp):
    """Rule 7: a form posted from another site (no CSRF cookie/token) is refused."""
    resp = await idp.client.post("/register", data={"email": "x@example.com", "name": "X", "password": PASSWORD})
    assert resp.status == 400 and "not submitted from this site" in await resp.text()
    _status, _html, action, hidden = await get_form(idp, "/register")
    idp.client.session.cookie_jar.clear()
    resp = await idp.client.post(action, data={**hidden, "email": "x@example.com", "name": "X",
                                               "password": PASSWORD})
    assert resp.status == 400
    assert await idp.services.accounts.by_email("acme", "x@example.com") is None


async def test_registration_is_rate_limited_per_ip(idp):
    """Rule 1 (abuse): `rate_limits.register_per_ip` (20/h) → 429 with Retry-After."""
    statuses = [(await register(idp, f"user{i}@example.com")).status for i in range(21)]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429
    last = await register(idp, "late@example.com")
    assert last.status == 429 and int(last.headers["Retry-After"]) > 0


async def test_register_from_the_login_page_then_verify_continues_the_authorization(idp):
    """Rule 1 + 7: the login page's register link carries `?flow=`; after the link in the
    mail is opened in the same browser, the pending authorization continues: sign-in
    page with the address filled in, then a code for the client."""
    resp, verifier = await authorize(idp)
    login_location = resp.headers["Location"]
    login_html = await (await idp.client.get(login_location)).text()
    flow = flow_id(login_location)
    assert f'href="/register?flow={flow}"' in login_html
    assert f'href="/forgot-password?flow={flow}"' in login_html
    await register(idp, "carol@example.com", flow=flow)
    resp = await verify(idp, link_in(await idp.last_mail("carol@example.com"), "/verify-email"))
    # The browser that registered proves the mailbox: the password it chose stays (issue 16
    # item 2 clears it only for a proof from elsewhere: tests/accounts/test_proof.py).
    assert resp.status == 303 and resp.headers["Location"] == login_location
    page = await (await idp.client.get(login_location)).text()
    assert "Your email address is verified" in page and 'value="carol@example.com"' in page
    resp = await submit_login(idp, login_location, "carol@example.com", PASSWORD)
    code = query_of(resp.headers["Location"])["code"]
    tokens = await (await exchange(idp, code, verifier)).json()
    assert "access_token" in tokens and "refresh_token" in tokens



# ------------------------------------------------------------ addresses (issue 16 item 6)


async def test_a_kelvin_sign_address_cannot_squat_an_existing_account(idp):
    """NFKC: `Kate@example.com` typed with U+212A KELVIN SIGN is `kate@example.com`'s
    account: no second account, and the owner is told as for any taken address."""
    owner = await idp.add_user("kate@example.com", "the owner's own passphrase")
    resp = await register(idp, "\u212aate@example.com", PASSWORD, "Somebody")
    assert resp.status == 200
    assert (await idp.services.accounts.by_email("acme", "\u212aate@example.com")).id == owner.id
    assert [u.id for u in await all_users(idp)] == [owner.id]
    assert (await idp.last_mail())["To"] == "kate@example.com"


async def test_a_kelvin_sign_registration_is_stored_normalised(idp):
    """NFKC the other way round: registered first with U+212A, the account holds `Kate@…`
    in plain letters, so the real `kate@…` finds it taken (and it is mailed there)."""
    await register(idp, "\u212aate@example.com", PASSWORD, "Somebody")
    user = await idp.services.accounts.by_email("acme", "kate@example.com")
    assert user is not None and user.email == "Kate@example.com"
    assert (await idp.last_mail())["To"] == "Kate@example.com"


@pytest.mark.parametrize("address", [
    "a@example.com, victim@example.com", "victim@example.com\u200b", '"victim"@example.com',
    "Victim <victim@example.com>", "vic\u202etim@example.com", "victim@example.com\r\nBcc: x@example.com",
])
async def test_addresses_that_hide_something_are_refused(idp, address):
    """Commas, zero-width and bidi characters, quotes, angle brackets and controls are
    refused with the field's message; no account and no mail."""
    resp = await register(idp, address, PASSWORD, "Somebody")
    assert resp.status == 400
    if "\r" not in address:  # control characters are refused for every field, before the form is read
        assert "Enter an email address like name@example.com." in await resp.text()
    assert not await all_users(idp) and not await idp.mails()


# ---------------------------------------------- nothing the registrant typed (issue 23 item 10)

SPAM = "Claim your prize at https://evil.example/win"


async def test_mails_to_an_unproven_address_carry_no_text_the_registrant_typed(idp):
    """The verification mail, the "already registered" mail to an unverified account, and
    a reset mail to it never quote the free-form name: the IdP is no mailer of attacker
    text to any address."""
    await register(idp, "victim@example.com", PASSWORD, SPAM)
    await register(idp, "victim@example.com", PASSWORD, "Another Name")
    await forgot(idp, "victim@example.com")
    mails = await idp.mails()
    assert [m["Subject"].split()[0] for m in mails] == ["Verify", "Someone", "Reset"]
    for mail in mails:
        for part in (text_of(mail), html_of(mail), mail["Subject"]):
            assert "prize" not in part and "evil.example" not in part and "Another" not in part


async def all_users(idp):
    users = []
    for email in ("kate@example.com", "victim@example.com", "a@example.com", "vic\u202etim@example.com"):
        user = await idp.services.accounts.by_email("acme", email)
        if user is not None:
            users.append(user)
    return users
