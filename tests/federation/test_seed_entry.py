"""The seed's entry `GET /oauth/<provider>?client_id=…&redirect_uri=…&state=…` (and
`/login/<provider>?…`): `/authorize` with the provider chosen, every check applied
(RFC 6749 §4.1.2.1 redirect URI, RFC 7636 PKCE for public clients); the upstream returns
to `/oauth/callback/<provider>` (issue 4 item 5)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.federation.browser import open_callback, through_upstream, tokens_and_userinfo
from tests.federation.fakes import s256
from tests.oauth.conftest import SPA_REDIRECT, WEB_REDIRECT, WEB_SECRET, pkce_pair, query_of


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_seed_style_google_login_end_to_end(fed):
    """Seed steps 1-10: /oauth/google → Google → /oauth/callback/google → the client's
    redirect URI with a code and its state → /token → /userinfo."""
    verifier, challenge = pkce_pair()
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": SPA_REDIRECT, "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    upstream = resp.headers["Location"]
    assert query(upstream)["redirect_uri"] == f"{fed.idp.issuer}/oauth/callback/google"
    callback = await through_upstream(fed, upstream)
    assert callback.startswith(f"{fed.idp.issuer}/oauth/callback/google?")
    resp = await open_callback(fed, callback)
    assert resp.status == 303 and resp.headers["Location"].startswith(SPA_REDIRECT + "?")
    answer = query_of(resp.headers["Location"])
    assert answer["state"] == "xyz"
    tokens, info = await tokens_and_userinfo(fed, answer["code"], verifier)
    assert info["email"] == "gail@example.com"
    assert set(tokens["scope"].split()) == {"openid", "profile", "email"}  # the default scopes
    assert "id_token" in tokens


async def test_seed_style_github_login_for_a_confidential_client(fed):
    """`/login/github?client_id=…` (the root realm's issuer) works the same for a
    confidential client."""
    resp = await fed.idp.client.get("/login/github", params={
        "client_id": "web", "redirect_uri": WEB_REDIRECT, "state": "s1", "scope": "openid email"},
        allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert query(resp.headers["Location"])["redirect_uri"] == f"{fed.idp.issuer}/login/github/callback"
    resp = await open_callback(fed, await through_upstream(fed, resp.headers["Location"]))
    answer = query_of(resp.headers["Location"])
    tokens, info = await tokens_and_userinfo(fed, answer["code"], None, auth=("web", WEB_SECRET),
                                             redirect_uri=WEB_REDIRECT)
    assert info["email"] == "octo@example.com" and tokens["scope"] == "openid email"


async def test_unregistered_redirect_uri_is_an_html_error(fed):
    """§4.1.2.1: an unregistered redirect_uri is never redirected to: an HTML error page,
    and nobody is sent upstream."""
    _, challenge = pkce_pair()
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": "https://evil.example/cb", "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False)
    assert resp.status == 400 and resp.content_type == "text/html" and "Location" not in resp.headers
    assert "redirect_uri is not registered" in await resp.text()
    assert fed.google.authorize_requests == [] and fed.google.discovery_fetches == 0


async def test_unknown_client_is_an_html_error(fed):
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "nobody", "redirect_uri": SPA_REDIRECT}, allow_redirects=False)
    assert resp.status == 400 and resp.content_type == "text/html" and "Location" not in resp.headers


async def test_public_client_without_pkce_is_refused(fed):
    """Seed security musts / RFC 7636: PKCE is required for public clients: the error goes
    back to the (validated) redirect URI, and nobody is sent upstream."""
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": SPA_REDIRECT, "state": "xyz"}, allow_redirects=False)
    assert resp.status == 303
    answer = query_of(resp.headers["Location"])
    assert resp.headers["Location"].startswith(SPA_REDIRECT)
    assert answer["error"] == "invalid_request" and "PKCE" in answer["error_description"]
    assert answer["state"] == "xyz" and fed.google.authorize_requests == []


async def test_plain_pkce_is_refused(fed):
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": SPA_REDIRECT, "state": "xyz",
        "code_challenge": "a" * 43, "code_challenge_method": "plain"}, allow_redirects=False)
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


async def test_scope_not_allowed_is_refused(fed):
    _, challenge = pkce_pair()
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": SPA_REDIRECT, "scope": "openid videos.read",
        "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False)
    assert query_of(resp.headers["Location"])["error"] == "invalid_scope"


async def test_wrong_pkce_verifier_at_token_fails(fed):
    """The client's PKCE challenge is kept in the flow and checked at /token (RFC 7636 §4.6)."""
    _, challenge = pkce_pair()
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": SPA_REDIRECT, "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False)
    resp = await open_callback(fed, await through_upstream(fed, resp.headers["Location"]))
    code = query_of(resp.headers["Location"])["code"]
    from tests.oauth.flow import exchange

    resp = await exchange(fed.idp, code, "w" * 43)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
    assert s256("w" * 43) != challenge


async def test_seed_style_access_denied_reaches_the_client(fed):
    """Upstream `access_denied` → the client's redirect URI with `access_denied` and its state."""
    fed.google.deny = True
    _, challenge = pkce_pair()
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": SPA_REDIRECT, "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False)
    resp = await open_callback(fed, await through_upstream(fed, resp.headers["Location"]))
    answer = query_of(resp.headers["Location"])
    assert answer["error"] == "access_denied" and answer["state"] == "xyz"


async def test_prompt_none_does_not_go_upstream(fed):
    """`prompt=none` forbids interaction: without a session, `login_required` at once."""
    _, challenge = pkce_pair()
    resp = await fed.idp.client.get("/oauth/google", params={
        "client_id": "spa", "redirect_uri": SPA_REDIRECT, "state": "xyz", "prompt": "none",
        "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False)
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    assert fed.google.authorize_requests == []
