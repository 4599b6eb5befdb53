"""The authorization endpoint: RFC 6749 §4.1.1–4.1.2.1, OIDC Core §3.1.2, RFC 7636,
RFC 9207."""

from __future__ import annotations

import pytest

from tests.oauth.conftest import SPA_REDIRECT, query_of
from tests.oauth.flow import authorize, login_for_code, submit_login


async def test_unknown_client_gets_an_html_page_never_a_redirect(idp):
    """§4.1.2.1: an invalid client_id must not redirect."""
    resp, _ = await authorize(idp, client_id="nope")
    assert resp.status == 400 and "Location" not in resp.headers
    assert resp.content_type == "text/html" and "not registered" in await resp.text()


@pytest.mark.parametrize("uri", ["http://localhost:3000/callback/", "http://localhost:3000/callback?x=1",
                                 "http://LOCALHOST:3000/callback", "https://evil.example/callback"])
async def test_redirect_uri_must_match_exactly(idp, uri):
    """§3.1.2.3 / Security BCP §4.1: exact string matching; no redirect on mismatch."""
    resp, _ = await authorize(idp, redirect_uri=uri)
    assert resp.status == 400 and "Location" not in resp.headers
    assert "redirect_uri is not registered" in await resp.text()


async def test_errors_after_redirect_validation_go_back_with_state_and_iss(idp):
    """§4.1.2.1 and RFC 9207 §2: error, state and iss in the redirect."""
    resp, _ = await authorize(idp, scope="openid videos.read", state="abc def")
    assert resp.status == 303
    query = query_of(resp.headers["Location"])
    assert query["error"] == "invalid_scope" and query["state"] == "abc def"
    assert query["iss"] == idp.issuer


