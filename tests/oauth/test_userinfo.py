"""The UserInfo endpoint (OIDC Core §5.3) with Bearer tokens (RFC 6750 §2, §3)."""

from __future__ import annotations

from tests.oauth.conftest import (
    WEB_SECRET,
    WORKER_SECRET,
    basic_auth,
    issue_user_tokens,
    tampered,
    unsigned,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def assert_invalid_token(response) -> None:
    """RFC 6750 §3.1: 401 with `WWW-Authenticate: Bearer error="invalid_token"`."""
    assert response.status == 401, await response.text()
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert (await response.json())["error"] == "invalid_token"


async def alice_tokens(idp, **kwargs):
    user = await idp.add_user(name="Alice Liddell", picture="https://img.example/a.png")
    return user, await issue_user_tokens(idp, user, **kwargs)


async def test_get_returns_the_claims_of_the_granted_scopes(idp):
    """OIDC Core §5.3.2: `sub` plus the claims of the token's scopes (§5.4); no caching."""
    user, tokens = await alice_tokens(idp)
    response = await idp.client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {
        "sub": user.id,
        "name": "Alice Liddell",
        "picture": "https://img.example/a.png",
        "email": "alice@example.com",
        "email_verified": True,
    }


async def test_claims_are_limited_to_the_tokens_scopes(idp):
    """OIDC Core §5.4: without `profile` and `email` only `sub` is released."""
    user, tokens = await alice_tokens(idp, scope="openid email")
    body = await (await idp.client.get("/userinfo", headers=bearer(tokens["access_token"]))).json()
    assert body == {"sub": user.id, "email": "alice@example.com", "email_verified": True}
    tokens = await issue_user_tokens(idp, user, scope="openid")
    body = await (await idp.client.get("/userinfo", headers=bearer(tokens["access_token"]))).json()
    assert body == {"sub": user.id}


async def test_post_with_header(idp):
    """OIDC Core §5.3.1: the endpoint MUST support GET and POST."""
    user, tokens = await alice_tokens(idp)
    response = await idp.client.post("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status == 200
    assert (await response.json())["sub"] == user.id


async def test_post_with_form_parameter(idp):
    """RFC 6750 §2.2: the token as the `access_token` form-encoded body parameter."""
    user, tokens = await alice_tokens(idp)
    response = await idp.client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status == 200
    assert (await response.json())["sub"] == user.id


async def test_token_in_header_and_body_is_invalid_request(idp):
    """RFC 6750 §2: clients MUST NOT use more than one method → 400 invalid_request (§3.1)."""
    _, tokens = await alice_tokens(idp)
    response = await idp.client.post("/userinfo", data={"access_token": tokens["access_token"]},
                                     headers=bearer(tokens["access_token"]))
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_realm_path(idp):
    """OIDC Core §5.3: the realm's endpoint is served under /realms/<name> as well."""
    user, tokens = await alice_tokens(idp)
    response = await idp.client.get(f"{idp.root}/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status == 200
    assert (await response.json())["sub"] == user.id


async def test_missing_token_is_a_bare_challenge(idp):
    """RFC 6750 §3.1: without credentials → 401 with a `Bearer` challenge and no error code;
    the same for another authentication scheme and for a token in the query (§2.3 unsupported)."""
    _, tokens = await alice_tokens(idp)
    for kwargs in (
        {},
        {"headers": basic_auth("web", WEB_SECRET)},
        {"params": {"access_token": tokens["access_token"]}},
    ):
        response = await idp.client.get("/userinfo", **kwargs)
        assert response.status == 401, kwargs
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer"), challenge
        assert "error=" not in challenge


async def test_client_credentials_token_is_insufficient_scope(idp):
    """OIDC Core §5.3.3 → RFC 6750 §3.1: a valid token without `openid` (here a client
    credentials token, whose `sub` is the client) → 403 insufficient_scope naming `openid`."""
    response = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                     headers=basic_auth("worker", WORKER_SECRET))
    access_token = (await response.json())["access_token"]
    response = await idp.client.get("/userinfo", headers=bearer(access_token))
    assert response.status == 403
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="openid"'
    assert (await response.json())["error"] == "insufficient_scope"


async def test_user_token_without_openid_is_insufficient_scope(idp):
    """RFC 6750 §3.1: a user's token granted without `openid` → 403 insufficient_scope."""
    _, tokens = await alice_tokens(idp, scope="profile email")
    response = await idp.client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status == 403
    assert (await response.json())["error"] == "insufficient_scope"


async def test_tampered_signature_is_invalid_token(idp):
    """RFC 6750 §3.1 invalid_token: a signature that does not verify."""
    _, tokens = await alice_tokens(idp)
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer(tampered(tokens["access_token"]))))


async def test_alg_none_is_invalid_token(idp):
    """RFC 8725 §3.1 / RFC 6750 §3.1: an unsigned (`alg: none`) token is refused."""
    _, tokens = await alice_tokens(idp)
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer(unsigned(tokens["access_token"]))))


async def test_garbage_is_invalid_token(idp):
    """RFC 6750 §3.1 invalid_token: a malformed token."""
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer("not.a.jwt")))
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer("rt_opaque")))


async def test_expired_token_is_invalid_token(idp):
    """RFC 6750 §3.1 invalid_token: expired (access tokens live 10 minutes)."""
    _, tokens = await alice_tokens(idp)
    idp.clock.advance(599)
    assert (await idp.client.get("/userinfo", headers=bearer(tokens["access_token"]))).status == 200
    idp.clock.advance(2)
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer(tokens["access_token"])))


async def test_id_token_is_not_an_access_token(idp):
    """RFC 9068 §4: the `typ` header must be `at+jwt`; an ID token is refused."""
    _, tokens = await alice_tokens(idp)
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer(tokens["id_token"])))


async def test_token_of_another_realm_is_invalid_token(idp):
    """RFC 6750 §3.1: a token signed by realm `other` is refused at realm acme."""
    user = await idp.add_user(realm="other")
    tokens = await issue_user_tokens(idp, user, client_id="spa", realm="other")
    ok = await idp.client.get("/realms/other/userinfo", headers=bearer(tokens["access_token"]))
    assert ok.status == 200
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer(tokens["access_token"])))
    await assert_invalid_token(
        await idp.client.get(f"{idp.root}/userinfo", headers=bearer(tokens["access_token"]))
    )


async def test_revoked_token_is_invalid_token(idp):
    """RFC 7009 §2.1 with RFC 6750 §3.1: a revoked access token is refused."""
    _, tokens = await alice_tokens(idp)
    response = await idp.client.post("/revoke", data={"token": tokens["access_token"]},
                                     headers=basic_auth("web", WEB_SECRET))
    assert response.status == 200
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer(tokens["access_token"])))


async def test_disabled_user_is_invalid_token(idp):
    """OIDC Core §5.3.3 / RFC 6750 §3.1: the token's user is disabled → invalid_token."""
    user, tokens = await alice_tokens(idp)
    await idp.services.durable.update_user("acme", user.id, disabled=True)
    await assert_invalid_token(await idp.client.get("/userinfo", headers=bearer(tokens["access_token"])))
