"""Token introspection (RFC 7662): confidential callers only; access tokens (RFC 9068 JWTs)
and refresh tokens; anything not usable right now is exactly `{"active": false}`."""

from __future__ import annotations

from tests.oauth.conftest import (
    WEB_SECRET,
    WORKER_SECRET,
    basic_auth,
    issue_user_tokens,
    jwt_parts,
    tampered,
    unsigned,
)

INACTIVE = {"active": False}
WEB = ("web", WEB_SECRET)
WORKER = ("worker", WORKER_SECRET)


async def introspect(idp, token: str | None, *, auth=WORKER, path: str = "/introspect", **extra: str):
    data = {"token": token, **extra} if token is not None else dict(extra)
    headers = basic_auth(*auth) if auth else {}
    return await idp.client.post(path, data=data, headers=headers)


async def introspected(idp, token: str, **kwargs) -> dict:
    response = await introspect(idp, token, **kwargs)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    return await response.json()


async def user_tokens(idp, **kwargs):
    user = await idp.add_user()
    return user, await issue_user_tokens(idp, user, **kwargs)


async def test_active_access_token(idp):
    """RFC 7662 §2.2: an active access token with its scope, client, subject, audience,
    issuer, times and id; any authenticated client of the realm may ask."""
    user, tokens = await user_tokens(idp)
    claims = jwt_parts(tokens["access_token"])[1]
    body = await introspected(idp, tokens["access_token"])
    assert body == {
        "active": True,
        "token_type": "Bearer",
        "scope": "openid profile email offline_access",
        "client_id": "web",
        "sub": user.id,
        "aud": "web",
        "iss": idp.issuer,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "jti": claims["jti"],
        "auth_time": claims["auth_time"],
    }
    assert (await introspected(idp, tokens["access_token"], auth=WEB))["active"] is True


async def test_client_credentials_token(idp):
    """RFC 7662 §2.2: a client credentials token is active; its subject is the client."""
    response = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                     headers=basic_auth(*WORKER))
    body = await introspected(idp, (await response.json())["access_token"], auth=WEB)
    assert body["active"] is True
    assert body["sub"] == body["client_id"] == "worker"
    assert body["aud"] == ["videos-api", "photos-api"]
    assert "auth_time" not in body


async def test_form_post_at_realm_path_and_post_auth(idp):
    """RFC 7662 §2.1 (form POST) with client_secret_post, under /realms/<name>."""
    _, tokens = await user_tokens(idp)
    response = await idp.client.post(
        f"{idp.root}/introspect",
        data={"token": tokens["access_token"], "client_id": "worker", "client_secret": WORKER_SECRET},
    )
    assert response.status == 200
    assert (await response.json())["active"] is True


async def test_caller_must_authenticate(idp):
    """RFC 7662 §2.1 and §4: the caller must authenticate → otherwise 401 invalid_client."""
    _, tokens = await user_tokens(idp)
    for auth in (None, ("worker", "wrong"), ("nobody", "x")):
        response = await introspect(idp, tokens["access_token"], auth=auth)
        assert response.status == 401, auth
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert (await response.json())["error"] == "invalid_client"


async def test_public_client_may_not_introspect(idp):
    """RFC 7662 §4: a public client cannot authenticate → invalid_client."""
    _, tokens = await user_tokens(idp, client_id="spa")
    response = await introspect(idp, tokens["access_token"], auth=None, client_id="spa")
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_client"


async def test_missing_token_is_invalid_request(idp):
    """RFC 7662 §2.1: `token` is REQUIRED → 400 invalid_request."""
    response = await introspect(idp, None)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_hint_is_only_a_hint(idp):
    """RFC 7662 §2.1: a wrong or unknown `token_type_hint` does not change the answer."""
    _, tokens = await user_tokens(idp)
    for hint in ("refresh_token", "access_token", "something_else"):
        assert (await introspected(idp, tokens["access_token"], token_type_hint=hint))["active"] is True
        refresh = await introspected(idp, tokens["refresh_token"], auth=WEB, token_type_hint=hint)
        assert refresh["active"] is True


async def test_invalid_access_tokens_are_inactive(idp):
    """RFC 7662 §2.2: tampered, `alg: none`, garbage, ID tokens → exactly {"active": false}."""
    _, tokens = await user_tokens(idp)
    for token in (tampered(tokens["access_token"]), unsigned(tokens["access_token"]),
                  "garbage", "a.b.c", tokens["id_token"]):
        assert await introspected(idp, token) == INACTIVE, token


