"""The callback's `state` (issue 4 item 3): only an unguessable, single-use handle bound to
the browser that started the login goes upstream; an unknown, expired, replayed or foreign
state is refused with a readable page, never a redirect, and never signs anyone in."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.federation.browser import open_callback, start_at_login_page, through_upstream, tokens_and_userinfo
from tests.oauth.conftest import query_of


def refused(resp) -> bool:
    return resp.status == 400 and resp.content_type == "text/html" and "Location" not in resp.headers


async def test_state_replay_is_refused(fed):
    """A callback URL used once cannot be used again (the state is taken atomically)."""
    upstream, verifier = await start_at_login_page(fed, "google")
    callback = await through_upstream(fed, upstream)
    first = await open_callback(fed, callback)
    assert first.status == 303
    replay = await open_callback(fed, callback)
    assert refused(replay) and "already used" in await replay.text()
    tokens, _ = await tokens_and_userinfo(fed, query_of(first.headers["Location"])["code"], verifier)
    assert tokens["access_token"]  # the first use still completes normally


async def test_unknown_state_is_refused(fed):
    upstream, _ = await start_at_login_page(fed, "google")
    callback = await through_upstream(fed, upstream)
    forged = callback.replace("state=", "state=x")
    resp = await open_callback(fed, forged)
    assert refused(resp)


async def test_missing_state_is_refused(fed):
    resp = await fed.idp.client.get("/login/google/callback?code=abc", allow_redirects=False)
    assert refused(resp) and "no valid state" in await resp.text()


async def test_expired_state_is_refused(fed):
    """The user has 10 minutes at the upstream."""
    upstream, _ = await start_at_login_page(fed, "google")
    callback = await through_upstream(fed, upstream)
    fed.clock.advance(10 * 60 + 1)
    resp = await open_callback(fed, callback)
    assert refused(resp) and "expired" in await resp.text()


async def test_state_from_another_browser_is_refused(fed, aiohttp_client):
    """Login CSRF: an attacker's callback URL opened in the victim's browser (which lacks the
    attacker's flow-binding cookie) signs nobody in."""
    upstream, _ = await start_at_login_page(fed, "google")
    callback = await through_upstream(fed, upstream)
    fed.idp.client.session.cookie_jar.clear()  # the victim's browser
    resp = await open_callback(fed, callback)
    assert refused(resp) and "another browser" in await resp.text()
    assert "tessera_session_acme" not in {c.key for c in fed.idp.client.session.cookie_jar}
    assert await fed.services.durable.get_user_by_email("acme", "gail@example.com") is None


async def test_callback_from_another_browser_does_not_burn_the_state(fed):
    """Issue 23 item 14: the flow's browser binding is checked before the state is used up,
    so a leaked callback URL opened elsewhere (a proxy log, a shared screen) is refused
    without costing the owner their login: their own browser still completes it."""
    upstream, verifier = await start_at_login_page(fed, "google")
    callback = await through_upstream(fed, upstream)
    owner_cookies = list(fed.idp.client.session.cookie_jar)
    fed.idp.client.session.cookie_jar.clear()  # someone else's browser
    resp = await open_callback(fed, callback)
    assert refused(resp) and "another browser" in await resp.text()
    for cookie in owner_cookies:  # back in the owner's browser
        fed.idp.client.session.cookie_jar.update_cookies({cookie.key: cookie.value})
    resp = await open_callback(fed, callback)
    assert resp.status == 303, await resp.text()
    tokens, _ = await tokens_and_userinfo(fed, query_of(resp.headers["Location"])["code"], verifier)
    assert tokens["access_token"]
    assert refused(await open_callback(fed, callback))  # and then it is used up


async def test_state_is_bound_to_its_provider(fed):
    """A state issued for Google is not accepted on GitHub's callback."""
    upstream, _ = await start_at_login_page(fed, "google")
    callback = await through_upstream(fed, upstream)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    resp = await fed.idp.client.get(f"/login/github/callback?code=c&state={state}", allow_redirects=False)
    assert refused(resp)


async def test_unknown_provider_is_not_found(fed):
    for path in ("/login/nope", "/login/nope/callback?state=x", "/oauth/nope", "/login/password"):
        resp = await fed.idp.client.get(path, allow_redirects=False)
        assert resp.status == 404 and resp.content_type == "text/html", path


async def test_start_without_flow_or_client_is_refused(fed):
    resp = await fed.idp.client.get("/login/google", allow_redirects=False)
    assert resp.status == 400 and resp.content_type == "text/html"


async def test_start_with_a_flow_of_another_browser_is_refused(fed):
    """The button's `?flow=` only works in the browser that holds the flow's cookie."""
    from tests.oauth.flow import authorize

    resp, _ = await authorize(fed.idp)
    flow_url = resp.headers["Location"].replace("/login?", "/login/google?")
    fed.idp.client.session.cookie_jar.clear()
    resp = await fed.idp.client.get(flow_url, allow_redirects=False)
    assert resp.status == 400 and "another browser" in await resp.text()


async def test_concurrent_use_of_one_state_signs_in_once(fed):
    """The state is taken atomically (STYLE.md §7): of two simultaneous callbacks with the
    same state exactly one proceeds."""
    import asyncio

    upstream, _ = await start_at_login_page(fed, "google")
    callback = await through_upstream(fed, upstream)
    results = await asyncio.gather(open_callback(fed, callback), open_callback(fed, callback))
    assert sorted(r.status for r in results) == [303, 400]
