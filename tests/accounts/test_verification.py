"""Email verification (issue 5, rule 2): a single-use link that expires (realm setting,
24 h by default), stored only as a SHA-256 hash; resend with its own rate limit; until
verified, no code at all when the password provider's `require_verified_email` is on (the
default, issue 16 item 16), else tokens say `email_verified: false` and no refresh token is
issued (seed security must: "email verification before issuing refresh tokens")."""

from __future__ import annotations

import asyncio
import hashlib
import re
from urllib.parse import parse_qs, urlsplit

from tests.accounts.conftest import PASSWORD, form_action, hidden_fields, link_in
from tests.accounts.helpers import flow_id, get_form, register, submit, verify
from tests.oauth.conftest import jwt_parts, query_of
from tests.oauth.flow import authorize, exchange, login_for_code, submit_login


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def registered(idp, email="new@example.com", prefix=""):
    await register(idp, email, prefix=prefix)
    mail = await idp.last_mail(email)
    return link_in(mail, "/verify-email")


async def test_link_verifies_the_address_once(idp):
    """Rule 2: single use: the second use of the same link is refused."""
    link = await registered(idp)
    first = await verify(idp, link)
    assert first.status == 200 and "is verified" in await first.text()
    assert (await idp.services.accounts.by_email("acme", "new@example.com")).email_verified
    again = await idp.client.get(link)
    assert again.status == 400 and "expired or was already used" in await again.text()
    events = [e.type for e in await idp.services.durable.list_events("acme")]
    assert events.count("email_verified") == 1


async def test_opening_the_link_does_not_use_it_up(idp):
    """Rule 2: GET only shows a confirmation button (mail scanners prefetch links)."""
    link = await registered(idp)
    for _ in range(2):
        assert (await idp.client.get(link)).status == 200
    assert not (await idp.services.accounts.by_email("acme", "new@example.com")).email_verified
    assert (await verify(idp, link)).status == 200


async def test_concurrent_uses_of_one_link_have_one_winner(idp):
    """Rule 2: redemption is an atomic take: of two simultaneous POSTs one verifies."""
    link = await registered(idp)
    _status, _html, action, hidden = await get_form(idp, link)
    posts = [idp.client.post(action, data=hidden, allow_redirects=False) for _ in range(2)]
    statuses = sorted(r.status for r in await asyncio.gather(*posts))
    assert statuses == [200, 400]


async def test_link_expires_after_24_hours_by_default(idp):
    """Rule 2: `lifetimes.email_verification` defaults to 24 h."""
    link = await registered(idp)
    idp.clock.advance(24 * 3600 - 1)
    assert (await idp.client.get(link)).status == 200
    idp.clock.advance(1)
    assert (await idp.client.get(link)).status == 400
    resp = await verify_post_anyway(idp, link)
    assert resp.status == 400
    assert not (await idp.services.accounts.by_email("acme", "new@example.com")).email_verified


async def verify_post_anyway(idp, link):
    _status, _html, _action, hidden = await get_form(idp, "/verify-email/resend")
    return await idp.client.post("/verify-email", data={"csrf": hidden["csrf"], "token": token_of(link)},
                                 allow_redirects=False)


async def test_link_lifetime_is_a_realm_setting(idp):
    """Rule 2: realm `other` sets `lifetimes.email_verification: 1h`."""
    from engine.accounts.verification import verification_link

    user = await idp.add_user("o@example.com", verified=False, realm="other")
    link = await verification_link(idp.services, idp.realm("other"), user)
    path = urlsplit(link).path + "?" + urlsplit(link).query
    idp.clock.advance(3600 - 1)
    assert (await idp.client.get(path)).status == 200
    idp.clock.advance(1)
    assert (await idp.client.get(path)).status == 400


async def test_only_the_hash_of_the_token_is_stored(idp):
    """Rule 2: the store holds SHA-256(token), never the token itself."""
    token = token_of(await registered(idp))
    ephemeral = idp.services.ephemeral
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert await ephemeral.get(f"acme:onetime:verify_email:{digest}") is not None
    assert await ephemeral.get(f"acme:onetime:verify_email:{token}") is None
    store = getattr(ephemeral, "_inner", ephemeral)  # under the metrics wrapper
    if idp.services.runtime.config.server.storage.ephemeral.startswith("memory://"):
        # The embedded store: no key or value anywhere contains the token.
        assert not any(token in key or token in value for key, (_, value) in store._data.items())


async def test_a_changed_address_invalidates_the_link(idp):
    """Rule 2: the link verifies the address it was sent to, not whatever the account has now."""
    link = await registered(idp)
    user = await idp.services.accounts.by_email("acme", "new@example.com")
    await idp.services.durable.update_user("acme", user.id, disabled=True)
    assert (await idp.client.get(link)).status == 400


