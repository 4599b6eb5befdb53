"""The authorization code grant at the token endpoint: RFC 6749 §4.1.3–4.1.4, §10.5
(single use, replay revokes), RFC 7636 §4.6, OIDC Core §3.1.3 (ID token)."""

from __future__ import annotations

import asyncio

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oauth.audiences import audiences as _aud
from tests.oauth.conftest import WEB_REDIRECT, WEB_SECRET
from tests.oauth.flow import authorize, exchange, login_for_code, submit_login


async def jwks(idp) -> KeySet:
    resp = await idp.client.get("/.well-known/jwks.json")
    return KeySet.import_key_set(await resp.json())


async def test_code_exchange_gives_access_id_and_refresh_tokens(idp):
    """§4.1.4 response; RFC 9068 access token; OIDC Core §2 ID token with nonce and at_hash."""
    user = await idp.add_user(name="Alice Liddell")
    code, verifier, _ = await login_for_code(idp, nonce="nonce-42")
    resp = await exchange(idp, code, verifier)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["refresh_token"].startswith("rt_") and len(body["refresh_token"]) >= 43
    keys = await jwks(idp)
    access = jwt.decode(body["access_token"], keys, algorithms=["RS256"])
    assert access.header["typ"] == "at+jwt" and access.header["kid"]
    claims = access.claims
    assert claims["iss"] == idp.issuer and claims["sub"] == user.id and claims["client_id"] == "spa"
    assert claims["scope"] == "openid profile email offline_access"
    assert {"exp", "iat", "jti", "auth_time", "aud"} <= set(claims)
    id_token = jwt.decode(body["id_token"], keys, algorithms=["RS256"]).claims
    assert id_token["aud"] == "spa" and id_token["nonce"] == "nonce-42" and id_token["sub"] == user.id
    assert id_token["email"] == "alice@example.com" and id_token["email_verified"] is True
    assert id_token["name"] == "Alice Liddell" and id_token["at_hash"] and id_token["auth_time"]


async def test_code_is_single_use_and_replay_revokes_first_tokens(idp):
    """§4.1.2 / §10.5: a replayed code fails, and what its first use issued is revoked."""
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    first = await (await exchange(idp, code, verifier)).json()
    replay = await exchange(idp, code, verifier)
    assert replay.status == 400 and (await replay.json())["error"] == "invalid_grant"
    refresh = await idp.client.post("/token", data={"grant_type": "refresh_token", "client_id": "spa",
                                                     "refresh_token": first["refresh_token"]})
    assert (await refresh.json())["error"] == "invalid_grant"
    userinfo = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert userinfo.status == 401


async def test_a_replay_while_the_first_use_is_issuing_revokes_it_too(idp, monkeypatch):
    """§10.5 when the replay comes before the first use has finished: the first use is
    flagged, and it revokes what it issued instead of handing it out."""
    from engine.oauth.grants import authorization_code

    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    minting, release = asyncio.Event(), asyncio.Event()
    original = authorization_code.mint_user_tokens

    async def paused(*args, **kwargs):
        minting.set()
        await release.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(authorization_code, "mint_user_tokens", paused)
    first = asyncio.create_task(exchange(idp, code, verifier))
    await asyncio.wait_for(minting.wait(), 10)
    replay = await exchange(idp, code, verifier)
    assert replay.status == 400 and (await replay.json())["error"] == "invalid_grant"
    release.set()
    answer = await first
    assert answer.status == 400 and "revoked" in (await answer.json())["error_description"]


async def test_concurrent_exchanges_of_one_code_have_one_winner(idp):
    """Single use under concurrency (atomic take)."""
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    results = await asyncio.gather(*(exchange(idp, code, verifier) for _ in range(10)))
    assert sorted(r.status for r in results).count(200) <= 1
    assert sum(r.status == 200 for r in results) in (0, 1)


async def test_wrong_or_missing_verifier(idp):
    """RFC 7636 §4.6: the verifier must match the challenge."""
    await idp.add_user()
    code, _, _ = await login_for_code(idp)
    resp = await exchange(idp, code, "x" * 50)
    assert (await resp.json())["error"] == "invalid_grant"
    code, _, _ = await login_for_code(idp)
    resp = await exchange(idp, code, None)
    assert (await resp.json())["error"] == "invalid_grant"


