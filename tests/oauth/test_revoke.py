"""Token revocation (RFC 7009): refresh tokens revoke their family, access tokens are
deny-listed; only the owning client can revoke; invalid tokens get an empty 200."""

from __future__ import annotations

from tests.oauth.conftest import (
    WEB_SECRET,
    WORKER_SECRET,
    basic_auth,
    issue_user_tokens,
    tampered,
)

WEB = ("web", WEB_SECRET)
WORKER = ("worker", WORKER_SECRET)


async def revoke(idp, token: str | None, *, auth=WEB, path: str = "/revoke", **extra: str):
    data = {"token": token, **extra} if token is not None else dict(extra)
    headers = basic_auth(*auth) if auth else {}
    return await idp.client.post(path, data=data, headers=headers)


async def assert_revoked_ok(response) -> None:
    """RFC 7009 §2.2: 200, and the content of the response body is ignored (we send none)."""
    assert response.status == 200, await response.text()
    assert await response.read() == b""


async def refresh(idp, refresh_token: str, *, client_id: str = "web"):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if client_id == "web":
        return await idp.client.post("/token", data=data, headers=basic_auth(*WEB))
    return await idp.client.post("/token", data={**data, "client_id": client_id})


async def active(idp, token: str, *, auth=WEB) -> bool:
    response = await idp.client.post("/introspect", data={"token": token}, headers=basic_auth(*auth))
    return (await response.json())["active"]


async def userinfo_status(idp, access_token: str) -> int:
    response = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status


async def user_tokens(idp, **kwargs):
    user = await idp.add_user()
    return user, await issue_user_tokens(idp, user, **kwargs)


async def test_refresh_token_revocation_revokes_the_family(idp):
    """RFC 7009 §2.1: revoking a refresh token invalidates it (the whole grant: its family,
    successors included) so it is unusable at /token and inactive at introspection."""
    user, tokens = await user_tokens(idp)
    response = await refresh(idp, tokens["refresh_token"])
    successor = (await response.json())["refresh_token"]
    other_family = (await issue_user_tokens(idp, user))["refresh_token"]

    await assert_revoked_ok(await revoke(idp, successor, token_type_hint="refresh_token"))

    for token in (successor, tokens["refresh_token"]):
        response = await refresh(idp, token)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_grant"
        assert await active(idp, token) is False
    assert await active(idp, other_family) is True


async def test_refresh_token_revocation_revokes_the_grants_access_tokens(idp):
    """RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access tokens of
    the same grant: the first one and those minted by rotation; another grant's stay."""
    user, tokens = await user_tokens(idp)
    rotated = await (await refresh(idp, tokens["refresh_token"])).json()
    other = await issue_user_tokens(idp, user)
    for token in (tokens["access_token"], rotated["access_token"], other["access_token"]):
        assert await active(idp, token) is True and await userinfo_status(idp, token) == 200

    await assert_revoked_ok(await revoke(idp, rotated["refresh_token"]))

    for token in (tokens["access_token"], rotated["access_token"]):
        assert await active(idp, token) is False
        assert await userinfo_status(idp, token) == 401
    assert await active(idp, other["access_token"]) is True


async def test_refresh_reuse_revokes_the_grants_access_tokens(idp):
    """RFC 9700 §4.14.2 (reuse detection) with §2.1 of RFC 7009: a replayed refresh token
    revokes its family, and with it the access tokens the attacker or the client holds."""
    _, tokens = await user_tokens(idp, client_id="spa")  # no reuse_grace: a replay is a reuse at once
    rotated = await (await refresh(idp, tokens["refresh_token"], client_id="spa")).json()
    assert await userinfo_status(idp, rotated["access_token"]) == 200
    replay = await refresh(idp, tokens["refresh_token"], client_id="spa")  # the old one again
    assert replay.status == 400
    for token in (tokens["access_token"], rotated["access_token"]):
        assert await userinfo_status(idp, token) == 401


async def test_revocation_is_audited_without_the_token(idp):
    """RFC 7009 §2.1 (the server invalidates the token) recorded as a `revocation` event
    that never contains the token value."""
    user, tokens = await user_tokens(idp)
    other_grant = await issue_user_tokens(idp, user)  # the first grant's access token goes with its refresh token
    await assert_revoked_ok(await revoke(idp, tokens["refresh_token"]))
    await assert_revoked_ok(await revoke(idp, other_grant["access_token"]))
    events = [e for e in await idp.services.durable.list_events("acme") if e.type == "revocation"]
    assert [e.data["token_type"] for e in events] == ["refresh_token", "access_token"]
    for event in events:
        assert event.client_id == "web" and event.user_id == user.id
        text = repr(event)
        assert tokens["refresh_token"] not in text and other_grant["access_token"] not in text


async def test_public_client_revokes_with_client_id(idp):
    """RFC 7009 §2.1: a public client identifies itself with `client_id`."""
    _, tokens = await user_tokens(idp, client_id="spa")
    await assert_revoked_ok(await revoke(idp, tokens["refresh_token"], auth=None, client_id="spa"))
    response = await refresh(idp, tokens["refresh_token"], client_id="spa")
    assert (await response.json())["error"] == "invalid_grant"


