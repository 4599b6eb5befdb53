"""Consent (OIDC Core §3.1.2.4): remembered per user and client, forced by prompt=consent,
denial → access_denied (RFC 6749 §4.1.2.1)."""

from __future__ import annotations

from tests.oauth.conftest import WEB_REDIRECT, query_of
from tests.oauth.flow import authorize, login_for_code, submit_consent, submit_login

WEB = {"client_id": "web", "redirect_uri": WEB_REDIRECT, "challenge": None}


async def test_consent_page_lists_scope_descriptions(idp):
    await idp.add_user()
    resp, _ = await authorize(idp, scope="openid videos.read", **WEB)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    assert "/consent?flow=" in resp.headers["Location"]
    page = await (await idp.client.get(resp.headers["Location"])).text()
    assert "Read videos" in page and "Sign you in" in page and 'name="csrf"' in page


async def test_consent_is_remembered(idp):
    await idp.add_user()
    await login_for_code(idp, scope="openid videos.read", **WEB)
    resp, _ = await authorize(idp, scope="openid videos.read", prompt="none", **WEB)
    assert "code" in query_of(resp.headers["Location"])
    # A scope beyond what was granted needs consent again.
    resp, _ = await authorize(idp, scope="openid email videos.read", prompt="none", **WEB)
    assert query_of(resp.headers["Location"])["error"] == "consent_required"


async def test_prompt_consent_asks_again(idp):
    await idp.add_user()
    await login_for_code(idp, scope="openid", **WEB)
    resp, _ = await authorize(idp, scope="openid", prompt="consent", **WEB)
    assert "/consent?flow=" in resp.headers["Location"]


async def test_denial_returns_access_denied_with_state(idp):
    await idp.add_user()
    resp, _ = await authorize(idp, scope="openid", state="s-9", **WEB)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    resp = await submit_consent(idp, resp.headers["Location"], decision="deny")
    query = query_of(resp.headers["Location"])
    assert resp.headers["Location"].startswith(WEB_REDIRECT)
    assert query["error"] == "access_denied" and query["state"] == "s-9"


async def test_consent_post_without_csrf_is_refused(idp):
    await idp.add_user()
    resp, _ = await authorize(idp, scope="openid", **WEB)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    flow_id = query_of(resp.headers["Location"])["flow"]
    resp = await idp.client.post("/consent", data={"flow": flow_id, "decision": "allow"}, allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers


async def test_a_login_inside_the_flow_satisfies_prompt_login_through_consent(idp):
    """OIDC Core §3.1.2.1 prompt=login (and max_age): the login done in this flow counts
    at the consent step after it, so the user is not sent back to the login page."""
    await idp.add_user()
    await login_for_code(idp, scope="openid", **WEB)  # a session, and consent for `openid`
    resp, _ = await authorize(idp, scope="openid videos.read", prompt="login", max_age="0", **WEB)
    assert "/login?flow=" in resp.headers["Location"]
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    assert "/consent?flow=" in resp.headers["Location"]  # videos.read is new
    resp = await submit_consent(idp, resp.headers["Location"])
    assert resp.status == 303 and "code" in query_of(resp.headers["Location"]), resp.headers["Location"]
