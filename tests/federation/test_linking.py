"""Account linking (seed "Federation mapping", issue 4 item 4, issue 16 items 1 and 3): a
verified upstream email links to the realm's user with that email; an unverified one never
does, and is never given to an account (account takeover defence). Refusals are one
generic page; they write nothing. (A verified upstream email arriving for an unverified
local account: tests/federation/test_takeover.py.)"""

from __future__ import annotations

from engine import events
from tests.federation.browser import login_and_userinfo, open_callback, start_at_login_page, through_upstream
from tests.federation.fakes import GoogleUser
from tests.oauth.flow import exchange, login_for_code


async def refused_login(fed, provider="google"):
    fed.idp.client.session.cookie_jar.clear()
    upstream, _ = await start_at_login_page(fed, provider)
    return await open_callback(fed, await through_upstream(fed, upstream))


async def test_verified_email_links_to_the_existing_password_user(fed):
    """Upstream-verified email == a password user's (verified) email → link: the same `sub`
    at /userinfo; the password still works; `identity_linked` is audited."""
    alice = await fed.idp.add_user("alice@example.com", verified=True, name="Alice")
    fed.google.user = GoogleUser(sub="g-alice", email="Alice@Example.com", email_verified=True,
                                 name="Alice A.", picture="https://lh3.example/alice.png")
    _, info = await login_and_userinfo(fed)
    assert info["sub"] == alice.id and info["email"] == "alice@example.com"
    assert info["picture"] == "https://lh3.example/alice.png"
    linked = [e for e in await fed.services.durable.list_events("acme") if e.type == events.IDENTITY_LINKED]
    assert [(e.user_id, e.data["via"], e.data["provider"]) for e in linked] == [(alice.id, "verified_email", "google")]
    assert not any(e.type == events.USER_PROVISIONED for e in await fed.services.durable.list_events("acme"))
    fed.idp.client.session.cookie_jar.clear()
    code, verifier, _ = await login_for_code(fed.idp)  # password login: same account
    resp = await exchange(fed.idp, code, verifier)
    assert resp.status == 200


async def test_github_verified_primary_email_links_too(fed):
    """The same rule for GitHub: the verified primary email links to the existing user."""
    octo = await fed.idp.add_user("octo@example.com", verified=True)
    _, info = await login_and_userinfo(fed, "github")
    assert info["sub"] == octo.id


async def test_unverified_email_never_links_to_an_existing_account(fed):
    """Account takeover defence (issue 16 item 1): an upstream that did not verify the email
    cannot reach the account with that email. With `unverified_email: no_email` (the
    default) it gets an account of its own *without* that email; Alice's is untouched."""
    alice = await fed.idp.add_user("alice@example.com", verified=True)
    fed.google.user = GoogleUser(sub="g-mallory", email="alice@example.com", email_verified=False)
    _, info = await login_and_userinfo(fed)
    assert info["sub"] != alice.id and "email" not in info
    link = await fed.services.durable.find_identity("acme", fed.google.issuer, "g-mallory")
    assert link.user_id == info["sub"] and link.email is None
    assert (await fed.services.durable.get_user("acme", info["sub"])).email is None
    assert (await fed.services.durable.get_user("acme", alice.id)).profile == {"name": "Alice"}
    assert await fed.services.durable.list_identities("acme", alice.id) == []


async def test_github_email_without_verification_never_links(fed):
    """GitHub's public /user email (no /user/emails) is unverified: it does not link, and
    the account made for the GitHub user does not get it."""
    public = await fed.idp.add_user("public@example.com", verified=True)
    fed.github.emails_status = 404
    fed.github.user = {**fed.github.user, "email": "public@example.com"}
    _, info = await login_and_userinfo(fed, "github")
    assert info["sub"] != public.id and "email" not in info
    assert await fed.services.durable.list_identities("acme", public.id) == []


async def test_link_by_verified_email_can_be_turned_off(make_fed):
    """`link_by_verified_email: false`: a matching verified email is not linked; refused
    with the generic page."""
    fed = await make_fed(google_extra="link_by_verified_email: false")
    await fed.idp.add_user("gail@example.com", verified=True)
    resp = await refused_login(fed)
    assert resp.status == 403 and "could not be signed in" in await resp.text()
    assert await fed.services.durable.find_identity("acme", fed.google.issuer, "google-1001") is None


async def test_an_issuer_other_than_google_links_by_email_only_when_told(make_fed):
    """An OpenID provider other than Google (here the fake on loopback, as a tenant's own
    issuer would be) does not link by email unless `link_by_verified_email: true` is
    written: its `email_verified` may be whatever a tenant or user asserted ("nOAuth")."""
    fed = await make_fed(google_links_by_email=None)
    owner = await fed.idp.add_user("gail@example.com", verified=True)
    resp = await refused_login(fed)
    assert resp.status == 403 and "could not be signed in" in await resp.text()
    assert await fed.services.durable.list_identities("acme", owner.id) == []


def test_link_by_email_defaults_true_for_google_only():
    from plugins.google import GOOGLE_ISSUER, GoogleSettings

    base = {"id": "g", "type": "google", "client_id": "c", "client_secret": "s"}
    assert GoogleSettings.model_validate(base).link_by_verified_email is True
    assert GoogleSettings.model_validate({**base, "issuer": GOOGLE_ISSUER}).link_by_verified_email is True
    other = {**base, "issuer": "https://login.example.net/tenant"}
    assert GoogleSettings.model_validate(other).link_by_verified_email is False
    assert GoogleSettings.model_validate({**other, "link_by_verified_email": True}).link_by_verified_email is True


async def test_refusal_page_offers_the_way_back(make_fed):
    """The pending request survives a refusal: the page links back to the login page."""
    fed = await make_fed(google_extra="unverified_email: refuse")
    fed.google.user = GoogleUser(email="gail@example.com", email_verified=False)
    resp = await refused_login(fed)
    html = await resp.text()
    assert "Choose another way to sign in" in html and "/login?flow=" in html


async def test_identity_is_linked_to_one_user_only(fed):
    """Once linked, an identity keeps its user even if the email later matches another."""
    _, first = await login_and_userinfo(fed)
    await fed.idp.add_user("other@example.com", verified=True)
    fed.google.user = GoogleUser(email="other@example.com")  # same sub, new email upstream
    _, second = await login_and_userinfo(fed)
    assert second["sub"] == first["sub"] and second["email"] == "gail@example.com"


async def test_user_without_any_email_is_provisioned(fed):
    """An upstream account with no email at all still gets a (email-less) user."""
    fed.github.emails = []
    _, info = await login_and_userinfo(fed, "github")
    assert "email" not in info and info["name"] == "The Octocat"


async def test_disabled_user_is_denied(fed):
    """A linked user who has been disabled gets `access_denied` at the client, no session."""
    _, info = await login_and_userinfo(fed)
    await fed.services.durable.update_user("acme", info["sub"], disabled=True)
    resp = await refused_login(fed)
    assert resp.status == 303 and "error=access_denied" in resp.headers["Location"]
    assert "tessera_session_acme" not in {c.key for c in fed.idp.client.session.cookie_jar}
