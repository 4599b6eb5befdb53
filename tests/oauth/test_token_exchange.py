"""RFC 8693 token exchange at the token endpoint (issue 19), through HTTP on the real app
factory, on both storage backends: the accepted exchange (§2.2.1, RFC 9068 claims, `act`
§4.1), every refusal (§2.2.2 as issue 19 assigns the codes), revocation reaching the
exchanged token (RFC 7009 §2.1), discovery (RFC 8414 §2)."""

from __future__ import annotations

import hashlib

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.oauth.conftest import (
    ACME,
    WEB_SECRET,
    WORKER_SECRET,
    Idp,
    basic_auth,
    build_idp,
    issue_user_tokens,
    jwt_parts,
)

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
EXCHANGER_SECRET = "exchanger-secret-" + "e" * 32
BILLING_SECRET = "billing-secret-" + "b" * 32
EXCHANGER = ("exchanger", EXCHANGER_SECRET)
BILLING = ("billing-api", BILLING_SECRET)
WEB = ("web", WEB_SECRET)

EXCHANGE_CLIENTS = f"""\
  - client_id: exchanger
    type: confidential
    secret_sha256: {hashlib.sha256(EXCHANGER_SECRET.encode()).hexdigest()}
    grant_types: [client_credentials, "{TE}"]
    scopes: [videos.read]
    token_exchange:
      from_clients: [web]
      audiences: [billing-api, ledger-api]
  - client_id: billing-api
    type: confidential
    secret_sha256: {hashlib.sha256(BILLING_SECRET.encode()).hexdigest()}
    grant_types: ["{TE}"]
    token_exchange:
      audiences: [ledger-api]
"""


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> Idp:
    """The test realm plus `exchanger` (may exchange tokens of `web` for billing-api or
    ledger-api) and `billing-api` (may exchange tokens issued *for* it, for ledger-api)."""
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), ACME + EXCHANGE_CLIENTS)


async def exchange(idp, subject_token: str, *, auth=EXCHANGER, **extra: str):
    data = {"grant_type": TE, "subject_token": subject_token, "subject_token_type": AT,
            "audience": "billing-api", **extra}
    data = {k: v for k, v in data.items() if v is not None}
    headers = basic_auth(*auth) if auth else {}
    return await idp.client.post("/token", data=data, headers=headers)


async def error_of(response) -> str:
    assert response.status in (400, 401), (response.status, await response.text())
    return (await response.json())["error"]


async def user_tokens(idp, scope: str = "openid profile email offline_access videos.read"):
    user = await idp.add_user()
    return user, await issue_user_tokens(idp, user, "web", scope=scope)


async def active(idp, token: str) -> bool:
    response = await idp.client.post("/introspect", data={"token": token}, headers=basic_auth(*WEB))
    return (await response.json())["active"]


async def test_an_exchange_issues_a_delegated_token_for_the_audience(idp):
    """RFC 8693 §2.2.1: access_token, issued_token_type, token_type Bearer, expires_in, no
    refresh token; the token (RFC 9068) keeps the subject's `sub`, is for exactly the
    requested audience (issue 23 item 1), names the exchanging client in `client_id` and in
    `act` (§4.1 delegation) and carries the granted scope."""
    user, tokens = await user_tokens(idp)
    subject = jwt_parts(tokens["access_token"])[1]
    idp.clock.advance(60)
    response = await exchange(idp, tokens["access_token"], scope="videos.read")
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["issued_token_type"] == AT
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "videos.read"
    assert "refresh_token" not in body and "id_token" not in body
    header, claims = jwt_parts(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == user.id
    assert claims["aud"] == "billing-api"
    assert claims["client_id"] == "exchanger"
    assert claims["act"] == {"sub": "exchanger"}
    assert claims["scope"] == "videos.read"
    assert claims["iss"] == idp.issuer
    assert claims["exp"] <= subject["exp"]  # never outlives the subject token
    assert body["expires_in"] == claims["exp"] - claims["iat"] == subject["exp"] - idp.clock.timestamp()
    assert claims["grant_id"] == subject["grant_id"]  # in the subject's family (revocation)
    # The exchanged token is a live access token at introspection (RFC 7662 §2.2).
    assert await active(idp, body["access_token"])
    events = [e for e in await idp.services.durable.list_events("acme") if e.type == "token_exchanged"]
    assert [(e.user_id, e.client_id, e.data["audience"]) for e in events] == [(user.id, "exchanger", "billing-api")]
    assert not any(tokens["access_token"] in str(e.data) for e in events)  # no token in the audit trail
    text = await (await idp.client.get("/metrics")).text()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "tokens_issued_total" and s.labels.get("grant_type") == TE]
    assert [s.value for s in samples] == [1]


