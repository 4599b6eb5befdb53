"""The GitHub provider against a fake GitHub: authorize, the token exchange with
`Accept: application/json`, `GET /user`, then `GET /user/emails` for the verified primary
email (seed footer, issue 4 item 2); base URLs are settings (GitHub Enterprise Server)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.federation.browser import login_and_userinfo, open_callback, start_at_login_page, through_upstream


async def test_private_email_is_taken_from_user_emails(fed):
    """A user whose /user shows no email: the verified *primary* address of /user/emails is
    used (not the verified noreply one), and counts as verified."""
    assert fed.github.user["email"] is None
    tokens, info = await login_and_userinfo(fed, "github")
    assert info["email"] == "octo@example.com" and info["email_verified"] is True
    assert info["name"] == "The Octocat" and info["picture"] == "https://avatars.example/u/583231"
    link = await fed.services.durable.find_identity("acme", fed.github.base_url, "583231")
    assert link is not None and link.user_id == info["sub"]  # keyed by numeric id, not login


async def test_second_github_login_finds_the_same_user(fed):
    """(GitHub base URL, user id) → the same user, even after a rename of the login."""
    _, first = await login_and_userinfo(fed, "github")
    fed.github.user = {**fed.github.user, "login": "octo-renamed", "name": "Mona"}
    _, second = await login_and_userinfo(fed, "github")
    assert second["sub"] == first["sub"] and second["name"] == "Mona"
    assert second["nickname"] == "octo-renamed"


async def test_unverified_primary_email_is_not_verified(fed):
    """Only a primary address GitHub has verified counts as verified; an unverified one is
    not given to the account (issue 16 item 1, `unverified_email: no_email` by default)."""
    fed.github.emails = [{"email": "octo@example.com", "primary": True, "verified": False}]
    _, info = await login_and_userinfo(fed, "github")
    assert "email" not in info
    assert await fed.services.durable.get_user_by_email("acme", "octo@example.com") is None


async def test_without_the_email_scope_the_public_email_is_unverified(fed):
    """No `user:email` scope (/user/emails answers 404): the public /user email is
    unverified, so the account does not get it and it can never link to an account."""
    fed.github.emails_status = 404
    fed.github.user = {**fed.github.user, "email": "public@example.com"}
    _, info = await login_and_userinfo(fed, "github")
    assert "email" not in info and info["name"] == "The Octocat"
    assert await fed.services.durable.get_user_by_email("acme", "public@example.com") is None


async def test_authorize_request_and_callback_url(fed):
    """The browser goes to `{base_url}/login/oauth/authorize` with Tessera's own callback,
    an opaque state, the configured scopes and PKCE S256."""
    upstream, _ = await start_at_login_page(fed, "github")
    assert upstream.startswith(f"{fed.github.base_url}/login/oauth/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(upstream).query).items()}
    assert query["redirect_uri"] == f"{fed.idp.issuer}/login/github/callback"
    assert query["scope"] == "read:user user:email" and query["code_challenge_method"] == "S256"


async def test_user_denies_access_on_github(fed):
    """GitHub's `error=access_denied` → `access_denied` to the client; nothing stored."""
    fed.github.deny = True
    upstream, _ = await start_at_login_page(fed, "github", state="s-gh")
    resp = await open_callback(fed, await through_upstream(fed, upstream))
    query = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}
    assert resp.status == 303 and query["error"] == "access_denied" and query["state"] == "s-gh"
    assert await fed.services.durable.find_identity("acme", fed.github.base_url, "583231") is None


async def test_github_token_error_with_http_200_is_an_upstream_failure(fed):
    """GitHub reports a bad code with HTTP 200 and an `error` member: a readable page."""
    upstream, _ = await start_at_login_page(fed, "github")
    callback = await through_upstream(fed, upstream)
    fed.github.codes.clear()  # the code is no longer valid at GitHub
    resp = await open_callback(fed, callback)
    assert resp.status == 502 and "GitHub sign-in is not working right now" in await resp.text()
    assert await fed.services.durable.get_user_by_email("acme", "octo@example.com") is None


async def test_github_api_failure_is_an_upstream_failure(fed):
    """/user/emails failing with a 5xx is not taken as "no email": the login fails cleanly."""
    fed.github.emails_status = 500
    upstream, _ = await start_at_login_page(fed, "github")
    resp = await open_callback(fed, await through_upstream(fed, upstream))
    assert resp.status == 502
    assert await fed.services.durable.find_identity("acme", fed.github.base_url, "583231") is None
