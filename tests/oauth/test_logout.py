"""OpenID Connect RP-Initiated Logout 1.0: session ended, refresh tokens of the session
revoked, post_logout_redirect_uri only if registered, state echoed."""

from __future__ import annotations

from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange, form_fields, login_for_code

POST_LOGOUT = "http://localhost:3000/"


async def tokens(idp):
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    return await (await exchange(idp, code, verifier)).json()


async def test_logout_with_hint_ends_session_revokes_refresh_and_redirects(idp):
    body = await tokens(idp)
    resp = await idp.client.get("/logout", params={"id_token_hint": body["id_token"],
                                                   "post_logout_redirect_uri": POST_LOGOUT, "state": "bye"},
                                allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith(POST_LOGOUT)
    assert query_of(resp.headers["Location"])["state"] == "bye"
    again, _ = await authorize(idp, prompt="none")
    assert query_of(again.headers["Location"])["error"] == "login_required"
    refresh = await idp.client.post("/token", data={"grant_type": "refresh_token", "client_id": "spa",
                                                     "refresh_token": body["refresh_token"]})
    assert (await refresh.json())["error"] == "invalid_grant"
    # the session's access tokens end with it (they carry its `sid`)
    userinfo = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert userinfo.status == 401


async def test_unregistered_post_logout_redirect_is_refused(idp):
    body = await tokens(idp)
    resp = await idp.client.get("/logout", params={"id_token_hint": body["id_token"],
                                                   "post_logout_redirect_uri": "https://evil.example/"},
                                allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers


async def test_logout_without_hint_asks_for_confirmation(idp):
    await tokens(idp)
    page = await idp.client.get("/logout", allow_redirects=False)
    assert page.status == 200 and "Sign out of" in await page.text()
    session_still, _ = await authorize(idp, prompt="none")
    assert "code" in query_of(session_still.headers["Location"])
    fields = form_fields(await page.text())
    resp = await idp.client.post("/logout", data={**fields, "confirm": "yes"}, allow_redirects=False)
    assert resp.status == 200 and "You are signed out" in await resp.text()
    after, _ = await authorize(idp, prompt="none")
    assert query_of(after.headers["Location"])["error"] == "login_required"


async def test_forged_id_token_hint_is_refused(idp):
    body = await tokens(idp)
    head, payload, sig = body["id_token"].split(".")
    resp = await idp.client.get("/logout", params={"id_token_hint": f"{head}.{payload}.{sig[:-4]}AAAA"},
                                allow_redirects=False)
    assert resp.status == 400


async def test_an_access_token_is_not_an_id_token_hint(idp):
    """RP-Initiated Logout §2: `id_token_hint` is an ID token the OP issued. An access token
    (RFC 9068 `typ: at+jwt`, held by every resource server it was sent to) must not sign the
    user out without confirmation."""
    body = await tokens(idp)
    resp = await idp.client.get("/logout", params={"id_token_hint": body["access_token"],
                                                   "post_logout_redirect_uri": POST_LOGOUT},
                                allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers
    still, _ = await authorize(idp, prompt="none")
    assert "code" in query_of(still.headers["Location"])  # the session lives on


async def test_an_id_token_of_another_realm_is_not_a_hint(idp):
    from tests.oauth.conftest import issue_user_tokens

    await tokens(idp)
    stranger = await idp.add_user("bob@example.com", realm="other")
    foreign = await issue_user_tokens(idp, stranger, client_id="spa", realm="other")
    resp = await idp.client.get("/logout", params={"id_token_hint": foreign["id_token"]}, allow_redirects=False)
    assert resp.status == 400


async def test_an_expired_id_token_is_still_a_hint(idp):
    """§2: the OP accepts an expired ID token as a hint (the RP's copy has usually expired)."""
    body = await tokens(idp)
    idp.clock.advance(3600)  # past the ID token's 10 minutes, within the 12 h session
    resp = await idp.client.get("/logout", params={"id_token_hint": body["id_token"],
                                                   "post_logout_redirect_uri": POST_LOGOUT, "state": "s"},
                                allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith(POST_LOGOUT)
    after, _ = await authorize(idp, prompt="none")
    assert query_of(after.headers["Location"])["error"] == "login_required"