async def test_without_scope_the_subject_scope_is_kept_and_resource_names_the_audience(idp):
    """RFC 8693 §2.1: `scope` is optional (the subject's scope then); `resource` names the
    target as `audience` does (one value)."""
    _user, tokens = await user_tokens(idp, scope="openid videos.read")
    response = await exchange(idp, tokens["access_token"], audience=None, resource="ledger-api")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["scope"] == "openid videos.read"
    assert jwt_parts(body["access_token"])[1]["aud"] == "ledger-api"


async def test_actor_token_becomes_the_act(idp):
    """RFC 8693 §2.1, §4.1: with an actor_token, its `sub` is the acting party in `act`."""
    _user, tokens = await user_tokens(idp)
    actor = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                  headers=basic_auth("worker", WORKER_SECRET))
    actor_token = (await actor.json())["access_token"]
    response = await exchange(idp, tokens["access_token"], actor_token=actor_token, actor_token_type=AT)
    assert response.status == 200, await response.text()
    assert jwt_parts((await response.json())["access_token"])[1]["act"] == {"sub": "worker"}


async def test_a_subject_that_already_had_act_nests_it(idp):
    """RFC 8693 §4.1: exchanging an exchanged token nests the earlier actor inside the new
    `act` (the newest actor outermost). `billing-api` may exchange tokens whose `aud` is
    itself; with an actor token the actor is outermost, the chain below it is kept."""
    user, tokens = await user_tokens(idp)
    first = (await (await exchange(idp, tokens["access_token"])).json())["access_token"]
    response = await exchange(idp, first, auth=BILLING, audience="ledger-api")
    assert response.status == 200, await response.text()
    second = (await response.json())["access_token"]
    claims = jwt_parts(second)[1]
    assert claims["sub"] == user.id and claims["aud"] == "ledger-api" and claims["client_id"] == "billing-api"
    assert claims["act"] == {"sub": "billing-api", "act": {"sub": "exchanger"}}

    actor = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                  headers=basic_auth("worker", WORKER_SECRET))
    response = await exchange(idp, first, auth=BILLING, audience="ledger-api",
                              actor_token=(await actor.json())["access_token"], actor_token_type=AT)
    assert response.status == 200, await response.text()
    assert jwt_parts((await response.json())["access_token"])[1]["act"] == {
        "sub": "worker", "act": {"sub": "exchanger"}}


async def test_audience_outside_the_policy_is_invalid_target(idp):
    """RFC 8693 §2.2.2 invalid_target; issue 23 item 1: only the policy's audiences, and
    `audience` and `resource` naming different targets is refused too."""
    _user, tokens = await user_tokens(idp)
    assert await error_of(await exchange(idp, tokens["access_token"], audience="videos-api")) == "invalid_target"
    assert await error_of(await exchange(idp, tokens["access_token"], resource="ledger-api")) == "invalid_target"


@pytest.mark.parametrize("case", ["revoked", "expired", "other_realm", "id_token", "refresh_token",
                                  "not_in_from_clients", "garbage", "tampered"])
async def test_unacceptable_subject_tokens_are_invalid_grant(idp, case):
    """Issue 19: a subject token revoked (RFC 7009), expired, of another realm, not an access
    token, or not allowed by `from_clients` → invalid_grant."""
    user, tokens = await user_tokens(idp)
    subject = tokens["access_token"]
    if case == "revoked":
        response = await idp.client.post("/revoke", data={"token": subject}, headers=basic_auth(*WEB))
        assert response.status == 200
    elif case == "expired":
        idp.clock.advance(601)
    elif case == "other_realm":
        # the same client id, signed by the other realm's keys with its issuer
        other = idp.realm("other")
        subject = (await idp.services.tokens.access_token(
            other, idp.realm().clients["web"], subject=user.id, scope="openid")).token
    elif case == "id_token":
        subject = tokens["id_token"]
    elif case == "refresh_token":
        subject = tokens["refresh_token"]
    elif case == "not_in_from_clients":
        response = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                         headers=basic_auth("worker", WORKER_SECRET))
        subject = (await response.json())["access_token"]
    elif case == "garbage":
        subject = "not-a-token"
    elif case == "tampered":
        head, claims, signature = subject.split(".")
        subject = ".".join([head, claims, signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]])
    assert await error_of(await exchange(idp, subject)) == "invalid_grant"


async def test_a_disabled_user_s_token_is_invalid_grant(idp):
    """The subject must still be a live user, as for a refresh (RFC 6749 §5.2 invalid_grant)."""
    user, tokens = await user_tokens(idp)
    await idp.services.durable.update_user("acme", user.id, disabled=True)
    assert await error_of(await exchange(idp, tokens["access_token"])) == "invalid_grant"