async def test_require_verified_email_gives_no_code_but_a_way_to_verify(idp):
    """Issue 16 item 16: `require_verified_email: true` (the password provider's default)
    means no authorization code for an unverified user (RFC 6749 §4.1.2: nothing reaches the
    client), but a readable page whose button resends the verification mail; its link
    continues the same authorization (after the password is chosen, issue 16 item 2), and
    the code then says `email_verified: true` with a refresh token."""
    await registered(idp)
    before = len(await idp.mails())
    resp, verifier = await authorize(idp)
    login_location = resp.headers["Location"]
    resp = await submit_login(idp, login_location, "new@example.com", PASSWORD)
    html = await resp.text()
    assert resp.status == 403 and "Location" not in resp.headers and resp.content_type == "text/html"
    assert "Verify your email address first" in html and "new@example.com" in html
    assert form_action(html) == "/verify-email/resend"
    flow = flow_id(login_location)
    assert hidden_fields(html)["flow"] == flow
    resent = await idp.client.post("/verify-email/resend", data=hidden_fields(html), allow_redirects=False)
    assert resent.status == 200
    mails = (await idp.mails())[before:]
    assert [m["To"] for m in mails] == ["new@example.com"]

    chosen = await verify(idp, link_in(mails[0], "/verify-email"))
    chosen_html = await chosen.text()
    assert chosen.status == 200 and "Choose a new password" in chosen_html
    resp = await idp.client.post(form_action(chosen_html), allow_redirects=False, data={
        **hidden_fields(chosen_html), "password": PASSWORD, "password_confirm": PASSWORD})
    assert resp.status == 303 and resp.headers["Location"] == login_location
    idp.clock.advance(1)
    resp = await submit_login(idp, login_location, "new@example.com", PASSWORD)
    assert resp.status == 303, await resp.text()
    tokens = await (await exchange(idp, query_of(resp.headers["Location"])["code"], verifier)).json()
    assert "refresh_token" in tokens
    assert jwt_parts(tokens["id_token"])[1]["email_verified"] is True


async def test_require_verified_email_with_prompt_none_is_interaction_required(idp):
    """An unverified user's browser session does not get a code silently either: with
    `prompt=none` the answer is `interaction_required` (OIDC Core §3.1.2.6)."""
    await registered(idp)
    resp, _ = await authorize(idp)
    assert (await submit_login(idp, resp.headers["Location"], "new@example.com", PASSWORD)).status == 403
    resp, _ = await authorize(idp, prompt="none")
    assert query_of(resp.headers["Location"])["error"] == "interaction_required"
    resp, _ = await authorize(idp)  # interactive: the page again, still no code
    assert resp.status == 403 and "Verify your email address first" in await resp.text()


async def test_without_require_verified_email_the_code_says_unverified(tmp_path, backend, aiohttp_client,
                                                                       unused_tcp_port_factory):
    """`require_verified_email: false`: an unverified user gets a code, the ID token says
    `email_verified: false`, and (the realm's `refresh_requires_verified_email`, seed
    security must) no refresh token."""
    from tests.accounts.conftest import ACME, build_idp, mail_yaml

    outbox = tmp_path / "outbox"
    realm = ACME.replace("    registration: true\n", "    registration: true\n    require_verified_email: false\n")
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(outbox), outbox=outbox, realms={"acme": realm})
    await registered(idp)
    code, verifier, _ = await login_for_code(idp, "new@example.com", PASSWORD)
    tokens = await (await exchange(idp, code, verifier)).json()
    assert "refresh_token" not in tokens
    assert jwt_parts(tokens["id_token"])[1]["email_verified"] is False


async def test_resend_answers_the_same_for_every_address(idp):
    """Rule 2 + 1: resending never tells whether an address has an (unverified) account."""
    await idp.add_user("verified@example.com")
    await register(idp, "pending@example.com")
    before = len(await idp.mails())
    pages = []
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # noqa: E731
    for address in ("pending@example.com", "verified@example.com", "nobody@example.com"):
        resp = await submit(idp, "/verify-email/resend", email=address)
        assert resp.status == 200
        pages.append((await resp.text()).replace(address, "X"))
    assert len({strip(p) for p in pages}) == 1
    mails = (await idp.mails())[before:]
    assert [m["To"] for m in mails] == ["pending@example.com"]
    assert (await verify(idp, link_in(mails[0], "/verify-email"))).status == 200


async def test_resend_has_its_own_rate_limit_per_address(idp):
    """Rule 2: `rate_limits.verification_resend_per_account` (3 per hour) → 429."""
    await register(idp, "pending@example.com")
    statuses = [(await submit(idp, "/verify-email/resend", email="pending@example.com")).status
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    other = await submit(idp, "/verify-email/resend", email="someone@example.com")
    assert other.status == 200  # another address is not affected
    idp.clock.advance(3600)
    assert (await submit(idp, "/verify-email/resend", email="pending@example.com")).status == 200


async def test_verification_links_of_the_root_realm_are_under_its_issuer(idp):
    """The root realm's issuer is the base URL: its links are there, and /realms/<root>
    answers 404 (one issuer, OIDC Discovery §4.3)."""
    link = await registered(idp, "r@example.com")
    assert link.startswith("/verify-email?")
    assert (await idp.client.get(link)).status == 200
    assert (await idp.client.get("/realms/acme" + link)).status == 404