async def test_refresh_token_of_another_client_is_not_revoked(idp):
    """RFC 7009 §2.1: the server checks the token was issued to the caller; another client's
    token is left alone (answered with the same 200, revealing nothing)."""
    _, tokens = await user_tokens(idp, client_id="spa")
    await assert_revoked_ok(await revoke(idp, tokens["refresh_token"], auth=WEB))
    response = await refresh(idp, tokens["refresh_token"], client_id="spa")
    assert response.status == 200


async def test_access_token_revocation(idp):
    """RFC 7009 §2.1: a revoked access token is refused at userinfo (RFC 6750 invalid_token)
    and inactive at introspection (RFC 7662 §2.2)."""
    _, tokens = await user_tokens(idp)
    assert await userinfo_status(idp, tokens["access_token"]) == 200
    await assert_revoked_ok(await revoke(idp, tokens["access_token"], token_type_hint="access_token"))
    assert await userinfo_status(idp, tokens["access_token"]) == 401
    assert await active(idp, tokens["access_token"]) is False
    # Revoking again is harmless (§2.2: an invalid token is answered with 200 too).
    await assert_revoked_ok(await revoke(idp, tokens["access_token"]))


async def test_client_credentials_token_revocation(idp):
    """RFC 7009 §2.1: a client revokes its own client credentials token."""
    response = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                     headers=basic_auth(*WORKER))
    access_token = (await response.json())["access_token"]
    assert await active(idp, access_token) is True
    await assert_revoked_ok(await revoke(idp, access_token, auth=WORKER))
    assert await active(idp, access_token) is False


async def test_access_token_of_another_client_is_not_revoked(idp):
    """RFC 7009 §2.1: only the client the token was issued to may revoke it."""
    _, tokens = await user_tokens(idp)
    await assert_revoked_ok(await revoke(idp, tokens["access_token"], auth=WORKER))
    assert await userinfo_status(idp, tokens["access_token"]) == 200


async def test_hint_is_only_a_hint(idp):
    """RFC 7009 §2.1: a wrong or unknown `token_type_hint` still revokes the token."""
    _, tokens = await user_tokens(idp)
    await assert_revoked_ok(await revoke(idp, tokens["access_token"], token_type_hint="refresh_token"))
    await assert_revoked_ok(await revoke(idp, tokens["refresh_token"], token_type_hint="bogus"))
    assert await userinfo_status(idp, tokens["access_token"]) == 401
    assert (await (await refresh(idp, tokens["refresh_token"])).json())["error"] == "invalid_grant"


async def test_invalid_tokens_get_an_empty_200(idp):
    """RFC 7009 §2.2: "invalid tokens do not cause an error response": unknown, garbage,
    tampered and foreign tokens are answered with 200, and nothing is revoked."""
    _, tokens = await user_tokens(idp)
    other_user = await idp.add_user(realm="other")
    foreign = await issue_user_tokens(idp, other_user, client_id="spa", realm="other")
    for token in ("garbage", "rt_" + "x" * 43, tampered(tokens["access_token"]),
                  foreign["access_token"], foreign["refresh_token"]):
        await assert_revoked_ok(await revoke(idp, token))
    assert await userinfo_status(idp, tokens["access_token"]) == 200
    response = await refresh(idp, foreign["refresh_token"], client_id="spa")
    assert response.status == 400  # unknown at acme; still live at its own realm:
    ok = await idp.client.post("/realms/other/userinfo",
                               headers={"Authorization": f"Bearer {foreign['access_token']}"})
    assert ok.status == 200


async def test_revocation_alias_and_realm_path(idp):
    """RFC 7009 §2: the endpoint is also served as /revocation and under /realms/<name>."""
    _, tokens = await user_tokens(idp)
    await assert_revoked_ok(await revoke(idp, tokens["access_token"], path=f"{idp.root}/revocation"))
    assert await userinfo_status(idp, tokens["access_token"]) == 401
    await assert_revoked_ok(await revoke(idp, tokens["refresh_token"], path="/revocation"))
    assert await active(idp, tokens["refresh_token"]) is False


async def test_missing_token_is_invalid_request(idp):
    """RFC 7009 §2.1 (`token` REQUIRED) and RFC 6749 §5.2 → 400 invalid_request."""
    response = await revoke(idp, None)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_client_authentication_failure_is_invalid_client(idp):
    """RFC 7009 §2.2.1 → RFC 6749 §5.2: bad credentials → 401 invalid_client, and the token
    is not revoked."""
    _, tokens = await user_tokens(idp)
    for kwargs in ({"auth": ("web", "wrong")}, {"auth": None}, {"auth": None, "client_id": "web"}):
        response = await revoke(idp, tokens["access_token"], **kwargs)
        assert response.status == 401, kwargs
        assert (await response.json())["error"] == "invalid_client"
    assert await userinfo_status(idp, tokens["access_token"]) == 200
