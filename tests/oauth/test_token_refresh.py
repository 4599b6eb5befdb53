"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection (§10.4, OAuth 2.0
Security BCP §4.14): rotated tokens, reuse revokes the family, the client's reuse grace,
concurrent rotations, scope narrowing, client and realm binding, family expiry."""

from __future__ import annotations

import asyncio

from tests.oauth.audiences import audiences as _aud
from tests.oauth.conftest import WEB_SECRET, basic_auth, issue_user_tokens, jwt_parts
from tests.oauth.flow import exchange, login_for_code

DAY = 24 * 3600


async def refresh(idp, refresh_token: str, *, client_id: str = "web", path: str = "/token", **extra: str):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if client_id == "web":
        headers = basic_auth("web", WEB_SECRET)
    else:
        headers, data["client_id"] = {}, client_id
    return await idp.client.post(path, data=data, headers=headers)


async def assert_invalid_grant(response) -> None:
    assert response.status == 400, await response.text()
    assert (await response.json())["error"] == "invalid_grant"


async def rotated(idp, refresh_token: str, **kwargs) -> dict:
    response = await refresh(idp, refresh_token, **kwargs)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_rotation_returns_new_tokens(idp):
    """RFC 6749 §6 and §5.1: a refresh issues a new access token, ID token, and a new
    refresh token (rotation, §10.4)."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    idp.clock.advance(60)
    body = await rotated(idp, tokens["refresh_token"])
    assert body["refresh_token"].startswith("rt_")
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert body["scope"] == tokens["scope"]
    claims = jwt_parts(body["access_token"])[1]
    assert claims["sub"] == user.id and claims["client_id"] == "web"
    assert jwt_parts(body["id_token"])[1]["sub"] == user.id
    # The successor rotates in turn.
    assert (await rotated(idp, body["refresh_token"]))["refresh_token"] != body["refresh_token"]


async def test_reuse_revokes_the_family_only(idp):
    """RFC 6749 §10.4 / Security BCP §4.14.2: a replaced token presented again → invalid_grant
    and its whole family is revoked (the successor too); another family stays usable."""
    user = await idp.add_user()
    first = await issue_user_tokens(idp, user, client_id="spa")
    other = await issue_user_tokens(idp, user, client_id="spa")
    successor = (await rotated(idp, first["refresh_token"], client_id="spa"))["refresh_token"]

    await assert_invalid_grant(await refresh(idp, first["refresh_token"], client_id="spa"))
    await assert_invalid_grant(await refresh(idp, successor, client_id="spa"))
    assert (await rotated(idp, other["refresh_token"], client_id="spa"))["refresh_token"]
    events = [e.type for e in await idp.services.durable.list_events("acme")]
    assert "refresh_reuse_detected" in events


async def test_retry_within_grace_gets_the_same_successor(idp):
    """Security BCP §4.14.2 (lost responses): within the client's `reuse_grace` (30 s for
    `web`) a retry of the old token gets the same successor and the family stays alive."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    successor = (await rotated(idp, tokens["refresh_token"]))["refresh_token"]
    idp.clock.advance(29)
    retried = await rotated(idp, tokens["refresh_token"])
    assert retried["refresh_token"] == successor
    assert (await rotated(idp, successor))["refresh_token"]


async def test_retry_after_grace_is_reuse(idp):
    """RFC 6749 §10.4: past the grace window (31 s > 30 s) the old token is reuse → family revoked."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    successor = (await rotated(idp, tokens["refresh_token"]))["refresh_token"]
    idp.clock.advance(31)
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"]))
    await assert_invalid_grant(await refresh(idp, successor))


async def test_retry_within_grace_after_successor_was_used_is_reuse(idp):
    """RFC 6749 §10.4: the grace only covers a lost response; once the successor has been
    used, the old token coming back is theft → family revoked."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    successor = (await rotated(idp, tokens["refresh_token"]))["refresh_token"]
    latest = (await rotated(idp, successor))["refresh_token"]
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"]))
    await assert_invalid_grant(await refresh(idp, latest))


async def test_zero_grace_reuse_revokes_immediately(idp):
    """RFC 6749 §10.4: `spa` has no grace: even an instant retry is reuse → family revoked."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user, client_id="spa")
    successor = (await rotated(idp, tokens["refresh_token"], client_id="spa"))["refresh_token"]
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"], client_id="spa"))
    await assert_invalid_grant(await refresh(idp, successor, client_id="spa"))