async def test_an_invalid_actor_token_is_invalid_grant(idp):
    _user, tokens = await user_tokens(idp)
    response = await exchange(idp, tokens["access_token"], actor_token=tokens["id_token"], actor_token_type=AT)
    assert await error_of(response) == "invalid_grant"


async def test_widened_scope_is_invalid_scope(idp):
    """Issue 19 / RFC 6749 §5.2: the scope may only narrow the subject token's scope."""
    _user, tokens = await user_tokens(idp, scope="openid videos.read")
    assert await error_of(await exchange(idp, tokens["access_token"], scope="videos.read profile")) == "invalid_scope"


@pytest.mark.parametrize("change", [
    {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
    {"subject_token_type": None},
    {"subject_token": None},
    {"actor_token": "x"},  # actor_token without actor_token_type
    {"actor_token_type": AT},  # actor_token_type without actor_token
    {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
    {"audience": None},  # the exchanger's policy has two audiences: one must be named
])
async def test_malformed_requests_are_invalid_request(idp, change):
    """RFC 8693 §2.1: subject_token and subject_token_type are REQUIRED (only access tokens
    are accepted here), actor_token_type goes with actor_token and only with it."""
    _user, tokens = await user_tokens(idp)
    params = {"subject_token": tokens["access_token"], **change}
    subject = params.pop("subject_token")
    response = await exchange(idp, subject, **params) if subject else await idp.client.post(
        "/token", data={"grant_type": TE, "subject_token_type": AT, "audience": "billing-api"},
        headers=basic_auth(*EXCHANGER))
    assert await error_of(response) == "invalid_request"


async def test_public_client_and_clients_without_the_grant_are_refused(idp):
    """RFC 8693 §2.1 uses client authentication; a public client cannot authenticate
    (invalid_client), a confidential client not allowed the grant is unauthorized_client."""
    _user, tokens = await user_tokens(idp)
    response = await exchange(idp, tokens["access_token"], auth=None, client_id="spa")
    assert response.status == 401 and await error_of(response) == "invalid_client"
    assert await error_of(await exchange(idp, tokens["access_token"], auth=WEB)) == "unauthorized_client"


async def test_revoking_the_subject_grant_revokes_the_exchanged_token(idp):
    """RFC 7009 §2.1: revoking the subject's refresh token revokes its grant's access
    tokens, the exchanged ones included (issue 19): inactive at introspection (RFC 7662)."""
    _user, tokens = await user_tokens(idp)
    exchanged = (await (await exchange(idp, tokens["access_token"])).json())["access_token"]
    response = await idp.client.post("/introspect", data={"token": exchanged}, headers=basic_auth(*WEB))
    info = await response.json()
    assert info["active"] and info["act"] == {"sub": "exchanger"}  # RFC 8693 §4.1: `act` in introspection
    response = await idp.client.post("/revoke", data={"token": tokens["refresh_token"]}, headers=basic_auth(*WEB))
    assert response.status == 200
    assert not await active(idp, exchanged)


@pytest.mark.parametrize("how", ["session", "user"])
async def test_ending_the_subject_session_or_user_revokes_the_exchanged_token(idp, how):
    """The exchanged token keeps the subject's `sid` and user: ending the browser session
    (RP-initiated logout's deny-list) or all of the user's sessions (an administrator's
    revocation, a password reset) revokes it too (engine.tokens.revocation)."""
    from engine.accounts.admin import revoke_sessions

    user = await idp.add_user()
    realm = idp.realm()
    subject = await idp.services.tokens.access_token(
        realm, realm.clients["web"], subject=user.id, scope="openid", session_id="sid-1",
        auth_time=idp.clock.timestamp())
    response = await exchange(idp, subject.token)
    exchanged = (await response.json())["access_token"]
    assert jwt_parts(exchanged)[1]["sid"] == "sid-1"
    # (not introspected before: a "not revoked" answer is trusted for 0.5 s on an instance,
    # and a user cutoff does not clear that memory; the bound is 1 s, engine.tokens.issue)
    if how == "session":
        await idp.services.tokens.deny_session(realm, "sid-1")
    else:
        await revoke_sessions(idp.services, realm, user)
    assert not await active(idp, exchanged)


async def test_discovery_lists_the_grant_type(idp):
    """RFC 8414 §2 grant_types_supported; RFC 8693 §2 the grant type URN."""
    metadata = await (await idp.client.get("/.well-known/openid-configuration")).json()
    assert TE in metadata["grant_types_supported"]
