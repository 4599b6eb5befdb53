"""Account takeover through federation (issue 16 items 1–3; OWASP ASVS 5.0 V6.x "account
pre-hijacking", Sudhodanan & Paverd 2022; OIDC Core §5.7: use `email` only when
`email_verified` is true).

- Whoever proves the address owns the account: a verified upstream email arriving for a
  local account whose address nobody proved takes it over, and everything the registrant
  set before (password, sessions, refresh tokens, access tokens, federated links) stops
  working.
- An upstream email that is not verified is never given to an account; per provider,
  `unverified_email: no_email` (default) or `refuse`.
- Every refusal is the same page, whatever its cause.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

from engine.accounts.linking import FEDERATION_REFUSED
from engine.store.protocols import ExternalIdentity as IdentityLink
from tests.federation.browser import login_and_userinfo, open_callback, start_at_login_page, through_upstream
from tests.federation.fakes import GoogleUser
from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange, login_for_code, submit_login

ATTACKER_PASSWORD = "mallory's own passphrase"
# The most permissive realm: unverified users get codes and refresh tokens, so the attacker
# holds every kind of credential before the owner proves the address.
PERMISSIVE = {"password_extra": "require_verified_email: false",
              "realm_extra": "refresh_requires_verified_email: false"}


async def refresh(idp, token: str):
    return await idp.client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                 "client_id": "spa"})


async def attacker_with_everything(fed, aiohttp_client, email: str = "gail@example.com"):
    """Mallory registers the victim's address with her password, signs in (a browser
    session, an access token, a refresh token) and, as an account made before this fix
    could have, has an upstream identity of her own linked to it."""
    squatter = await fed.idp.add_user(email, ATTACKER_PASSWORD, verified=False, name="Mallory")
    mallory = dataclasses.replace(fed.idp, client=await aiohttp_client(fed.idp.client.server))
    code, verifier, _ = await login_for_code(mallory, email, ATTACKER_PASSWORD)
    tokens = await (await exchange(mallory, code, verifier)).json()
    assert "refresh_token" in tokens
    await fed.services.durable.link_identity(IdentityLink(
        realm="acme", provider_id="github", issuer=fed.github.base_url, subject="666", user_id=squatter.id,
        email=None, claims={}, created_at=datetime.now().astimezone()))
    fed.clock.advance(1)  # the owner comes later
    return squatter, mallory, tokens


async def assert_attacker_locked_out(fed, mallory, tokens, email: str = "gail@example.com") -> None:
    resp, _ = await authorize(mallory, prompt="none")  # her browser session is over
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    resp = await refresh(mallory, tokens["refresh_token"])  # her refresh family is revoked
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
    resp = await mallory.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert resp.status == 401  # her access token too
    resp, _ = await authorize(mallory)  # her password no longer signs in
    resp = await submit_login(mallory, resp.headers["Location"], email, ATTACKER_PASSWORD)
    assert resp.status == 400 and "not correct" in await resp.text()
    # Her upstream identity is no longer linked to the account.
    assert await fed.services.durable.find_identity("acme", fed.github.base_url, "666") is None


async def test_verified_google_email_takes_over_a_pre_registered_account(make_fed, aiohttp_client):
    """The full attack: Mallory pre-registers gail@ with a password and holds a session,
    tokens and a link; Gail signs in with Google, which verified gail@. Gail gets the
    account (same `sub`, verified), and nothing of Mallory's works any more."""
    fed = await make_fed(**PERMISSIVE)
    squatter, mallory, tokens = await attacker_with_everything(fed, aiohttp_client)

    _, info = await login_and_userinfo(fed)  # Gail, in her own browser, at the same second
    assert info["sub"] == squatter.id and info["email"] == "gail@example.com" and info["email_verified"] is True
    link = await fed.services.durable.find_identity("acme", fed.google.issuer, "google-1001")
    assert link.user_id == squatter.id
    assert await fed.services.accounts.password_hash("acme", squatter.id) is None

    fed.clock.advance(1)
    await assert_attacker_locked_out(fed, mallory, tokens)
    # Gail's own session lasts (prompt=none gives her a code).
    resp, _ = await authorize(fed.idp, prompt="none")
    assert "code" in query_of(resp.headers["Location"])

    events = {e.type: e for e in await fed.services.durable.list_events("acme")}
    assert events["password_cleared"].data["via"] == "upstream:google"
    assert events["identities_unlinked"].data["providers"] == ["github"]
    assert events["email_verified"].data["families_revoked"] == 1
    assert events["identity_linked"].user_id == squatter.id


async def test_verified_github_email_takes_over_too(make_fed, aiohttp_client):
    """The same rule for GitHub's verified primary email."""
    fed = await make_fed(**PERMISSIVE)
    squatter, mallory, tokens = await attacker_with_everything(fed, aiohttp_client, "octo@example.com")
    _, info = await login_and_userinfo(fed, "github")
    assert info["sub"] == squatter.id and info["email_verified"] is True
    fed.clock.advance(1)
    await assert_attacker_locked_out(fed, mallory, tokens, "octo@example.com")