async def test_redirect_uri_and_client_must_match_the_code(idp):
    """§4.1.3: redirect_uri identical; the code is bound to its client."""
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    resp = await exchange(idp, code, verifier, redirect_uri="http://localhost:3000/other")
    assert (await resp.json())["error"] == "invalid_grant"
    code, verifier, _ = await login_for_code(idp)
    resp = await exchange(idp, code, verifier, auth=("web", WEB_SECRET))
    assert (await resp.json())["error"] == "invalid_grant"


async def test_expired_code(idp):
    """§4.1.2: codes live at most the realm's auth_code lifetime (5 min)."""
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    idp.clock.advance(301)
    resp = await exchange(idp, code, verifier)
    assert (await resp.json())["error"] == "invalid_grant"


async def test_confidential_client_with_consent_and_basic_auth(idp):
    """Consent page, then client_secret_basic at the token endpoint (§2.3.1)."""
    await idp.add_user()
    code, _, _ = await login_for_code(idp, client_id="web", redirect_uri=WEB_REDIRECT,
                                      scope="openid email videos.read", challenge=None)
    resp = await exchange(idp, code, None, redirect_uri=WEB_REDIRECT, auth=("web", WEB_SECRET))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["scope"] == "openid email videos.read" and body["refresh_token"].startswith("rt_")


async def test_unverified_email_gets_no_code_at_all(idp):
    """Seed security must (no refresh token before the email is verified), held more
    strictly by the password provider's `require_verified_email` (default true, issue 16
    item 16): an unverified user gets no authorization code, so no token of any kind."""
    await idp.add_user(verified=False)
    resp, _ = await authorize(idp)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    assert resp.status == 403 and "Location" not in resp.headers


async def test_json_body_is_accepted(idp):
    """The seed's examples POST JSON to /token."""
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    resp = await idp.client.post("/token", json={"grant_type": "authorization_code", "code": code,
                                                 "redirect_uri": "http://localhost:3000/callback",
                                                 "client_id": "spa", "code_verifier": verifier})
    assert resp.status == 200, await resp.text()


async def test_the_root_realms_code_is_redeemed_at_the_root_only(idp):
    """The root realm has one issuer, the base URL (OIDC Discovery §4.3): its token
    endpoint is not also served under /realms/<root>."""
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    assert (await exchange(idp, code, verifier, prefix="/realms/acme")).status == 404
    assert (await exchange(idp, code, verifier)).status == 200


async def test_cross_realm_code_is_invalid(idp):
    """A code from one realm means nothing in another."""
    await idp.add_user()
    code, verifier, _ = await login_for_code(idp)
    resp = await exchange(idp, code, verifier, prefix="/realms/other")
    assert (await resp.json())["error"] == "invalid_grant"


# RFC 8707 resource indicators: the audience stays as granted

async def test_resource_at_authorize_is_the_audience_of_the_code_exchange(multi):
    """RFC 8707 §2.1: `resource=A` at /authorize → the access token's `aud` is exactly A."""
    await multi.add_user()
    code, verifier, _ = await login_for_code(multi, client_id="multi", scope="openid offline_access",
                                             resource="photos-api")
    body = await (await exchange(multi, code, verifier, client_id="multi")).json()
    assert _aud(body["access_token"]) == ["photos-api"]


async def test_resource_at_token_may_narrow_the_grant_but_not_widen_it(multi):
    """RFC 8707 §2.2: at the token endpoint `resource` may name one resource of the grant
    (the token is for that one only); a resource outside the grant, even one the client
    could have asked for at /authorize, is 400 invalid_target."""
    await multi.add_user()
    code, verifier, _ = await login_for_code(multi, client_id="multi", scope="openid offline_access")
    body = await (await exchange(multi, code, verifier, client_id="multi", resource="music-api")).json()
    assert _aud(body["access_token"]) == ["music-api"]

    code, verifier, _ = await login_for_code(multi, client_id="multi", scope="openid offline_access",
                                             resource="photos-api")
    refused = await exchange(multi, code, verifier, client_id="multi", resource="videos-api")
    assert refused.status == 400 and (await refused.json())["error"] == "invalid_target"

    code, verifier, _ = await login_for_code(multi, client_id="multi", scope="openid offline_access")
    refused = await exchange(multi, code, verifier, client_id="multi", resource="https://evil.example/")
    assert refused.status == 400 and (await refused.json())["error"] == "invalid_target"