async def test_concurrent_rotations_with_grace_share_one_successor(idp):
    """RFC 6749 §10.4 under concurrency: 20 simultaneous refreshes of one token by `web`
    (grace 30 s) all get the same successor, which is the one live token."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    responses = await asyncio.gather(*(refresh(idp, tokens["refresh_token"]) for _ in range(20)))
    bodies = [await r.json() for r in responses]
    successes = {b["refresh_token"] for r, b in zip(responses, bodies, strict=True) if r.status == 200}
    assert len(successes) == 1, bodies
    assert all(r.status == 200 for r in responses), bodies
    (successor,) = successes
    assert (await rotated(idp, successor))["refresh_token"]


async def test_concurrent_rotations_without_grace_never_fork(idp):
    """RFC 6749 §10.4 under concurrency: 20 simultaneous refreshes of one `spa` token (no
    grace) give at most one success, the others are reuse, and no token stays live."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user, client_id="spa")
    responses = await asyncio.gather(
        *(refresh(idp, tokens["refresh_token"], client_id="spa") for _ in range(20))
    )
    bodies = [await r.json() for r in responses]
    successes = [b["refresh_token"] for r, b in zip(responses, bodies, strict=True) if r.status == 200]
    assert len(successes) <= 1, bodies
    assert all(b["error"] == "invalid_grant" for r, b in zip(responses, bodies, strict=True) if r.status != 200)
    for successor in successes:  # the reuse revoked the winner's family too
        await assert_invalid_grant(await refresh(idp, successor, client_id="spa"))
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"], client_id="spa"))


async def test_scope_may_be_narrowed(idp):
    """RFC 6749 §6: `scope` may ask for less than originally granted."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    body = await rotated(idp, tokens["refresh_token"], scope="openid email")
    assert body["scope"] == "openid email"
    assert jwt_parts(body["access_token"])[1]["scope"] == "openid email"
    # The family keeps its original scope (§6: the new refresh token's scope is identical).
    assert (await rotated(idp, body["refresh_token"]))["scope"] == tokens["scope"]


async def test_scope_may_not_be_widened(idp):
    """RFC 6749 §6 and §5.2: asking for a scope not originally granted → invalid_scope, and
    the refused request does not consume the token."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user, scope="openid email")
    response = await refresh(idp, tokens["refresh_token"], scope="openid email profile")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_scope"
    assert (await rotated(idp, tokens["refresh_token"]))["scope"] == "openid email"