async def test_an_unverified_upstream_email_never_proves_anything(make_fed, aiohttp_client):
    """Mallory's upstream did not verify gail@: she gets an email-less account of her own,
    and the pre-registered account (and whatever is on it) is untouched."""
    fed = await make_fed(**PERMISSIVE)
    squatter = await fed.idp.add_user("gail@example.com", ATTACKER_PASSWORD, verified=False)
    fed.google.user = GoogleUser(sub="g-mallory", email="gail@example.com", email_verified=False)
    _, info = await login_and_userinfo(fed)
    assert info["sub"] != squatter.id and "email" not in info
    assert not (await fed.services.durable.get_user("acme", squatter.id)).email_verified
    assert await fed.services.accounts.password_hash("acme", squatter.id) is not None


async def test_owner_registers_after_an_unverified_upstream_login(fed):
    """The order reversed: Mallory's unverified upstream login first leaves the address
    free, so Gail can still make her account with it."""
    fed.google.user = GoogleUser(sub="g-mallory", email="gail@example.com", email_verified=False)
    await login_and_userinfo(fed)
    assert await fed.services.durable.get_user_by_email("acme", "gail@example.com") is None
    gail = await fed.idp.add_user("gail@example.com", verified=True)
    assert await fed.services.durable.list_identities("acme", gail.id) == []


async def test_a_linked_upstream_that_now_verifies_the_address_proves_it(make_fed, aiohttp_client):
    """A link made before the address was verified (an account made before this fix), whose
    upstream now verifies that very address: the upstream's owner proves it. The account
    becomes verified, keeps that link, and loses what was set before (password, other links)."""
    fed = await make_fed(**PERMISSIVE)
    squatter, mallory, tokens = await attacker_with_everything(fed, aiohttp_client)
    await fed.services.durable.link_identity(IdentityLink(
        realm="acme", provider_id="google", issuer=fed.google.issuer, subject="google-1001",
        user_id=squatter.id, email=None, claims={}, created_at=datetime.now().astimezone()))
    _, info = await login_and_userinfo(fed)
    assert info["sub"] == squatter.id and info["email_verified"] is True
    links = await fed.services.durable.list_identities("acme", squatter.id)
    assert [(link.provider_id, link.subject) for link in links] == [("google", "google-1001")]
    fed.clock.advance(1)
    await assert_attacker_locked_out(fed, mallory, tokens)


async def test_a_disabled_account_is_not_taken_over(fed):
    """An operator disabled the account: a verified upstream email changes nothing on it
    (no proof effects, no link) and the client gets `access_denied`."""
    squatter = await fed.idp.add_user("gail@example.com", ATTACKER_PASSWORD, verified=False)
    await fed.services.durable.update_user("acme", squatter.id, disabled=True)
    resp = await refused_login(fed)
    assert resp.status == 303 and "error=access_denied" in resp.headers["Location"]
    assert not (await fed.services.durable.get_user("acme", squatter.id)).email_verified
    assert await fed.services.accounts.password_hash("acme", squatter.id) is not None
    assert await fed.services.durable.list_identities("acme", squatter.id) == []


# ---------------------------------------------------------------- unverified_email: refuse


async def refused_login(fed, provider="google"):
    fed.idp.client.session.cookie_jar.clear()
    upstream, _ = await start_at_login_page(fed, provider)
    return await open_callback(fed, await through_upstream(fed, upstream))


async def test_refuse_setting_refuses_an_unverified_or_unasserted_email(make_fed):
    """`unverified_email: refuse`: `email_verified` false, or absent (OIDC Core §5.1: only
    a true value verifies), or a GitHub address that is not verified: a readable refusal
    page, no account, no link, no session; the cause is in the audit trail."""
    fed = await make_fed(google_extra="unverified_email: refuse", github_extra="unverified_email: refuse")
    for verified in (False, None):
        fed.google.user = GoogleUser(sub="g-x", email="x@example.com", email_verified=verified)
        resp = await refused_login(fed)
        assert resp.status == 403 and resp.content_type == "text/html" and "Location" not in resp.headers
    fed.github.emails = [{"email": "octo@example.com", "primary": True, "verified": False}]
    resp = await refused_login(fed, "github")
    assert resp.status == 403
    assert await fed.services.durable.get_user_by_email("acme", "x@example.com") is None
    assert await fed.services.durable.find_identity("acme", fed.google.issuer, "g-x") is None
    assert await fed.services.durable.find_identity("acme", fed.github.base_url, "583231") is None
    assert "tessera_session_acme" not in {c.key for c in fed.idp.client.session.cookie_jar}
    refusals = [e for e in await fed.services.durable.list_events("acme") if e.type == FEDERATION_REFUSED]
    assert len(refusals) == 3 and all("not verified" in e.data["reason"] for e in refusals)
    # A verified email still signs in with the same setting.
    fed.google.user = GoogleUser(sub="g-y", email="y@example.com", email_verified=True)
    _, info = await login_and_userinfo(fed)
    assert info["email"] == "y@example.com"