@pytest.mark.parametrize(("extra", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": None}, "invalid_request"),
    ({"request": "eyJ..."}, "request_not_supported"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
])
async def test_invalid_requests_are_redirected_with_their_error(idp, extra, error):
    """§4.1.2.1 error codes; OIDC Core §3.1.2.6."""
    resp, _ = await authorize(idp, **extra)
    assert resp.status == 303
    assert query_of(resp.headers["Location"])["error"] == error


async def test_public_client_without_pkce_is_refused(idp):
    """RFC 7636 §4.4.1 + seed: PKCE is required for public clients."""
    resp, _ = await authorize(idp, challenge=None)
    query = query_of(resp.headers["Location"])
    assert query["error"] == "invalid_request" and "PKCE" in query["error_description"]


async def test_plain_pkce_is_refused(idp):
    """Only S256 is offered (code_challenge_methods_supported)."""
    resp = await idp.client.get("/authorize", params={
        "response_type": "code", "client_id": "spa", "redirect_uri": SPA_REDIRECT, "scope": "openid",
        "code_challenge": "a" * 43, "code_challenge_method": "plain"}, allow_redirects=False)
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


async def test_prompt_none_without_session_is_login_required(idp):
    """OIDC Core §3.1.2.6: login_required when prompt=none and nobody is signed in."""
    resp, _ = await authorize(idp, prompt="none")
    query = query_of(resp.headers["Location"])
    assert query["error"] == "login_required" and query["state"] == "st-1"


async def test_login_then_code_with_state_and_iss(idp):
    """§4.1.2: the code comes back with the unchanged state and RFC 9207 iss."""
    await idp.add_user()
    code, _, query = await login_for_code(idp, state="x y+z/é")
    assert code and query["state"] == "x y+z/é" and query["iss"] == idp.issuer


async def test_sso_second_client_needs_no_login(idp):
    """A browser session gives a second client of the realm a code without a new login."""
    await idp.add_user()
    await login_for_code(idp)
    resp, _ = await authorize(idp, client_id="web", redirect_uri="https://web.example.com/cb",
                              scope="openid", prompt="none", challenge=None)
    # `web` requires consent: with prompt=none that is consent_required, not login_required.
    assert query_of(resp.headers["Location"])["error"] == "consent_required"
    resp, _ = await authorize(idp, prompt="none")
    assert "code" in query_of(resp.headers["Location"])


async def test_session_cookie_flags(idp):
    """HttpOnly, SameSite=Lax (Secure only with an https base URL, which tests are not)."""
    await idp.add_user()
    resp, _ = await authorize(idp)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    cookie = next(v for k, v in resp.cookies.items() if k.startswith("tessera_session_"))
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"


async def test_prompt_login_forces_a_new_login(idp):
    """OIDC Core §3.1.2.1 prompt=login."""
    await idp.add_user()
    await login_for_code(idp)
    resp, _ = await authorize(idp, prompt="login")
    assert "/login?flow=" in resp.headers["Location"]


async def test_max_age_exceeded_forces_login(idp):
    """OIDC Core §3.1.2.1 max_age."""
    await idp.add_user()
    await login_for_code(idp)
    idp.clock.advance(120)
    resp, _ = await authorize(idp, max_age="60")
    assert "/login?flow=" in resp.headers["Location"]
    resp, _ = await authorize(idp, max_age="600")
    assert "code=" in resp.headers["Location"]


async def test_post_is_accepted(idp):
    """OIDC Core §3.1.2.1: GET and POST."""
    resp = await idp.client.post("/authorize", data={"client_id": "nope"}, allow_redirects=False)
    assert resp.status == 400


# --------------------------------------------------------------------------- bounds (issue 23 item 9)


@pytest.mark.parametrize(("name", "value"), [
    ("nonce", "n" * 513),
    ("login_hint", "a" * 250 + "@example.com"),
    ("ui_locales", "en " * 100),
    ("acr_values", "x" * 513),
    ("claims", '{"userinfo": {"' + "x" * 4100 + '": null}}'),
    ("scope", "openid " + "profile " * 300),
    ("scope", " ".join(["openid"] + [f"s{n}" for n in range(64)])),
])
async def test_oversized_parameters_are_invalid_request_back_to_the_client(idp, name, value):
    """Generous bounds (documented in engine.oauth.authorize): past them the request is
    `invalid_request`, redirected with `state` once the redirect URI is validated (RFC 6749
    §4.1.2.1), before any flow is stored."""
    resp, _ = await authorize(idp, state="st-1", **{name: value})
    assert resp.status == 303
    query = query_of(resp.headers["Location"])
    assert query["error"] == "invalid_request" and query["state"] == "st-1"
    assert len(query["error_description"]) <= 200
    assert "flow=" not in resp.headers["Location"]


async def test_real_client_sizes_still_work(idp):
    """A 2 KB base64url `state`, a 512-character nonce and a 255-character login_hint pass."""
    resp, _ = await authorize(idp, state="s" * 2048, nonce="n" * 512, login_hint="h" * 255,
                              ui_locales="fr-CA fr en", acr_values="urn:mace:incommon:iap:silver")
    assert resp.status == 303 and "/login?flow=" in resp.headers["Location"]


@pytest.mark.parametrize("state", ["s" * 2049, "é" * 400, "&" * 700])
async def test_an_oversized_state_is_refused_and_never_echoed(idp, state):
    """The error redirect stays small: an oversized `state` (measured URL-encoded, as it
    would travel back) is not echoed, and the redirect carries `invalid_request`."""
    resp, _ = await authorize(idp, state=state)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert len(location) < 1024
    query = query_of(location)
    assert query["error"] == "invalid_request" and "state" not in query


async def test_unknown_scopes_are_not_echoed_at_length(idp):
    resp, _ = await authorize(idp, scope="openid " + " ".join(f"{'x' * 30}{n}" for n in range(60)))
    assert resp.status == 303 and len(resp.headers["Location"]) < 1024
    assert query_of(resp.headers["Location"])["error"] == "invalid_scope"


@pytest.mark.parametrize("extra", [
    {"redirect_uri": SPA_REDIRECT + "x" * 3000},
    {"client_id": "c" * 300},
    {"x": "y" * 9000},
])
async def test_an_oversized_request_is_a_page_before_the_redirect_uri_is_known_good(idp, extra):
    """Over the bounds of `client_id`, `redirect_uri` or the whole request (8 KB): an HTML
    page, never a redirect (§4.1.2.1)."""
    resp = await idp.client.post("/authorize", data={
        "response_type": "code", "client_id": "spa", "redirect_uri": SPA_REDIRECT, "scope": "openid",
        "state": "st-1", **extra}, allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers
    assert resp.content_type == "text/html"