async def test_token_of_another_client_is_invalid_grant(idp):
    """RFC 6749 §6 and §10.4: the refresh token is bound to the client it was issued to;
    another client's attempt fails and does not burn the owner's token."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user, client_id="spa")
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"], client_id="web"))
    assert (await rotated(idp, tokens["refresh_token"], client_id="spa"))["refresh_token"]


async def test_expired_family_is_invalid_grant(idp):
    """RFC 6749 §5.2: an expired refresh token → invalid_grant (the realm's lifetime is 45 days)."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    idp.clock.advance(44 * DAY)
    successor = (await rotated(idp, tokens["refresh_token"]))["refresh_token"]
    idp.clock.advance(2 * DAY)  # rotation does not extend the family's absolute end
    await assert_invalid_grant(await refresh(idp, successor))


async def test_token_of_another_realm_is_invalid_grant(idp):
    """RFC 6749 §5.2: a refresh token issued by realm `other` is unknown at realm acme,
    even for a client with the same id."""
    user = await idp.add_user(realm="other")
    tokens = await issue_user_tokens(idp, user, client_id="spa", realm="other")
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"], client_id="spa"))
    await assert_invalid_grant(
        await refresh(idp, tokens["refresh_token"], client_id="spa", path=f"{idp.root}/token")
    )
    body = await rotated(idp, tokens["refresh_token"], client_id="spa", path="/realms/other/token")
    assert jwt_parts(body["access_token"])[1]["iss"].endswith("/realms/other")


async def test_missing_refresh_token_is_invalid_request(idp):
    """RFC 6749 §6 and §5.2: `refresh_token` is required → invalid_request."""
    response = await idp.client.post("/token", data={"grant_type": "refresh_token"},
                                     headers=basic_auth("web", WEB_SECRET))
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_unknown_refresh_token_is_invalid_grant(idp):
    """RFC 6749 §5.2: a refresh token the server never issued → invalid_grant."""
    await assert_invalid_grant(await refresh(idp, "rt_" + "x" * 43))
    await assert_invalid_grant(await refresh(idp, "not-a-token"))


async def test_disabled_user_cannot_refresh(idp):
    """RFC 6749 §5.2: a grant whose user was disabled is no longer valid → invalid_grant."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user)
    await idp.services.durable.update_user("acme", user.id, disabled=True)
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"]))


async def test_a_store_failure_before_the_rotation_leaves_the_token_live(idp):
    """RFC 6749 §5.2 + §6: a refresh that fails with 503 (reading the token and its user
    could not reach the store) must not have consumed the token: the retry succeeds, even
    for a client without reuse_grace, instead of looking like a reuse that revokes the family."""
    from engine.store.protocols import StoreUnavailable

    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user, client_id="spa")
    services = idp.services
    healthy = services.durable

    class TokenReadDown:
        def __getattr__(self, name):
            return getattr(healthy, name)

        async def get_refresh_token_and_user(self, realm, token_hash):
            raise StoreUnavailable("postgres: connection reset")

    services.durable = TokenReadDown()
    try:
        failed = await refresh(idp, tokens["refresh_token"], client_id="spa")
    finally:
        services.durable = healthy
    assert failed.status == 503
    retried = await refresh(idp, tokens["refresh_token"], client_id="spa")
    assert retried.status == 200, await retried.text()


async def test_a_refused_refresh_does_not_consume_the_token(idp):
    """A disabled user's refresh is refused before rotating: enabled again, the same token works."""
    user = await idp.add_user()
    tokens = await issue_user_tokens(idp, user, client_id="spa")  # no reuse_grace
    await idp.services.durable.update_user("acme", user.id, disabled=True)
    await assert_invalid_grant(await refresh(idp, tokens["refresh_token"], client_id="spa"))
    await idp.services.durable.update_user("acme", user.id, disabled=False)
    assert "access_token" in await rotated(idp, tokens["refresh_token"], client_id="spa")


# RFC 8707 resource indicators: a refresh keeps the audience that was granted

async def _code_tokens(idp, **authorize_params) -> dict:
    if await idp.services.accounts.by_email("acme", "alice@example.com") is None:
        await idp.add_user()
    code, verifier, _ = await login_for_code(idp, client_id="multi", scope="openid offline_access",
                                             **authorize_params)
    response = await exchange(idp, code, verifier, client_id="multi")
    assert response.status == 200, await response.text()
    return await response.json()


async def test_refresh_keeps_the_resource_granted_at_authorize(multi):
    """RFC 8707 §2.2 and RFC 9700 §2.3: `resource=A` at /authorize → every refresh of that
    grant, for the life of the family, issues for A only, never for every audience of the
    client (today's flaw: the first refresh widened `aud` to all of them)."""
    tokens = await _code_tokens(multi, resource="photos-api")
    assert _aud(tokens["access_token"]) == ["photos-api"]
    refreshed = await rotated(multi, tokens["refresh_token"], client_id="multi")
    assert _aud(refreshed["access_token"]) == ["photos-api"]
    again = await rotated(multi, refreshed["refresh_token"], client_id="multi")
    assert _aud(again["access_token"]) == ["photos-api"]


async def test_refresh_resource_may_only_narrow_the_grant(multi):
    """RFC 8707 §2.2: `resource` on a refresh names one resource of the grant (that token is
    for it alone, the family keeps its grant); any other is 400 invalid_target, and the
    refused request does not consume the refresh token."""
    tokens = await _code_tokens(multi)  # no resource: the grant is every audience of the client
    assert set(_aud(tokens["access_token"])) == {"videos-api", "photos-api", "music-api"}
    narrowed = await rotated(multi, tokens["refresh_token"], client_id="multi", resource="videos-api")
    assert _aud(narrowed["access_token"]) == ["videos-api"]
    whole = await rotated(multi, narrowed["refresh_token"], client_id="multi")
    assert set(_aud(whole["access_token"])) == {"videos-api", "photos-api", "music-api"}

    one = await _code_tokens(multi, resource="photos-api")
    for outside in ("videos-api", "https://evil.example/"):
        refused = await refresh(multi, one["refresh_token"], client_id="multi", resource=outside)
        assert refused.status == 400 and (await refused.json())["error"] == "invalid_target", outside
    still = await rotated(multi, one["refresh_token"], client_id="multi", resource="photos-api")
    assert _aud(still["access_token"]) == ["photos-api"]


async def test_family_without_recorded_resources_keeps_the_clients_audiences(multi):
    """A family stored before resources were recorded (NULL) refreshes as it always did,
    for the client's audiences, and can still be narrowed."""
    from dataclasses import replace

    user = await multi.add_user()
    realm = multi.realm()
    client = realm.clients["multi"]
    token, family = await multi.services.refresh.start_family(
        realm, client, user_id=user.id, scope="openid offline_access", auth_time=multi.clock.timestamp(),
        session_id=None)
    # Rewrite the family as an old one: no resources column value.
    durable = multi.services.durable
    from engine.secrets_util import sha256_hex
    stored_token, _ = await durable.get_refresh_token("acme", sha256_hex(token))
    legacy = replace(family, id=family.id + "-old", resources=None)
    await durable.create_refresh_family(legacy, replace(stored_token, token_hash=sha256_hex(token + "x"),
                                                        family_id=legacy.id))
    body = await rotated(multi, token + "x", client_id="multi")
    assert set(_aud(body["access_token"])) == {"videos-api", "photos-api", "music-api"}