async def test_the_refusal_page_is_the_same_for_every_cause(make_fed):
    """Issue 16 item 3 (OWASP ASVS V6.3 "no user enumeration"): whether an account has the
    address, whether it is verified, or the setting forbids linking, the page says the
    same thing and names no address."""
    fed = await make_fed(google_extra="unverified_email: refuse", github_extra="link_by_verified_email: false")
    await fed.idp.add_user("verified@example.com", verified=True)
    await fed.idp.add_user("pending@example.com", verified=False)
    pages = []
    for email in ("nobody@example.com", "verified@example.com", "pending@example.com"):
        fed.google.user = GoogleUser(sub="g-" + email, email=email, email_verified=False)
        resp = await refused_login(fed)
        pages.append((resp.status, await resp.text()))
    fed.github.emails = [{"email": "verified@example.com", "primary": True, "verified": True}]
    resp = await refused_login(fed, "github")
    pages.append((resp.status, await resp.text()))
    normalised = {(status, re.sub(r"flow=[\w-]+", "flow=F", html)) for status, html in pages}
    assert len(normalised) == 1
    status, html = normalised.pop()
    assert status == 403 and "@example.com" not in html
    assert not any(word in html for word in ("exists", "verif", "already"))


async def test_a_verified_upstream_email_that_is_no_address_is_never_stored(fed):
    """A hostile upstream "verifies" text that is no mailbox (two recipients, a display
    name, a control character): the sign-in works, the account gets no email, nothing links
    to gail@, and no mail header can ever be built from it (issue 16 item 6)."""
    for n, hostile in enumerate(("gail@example.com, mallory@evil.example", "Gail <gail@example.com>")):
        gail = await fed.idp.add_user(f"owner{n}@example.com", verified=True)
        fed.google.user = GoogleUser(sub=f"g-hostile-{n}", email=hostile, email_verified=True)
        _, info = await login_and_userinfo(fed)
        assert info["sub"] != gail.id and "email" not in info, hostile
        link = await fed.services.durable.find_identity("acme", fed.google.issuer, f"g-hostile-{n}")
        assert link is not None and link.email is None


async def test_control_characters_in_the_upstream_sub_or_email_are_refused(fed):
    """Issue 23 item 8: an upstream `sub` or `email` with a control character is refused
    (the one refusal page, nothing stored); the cause is in the audit trail."""
    hostile = (("g-\x00-nul", "nul@example.com"), ("g-crlf", "gail@example.com\r\nBcc: x@evil.example"),
               ("g" * 300, "long@example.com"))
    for n, (sub, email) in enumerate(hostile):
        fed.google.user = GoogleUser(sub=sub, email=email, email_verified=True)
        resp = await refused_login(fed)
        assert resp.status == 403 and "could not be signed in" in await resp.text(), n
    assert await fed.services.durable.find_identity("acme", fed.google.issuer, "g-crlf") is None
    assert await fed.services.durable.get_user_by_email("acme", "long@example.com") is None
    refusals = [e for e in await fed.services.durable.list_events("acme") if e.type == FEDERATION_REFUSED]
    assert len(refusals) == 3


async def test_profile_claims_with_control_characters_or_no_bound_are_dropped(fed):
    """What is kept of the upstream profile is plain and bounded: a name with a control
    character, or a 5 KB picture URL, is not stored or released."""
    fed.google.user = GoogleUser(sub="g-profile", name="Gail\x1b[31m", picture="https://lh3.example/" + "p" * 5000)
    _, info = await login_and_userinfo(fed)
    assert "name" not in info and "picture" not in info and info["email"] == "gail@example.com"


async def test_upstream_numbers_outside_interoperable_json_are_dropped(fed):
    """An upstream number is kept only if every JSON parser reads it the same (RFC 7493
    §2.2: integers within ±(2**53 - 1), finite): a 2**70 `name` or an infinite `picture`
    is not stored, and the tokens and userinfo built from the profile are still issued."""
    fed.google.id_token_claims = {"name": 2**70, "picture": float("inf"), "zoneinfo": 2**53 - 1}
    _, info = await login_and_userinfo(fed)
    assert "name" not in info and "picture" not in info and info["email"] == "gail@example.com"
    user = await fed.services.durable.get_user_by_email("acme", "gail@example.com")
    assert "name" not in user.profile and "picture" not in user.profile and user.profile["zoneinfo"] == 2**53 - 1
