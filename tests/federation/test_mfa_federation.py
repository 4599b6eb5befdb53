"""Federation and strong sign-in (issue 20): an upstream's sign-in is the first factor
(`amr` fed, RFC 8176); a `required` realm still asks the second one, unless the provider
is `trust_upstream_mfa: true` and the upstream's ID token says `mfa` in its `amr`."""

from __future__ import annotations

import pyotp

from engine.accounts import mfa, totp
from tests.federation.browser import open_callback, start_at_login_page, through_upstream, tokens_and_userinfo
from tests.oauth.conftest import jwt_parts, query_of

REQUIRED = "mfa: {totp: required}"


async def callback_answer(fed):
    fed.idp.client.session.cookie_jar.clear()
    upstream, verifier = await start_at_login_page(fed, "google")
    return await open_callback(fed, await through_upstream(fed, upstream)), verifier


async def test_upstream_is_the_first_factor_and_required_asks_the_second(make_fed):
    fed = await make_fed(realm_extra=REQUIRED)
    fed.google.id_token_claims = {"amr": ["pwd", "mfa"]}  # not trusted: still one factor here
    resp, _ = await callback_answer(fed)
    assert resp.headers["Location"].endswith("/mfa/enrol")


async def test_a_federated_user_with_totp_gives_the_code(make_fed):
    fed = await make_fed(realm_extra="mfa: {totp: optional}")
    resp, verifier = await callback_answer(fed)  # first sign-in: no factor yet, one factor
    code = query_of(resp.headers["Location"])["code"]
    tokens, info = await tokens_and_userinfo(fed, code, verifier)
    assert jwt_parts(tokens["id_token"])[1]["amr"] == ["fed"]
    secret = totp.new_secret()
    assert await totp.enrol(fed.services, fed.idp.realm(), info["sub"], secret,
                            pyotp.TOTP(secret).at(fed.clock.timestamp()))
    fed.clock.advance(30)
    resp, verifier = await callback_answer(fed)
    assert resp.headers["Location"].endswith("/mfa")
    from tests.accounts.mfa_helpers import second_factor
    resp = await second_factor(fed.idp, resp.headers["Location"], pyotp.TOTP(secret).at(fed.clock.timestamp()))
    tokens, _ = await tokens_and_userinfo(fed, query_of(resp.headers["Location"])["code"], verifier)
    claims = jwt_parts(tokens["id_token"])[1]
    assert claims["amr"] == ["fed", "otp", "mfa"] and claims["acr"] == mfa.ACR_MFA


async def test_trusted_upstream_mfa_counts_as_both_factors(make_fed):
    fed = await make_fed(realm_extra=REQUIRED, google_extra="trust_upstream_mfa: true")
    fed.google.id_token_claims = {"amr": ["pwd", "otp", "mfa"]}
    resp, verifier = await callback_answer(fed)
    query = query_of(resp.headers["Location"])
    assert "code" in query, resp.headers["Location"]
    tokens, _ = await tokens_and_userinfo(fed, query["code"], verifier)
    claims = jwt_parts(tokens["id_token"])[1]
    assert claims["amr"] == ["fed", "mfa"] and claims["acr"] == mfa.ACR_MFA


async def test_trusted_upstream_without_mfa_is_one_factor(make_fed):
    fed = await make_fed(realm_extra=REQUIRED, google_extra="trust_upstream_mfa: true")
    fed.google.id_token_claims = {"amr": ["pwd"]}
    resp, _ = await callback_answer(fed)
    assert resp.headers["Location"].endswith("/mfa/enrol")
