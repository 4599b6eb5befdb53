"""Password reset (issue 5, rule 3): the same response whether or not the address has an
account; a single-use, expiring (1 h by default) token stored as a hash; a reset revokes
every session and every refresh-token family of the user and mails a notice."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from urllib.parse import parse_qs, urlsplit

from tests.accounts.conftest import PASSWORD, link_in, text_of
from tests.accounts.helpers import flow_id, forgot, get_form, reset, submit
from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange, login_for_code, submit_login

NEW_PASSWORD = "a brand new passphrase"


def strip(html: str) -> str:
    return re.sub(r'value="[^"]*"', "", html)


async def reset_link(idp, email="alice@example.com") -> str:
    resp = await forgot(idp, email)
    assert resp.status == 200
    return link_in(await idp.last_mail(email), "/reset-password")


async def refresh(idp, token: str, client_id: str = "spa"):
    return await idp.client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                 "client_id": client_id})


async def test_forgot_password_answers_the_same_whether_or_not_the_address_exists(idp):
    """Rule 3: the same page for a known and an unknown address; only the owner is mailed."""
    await idp.add_user()
    known = await forgot(idp, "alice@example.com")
    unknown = await forgot(idp, "nobody@example.com")
    assert known.status == unknown.status == 200
    assert strip(await known.text()).replace("alice@", "X@") == strip(await unknown.text()).replace("nobody@", "X@")
    assert [m["To"] for m in await idp.mails()] == ["alice@example.com"]
    mail = await idp.last_mail()
    assert mail["Subject"] == "Reset your ACME password" and "expires in 1 hour" in text_of(mail)


async def test_reset_sets_the_new_password_and_the_old_one_stops_working(idp):
    """Rule 3: after the reset only the new password signs in."""
    await idp.add_user(password=PASSWORD)
    resp = await reset(idp, await reset_link(idp), NEW_PASSWORD)
    assert resp.status == 200 and "password has been changed" in await resp.text()
    idp.clock.advance(1)
    resp, _ = await authorize(idp)
    assert (await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)).status == 400
    code, _verifier, _ = await login_for_code(idp, "alice@example.com", NEW_PASSWORD)
    assert code


async def test_reset_link_is_single_use(idp):
    """Rule 3: the token is used up by the reset."""
    await idp.add_user()
    link = await reset_link(idp)
    assert (await reset(idp, link, NEW_PASSWORD)).status == 200
    again = await idp.client.get(link)
    assert again.status == 400 and "expired or was already used" in await again.text()


async def test_reset_link_expires_after_one_hour_by_default(idp):
    """Rule 3: `lifetimes.password_reset` defaults to 1 h."""
    await idp.add_user()
    link = await reset_link(idp)
    idp.clock.advance(3600 - 1)
    assert (await idp.client.get(link)).status == 200
    idp.clock.advance(1)
    assert (await idp.client.get(link)).status == 400


async def test_reset_lifetime_is_a_realm_setting(idp):
    """Rule 3: realm `other` sets `lifetimes.password_reset: 10m`."""
    await idp.add_user("o@example.com", realm="other")
    await forgot(idp, "o@example.com", prefix="/realms/other")
    link = link_in(await idp.last_mail("o@example.com"), "/reset-password")
    assert link.startswith("/realms/other/reset-password?")
    idp.clock.advance(600 - 1)
    assert (await idp.client.get(link)).status == 200
    idp.clock.advance(1)
    assert (await idp.client.get(link)).status == 400


async def test_only_the_hash_of_the_reset_token_is_stored(idp):
    """Rule 3: the store holds SHA-256(token), never the token."""
    await idp.add_user()
    token = parse_qs(urlsplit(await reset_link(idp)).query)["token"][0]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert await idp.services.ephemeral.get(f"acme:onetime:reset_password:{digest}") is not None
    assert await idp.services.ephemeral.get(f"acme:onetime:reset_password:{token}") is None


async def test_a_reset_kills_every_other_outstanding_reset_link(idp):
    """Rule 3: links are bound to the password they replace."""
    await idp.add_user()
    first, second = await reset_link(idp), await reset_link(idp)
    assert (await reset(idp, second, NEW_PASSWORD)).status == 200
    assert (await idp.client.get(first)).status == 400


async def test_reset_revokes_every_session_and_refresh_token_family(idp, aiohttp_client):
    """Rule 3: a reset ends the user's browser sessions (in every browser) and revokes all
    their refresh-token families and the access tokens issued before it; the owner gets a
    notice by mail."""
    await idp.add_user(password=PASSWORD)
    other_browser = dataclasses.replace(idp, client=await aiohttp_client(idp.client.server))
    families, access_tokens = [], []
    for browser in (idp, other_browser):
        code, verifier, _ = await login_for_code(browser, "alice@example.com", PASSWORD)
        issued = await (await exchange(browser, code, verifier)).json()
        families.append(issued["refresh_token"])
        access_tokens.append(issued["access_token"])
    # Both browsers are signed in (prompt=none gives a code) and the refresh tokens work.
    for browser in (idp, other_browser):
        resp, _ = await authorize(browser, prompt="none")
        assert "code" in query_of(resp.headers["Location"])
    rotated = await refresh(idp, families[0])
    assert rotated.status == 200
    families[0] = (await rotated.json())["refresh_token"]

    link = await reset_link(idp)
    assert (await reset(idp, link, NEW_PASSWORD)).status == 200
    idp.clock.advance(1)

    for browser in (idp, other_browser):
        resp, _ = await authorize(browser, prompt="none")
        assert query_of(resp.headers["Location"])["error"] == "login_required"
    for token in families:
        resp = await refresh(idp, token)
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
    for token in access_tokens:  # and the access tokens from before the reset
        resp = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401
    notice = await idp.last_mail("alice@example.com")
    assert notice["Subject"] == "Your ACME password was changed" and "signed out everywhere" in text_of(notice)
    event = [e for e in await idp.services.durable.list_events("acme") if e.type == "password_reset"][-1]
    assert event.data["families_revoked"] == 2
    # A new sign-in after the reset makes a session that lasts.
    code, verifier, _ = await login_for_code(idp, "alice@example.com", NEW_PASSWORD)
    fresh = (await (await exchange(idp, code, verifier)).json())["access_token"]
    resp = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {fresh}"})
    assert resp.status == 200
    resp, _ = await authorize(idp, prompt="none")
    assert "code" in query_of(resp.headers["Location"])


async def test_reset_refuses_a_weak_or_mismatched_password_and_keeps_the_link(idp):
    """Rule 3 + 4: the policy applies to the new password; the link survives a refusal."""
    await idp.add_user()
    link = await reset_link(idp)
    weak = await reset(idp, link, "password123")
    assert weak.status == 400 and "too common" in await weak.text()
    mismatch = await reset(idp, link, NEW_PASSWORD, confirm=NEW_PASSWORD + "!")
    assert mismatch.status == 400 and "not the same" in await mismatch.text()
    assert (await reset(idp, link, NEW_PASSWORD)).status == 200


async def test_reset_verifies_the_address(idp):
    """Rule 3: the link proved control of the mailbox, so the address is verified."""
    await idp.add_user(verified=False)
    await reset(idp, await reset_link(idp), NEW_PASSWORD)
    assert (await idp.services.accounts.by_email("acme", "alice@example.com")).email_verified


async def test_forgot_from_the_login_page_continues_the_authorization(idp):
    """Rule 3 + 7: forgot → reset in the same browser goes back to the pending sign-in."""
    await idp.add_user()
    resp, verifier = await authorize(idp)
    login_location = resp.headers["Location"]
    await idp.client.get(login_location)
    status, html, _action, _hidden = await get_form(idp, f"/forgot-password?flow={flow_id(login_location)}")
    assert status == 200 and "Back to sign in" in html
    await forgot(idp, "alice@example.com", flow=flow_id(login_location))
    resp = await reset(idp, link_in(await idp.last_mail(), "/reset-password"), NEW_PASSWORD)
    assert resp.status == 303 and resp.headers["Location"] == login_location
    page = await (await idp.client.get(login_location)).text()
    assert "Your password has been changed" in page
    idp.clock.advance(1)
    resp = await submit_login(idp, login_location, "alice@example.com", NEW_PASSWORD)
    tokens = await (await exchange(idp, query_of(resp.headers["Location"])["code"], verifier)).json()
    assert "refresh_token" in tokens


async def test_forgot_password_is_rate_limited_per_ip(idp):
    """Rule 3 (abuse): `rate_limits.password_reset_per_ip` (20/h) → 429 with Retry-After."""
    statuses = [(await forgot(idp, f"user{i}@example.com")).status for i in range(21)]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429


async def test_reset_mail_per_address_is_limited_without_telling(idp):
    """Rule 5 (abuse): at most `mail_per_recipient` (5/h) mails to one address; the page
    does not change when a mail is suppressed."""
    await idp.add_user()
    pages = {strip(await (await forgot(idp, "alice@example.com")).text()) for _ in range(7)}
    assert len(pages) == 1
    assert len(await idp.mails()) == 5


async def test_forgot_password_form_requires_csrf(idp):
    """Rule 7: CSRF-protected."""
    await idp.add_user()
    resp = await idp.client.post("/forgot-password", data={"email": "alice@example.com"})
    assert resp.status == 400
    assert await idp.mails() == []


async def test_reset_page_is_an_accessible_form(idp):
    """Rule 7: labels for both inputs, one form, the token in a hidden field."""
    await idp.add_user()
    resp = await submit(idp, "/forgot-password", email="alice@example.com")
    assert resp.status == 200
    status, html, _action, hidden = await get_form(idp, await reset_link(idp))
    assert status == 200 and html.count("<form") == 1
    assert '<label for="password">' in html and '<label for="password_confirm">' in html
    assert set(hidden) == {"csrf", "token"}


async def bearer_status(idp, token: str) -> int:
    return (await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})).status


async def test_a_reset_in_the_same_second_revokes_the_token_before_it_and_not_the_one_after(idp, aiohttp_client):
    """OWASP Forgot Password Cheat Sheet ("invalidate existing sessions") with a whole-second
    `iat` (RFC 7519 §4.1.6): an access token minted 0.3 s before the reset is revoked; one
    minted 0.2 s after it, in the same second, by the owner signing in with the new
    password, is not (the cutoff compares the token's millisecond issue time)."""
    await idp.add_user(password=PASSWORD)
    idp.clock.advance(1.1 - idp.clock.now().timestamp() % 1)  # x.1: the whole test in one second
    code, verifier, _ = await login_for_code(idp, "alice@example.com", PASSWORD)
    before = (await (await exchange(idp, code, verifier)).json())["access_token"]
    idp.clock.advance(0.3)
    owner = dataclasses.replace(idp, client=await aiohttp_client(idp.client.server))
    await forgot(owner, "alice@example.com")
    assert (await reset(owner, link_in(await idp.last_mail(), "/reset-password"), "a brand new passphrase")).status
    idp.clock.advance(0.2)
    code, verifier, _ = await login_for_code(owner, "alice@example.com", "a brand new passphrase")
    after = (await (await exchange(owner, code, verifier)).json())["access_token"]
    assert idp.clock.now().timestamp() % 1 < 0.9  # still the same second
    assert await bearer_status(idp, before) == 401
    assert await bearer_status(idp, after) == 200


async def test_a_code_issued_before_a_reset_is_worthless_after_it(idp, aiohttp_client):
    """RFC 6749 §10.5 / OWASP Forgot Password Cheat Sheet: a reset ends what the user was
    given before it, and an authorization code obtained in a session the reset ended is one
    of those: redeemed after the reset it gives no tokens (no access token and, above all,
    no new refresh-token family outliving the reset)."""
    await idp.add_user(password=PASSWORD)
    code, verifier, _ = await login_for_code(idp, "alice@example.com", PASSWORD)
    idp.clock.advance(1)
    owner = dataclasses.replace(idp, client=await aiohttp_client(idp.client.server))
    await forgot(owner, "alice@example.com")
    assert (await reset(owner, link_in(await idp.last_mail(), "/reset-password"), "a brand new passphrase")).status
    idp.clock.advance(1)
    resp = await exchange(idp, code, verifier)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"


async def test_a_reset_opened_elsewhere_ends_with_a_link_back_to_the_application(
        tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Issue 18 item 7: the reset link is opened in another browser (the sign-in that asked
    for it is not there): the last page links back to the application that sent the user,
    its `client_uri` (RFC 7591 §2)."""
    import dataclasses

    from tests.accounts.conftest import ACME, build_idp, mail_yaml
    from tests.accounts.helpers import flow_id, forgot, reset
    from tests.oauth.flow import authorize

    outbox = tmp_path / "outbox"
    realm = ACME.replace("  - client_id: spa\n    type: public\n",
                         "  - client_id: spa\n    name: Example SPA\n    client_uri: https://spa.example.com/\n"
                         "    type: public\n", 1)
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), mail=mail_yaml(outbox),
                          outbox=outbox, realms={"acme": realm})
    await idp.add_user("carol@example.com", "an old long passphrase")
    resp, _ = await authorize(idp)  # the application sends Carol to sign in; she forgot her password
    await forgot(idp, "carol@example.com", flow=flow_id(resp.headers["Location"]))
    link = link_in(await idp.last_mail("carol@example.com"), "/reset-password")
    phone = dataclasses.replace(idp, client=await aiohttp_client(idp.client.server))  # another browser
    done = await reset(phone, link, "a brand new passphrase 7")
    page = await done.text()
    assert done.status == 200 and "Your password has been changed" in page
    assert '<a class="button" href="https://spa.example.com/">Continue to Example SPA</a>' in page