async def test_expired_access_token_is_inactive(idp):
    """RFC 7662 §2.2: past `exp` (10 minutes) the token is inactive."""
    _, tokens = await user_tokens(idp)
    idp.clock.advance(599)
    assert (await introspected(idp, tokens["access_token"]))["active"] is True
    idp.clock.advance(2)
    assert await introspected(idp, tokens["access_token"]) == INACTIVE


async def test_access_token_of_another_realm_is_inactive(idp):
    """RFC 7662 §2.2: a token signed by realm `other` is not active at realm acme."""
    user = await idp.add_user(realm="other")
    tokens = await issue_user_tokens(idp, user, client_id="spa", realm="other")
    assert await introspected(idp, tokens["access_token"]) == INACTIVE


async def test_revoked_access_token_is_inactive(idp):
    """RFC 7009 §2 with RFC 7662 §2.2: after revocation the access token is inactive."""
    _, tokens = await user_tokens(idp)
    response = await idp.client.post("/revoke", data={"token": tokens["access_token"]},
                                     headers=basic_auth(*WEB))
    assert response.status == 200
    assert await introspected(idp, tokens["access_token"]) == INACTIVE


async def test_active_refresh_token_for_its_own_client(idp):
    """RFC 7662 §2.2 for a refresh token, asked by the client it was issued to."""
    user, tokens = await user_tokens(idp)
    now = idp.clock.timestamp()
    body = await introspected(idp, tokens["refresh_token"], auth=WEB)
    assert body == {
        "active": True,
        "token_type": "refresh_token",
        "scope": "openid profile email offline_access",
        "client_id": "web",
        "sub": user.id,
        "iss": idp.issuer,
        "iat": now,
        "exp": now + 45 * 24 * 3600,
    }


async def test_refresh_token_of_another_client_is_inactive(idp):
    """RFC 7662 §4 (privacy): a refresh token is not disclosed to other clients."""
    _, tokens = await user_tokens(idp)
    assert await introspected(idp, tokens["refresh_token"], auth=WORKER) == INACTIVE


async def test_rotated_refresh_token_is_inactive_and_successor_active(idp):
    """RFC 6749 §6 rotation with RFC 7662 §2.2: the replaced token is inactive."""
    _, tokens = await user_tokens(idp)
    response = await idp.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic_auth(*WEB),
    )
    successor = (await response.json())["refresh_token"]
    assert await introspected(idp, tokens["refresh_token"], auth=WEB) == INACTIVE
    assert (await introspected(idp, successor, auth=WEB))["active"] is True


async def test_revoked_refresh_token_is_inactive(idp):
    """RFC 7009 §2.1 with RFC 7662 §2.2: a revoked refresh token is inactive."""
    _, tokens = await user_tokens(idp)
    response = await idp.client.post("/revoke", data={"token": tokens["refresh_token"]},
                                     headers=basic_auth(*WEB))
    assert response.status == 200
    assert await introspected(idp, tokens["refresh_token"], auth=WEB) == INACTIVE


async def test_expired_refresh_token_is_inactive(idp):
    """RFC 7662 §2.2: a refresh token past its family's 45-day lifetime is inactive."""
    _, tokens = await user_tokens(idp)
    idp.clock.advance(46 * 24 * 3600)
    assert await introspected(idp, tokens["refresh_token"], auth=WEB) == INACTIVE


async def test_unknown_and_foreign_refresh_tokens_are_inactive(idp):
    """RFC 7662 §2.2: an unknown refresh token, or one of realm `other`, is inactive."""
    user = await idp.add_user(realm="other")
    tokens = await issue_user_tokens(idp, user, client_id="spa", realm="other")
    assert await introspected(idp, tokens["refresh_token"], auth=WEB) == INACTIVE
    assert await introspected(idp, "rt_" + "x" * 43, auth=WEB) == INACTIVE


async def test_refresh_token_of_disabled_user_is_inactive(idp):
    """RFC 7662 §2.2: the token endpoint would refuse it, so it is not active."""
    user, tokens = await user_tokens(idp)
    await idp.services.durable.update_user("acme", user.id, disabled=True)
    assert await introspected(idp, tokens["refresh_token"], auth=WEB) == INACTIVE
