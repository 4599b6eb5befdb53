"""Strong sign-in over HTTP (issue 20), on both store pairs: TOTP enrolment in the flow
(RFC 6238 codes computed from the secret the page shows), the second-factor page after a
password, `amr` (RFC 8176) and `acr` in the ID token (OIDC Core §2), recovery codes once
and not twice, brute force stopped, step-up with `acr_values` (OIDC Core §3.1.2.1) and
`claims` (§5.5.1.1), `unmet_authentication_requirements` (§3.1.2.6), `require_mfa`."""

from __future__ import annotations

import json

import pyotp
import pytest

from engine.accounts import mfa
from tests.accounts.mfa_helpers import enrol_totp, mfa_idp, password_step, second_factor
from tests.oauth.conftest import jwt_parts, query_of
from tests.oauth.flow import authorize, exchange


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    return await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory())


@pytest.fixture
async def required(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    return await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), totp="required")


async def id_token_of(idp, location: str, verifier: str) -> dict:
    query = query_of(location)
    assert "code" in query, location
    resp = await exchange(idp, query["code"], verifier)
    assert resp.status == 200, await resp.text()
    return jwt_parts((await resp.json())["id_token"])[1]


async def enrolled(idp) -> tuple[str, list[str]]:
    """Alice enrols TOTP on her first sign-in to the `strict` client (require_mfa)."""
    resp, verifier = await password_step(idp, client_id="strict")
    assert resp.headers["Location"].endswith(mfa.ENROL_PATH)
    secret, codes, done = await enrol_totp(idp, resp.headers["Location"])
    assert done.status == 303
    return secret, codes


async def test_password_alone_without_a_factor_is_aal1(idp):
    await idp.add_user()
    resp, verifier = await password_step(idp)
    claims = await id_token_of(idp, resp.headers["Location"], verifier)
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == mfa.ACR_SINGLE


async def test_required_realm_enrols_on_first_sign_in_then_asks_the_code(required):
    idp = required
    await idp.add_user()
    resp, verifier = await password_step(idp)
    assert resp.status == 303 and resp.headers["Location"].endswith("/mfa/enrol")
    secret, codes, done = await enrol_totp(idp, resp.headers["Location"])
    assert len(codes) == 4
    claims = await id_token_of(idp, done.headers["Location"], verifier)
    assert claims["amr"] == ["pwd", "otp", "mfa"]  # RFC 8176 §2
    assert claims["acr"] == mfa.ACR_MFA

    # Next sign-in (a new browser): the password, then the code from the app.
    idp.client.session.cookie_jar.clear()
    idp.clock.advance(60)
    resp, verifier = await password_step(idp)
    assert resp.headers["Location"].endswith("/mfa")
    resp = await second_factor(idp, resp.headers["Location"], pyotp.TOTP(secret).at(idp.clock.timestamp()))
    assert resp.status == 303
    claims = await id_token_of(idp, resp.headers["Location"], verifier)
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == mfa.ACR_MFA


async def test_a_code_is_accepted_once(required):
    """RFC 6238 §5.2: the verifier must not accept the second attempt of the same OTP."""
    idp = required
    await idp.add_user()
    resp, _ = await password_step(idp)
    secret, _, _ = await enrol_totp(idp, resp.headers["Location"])
    idp.clock.advance(30)
    code = pyotp.TOTP(secret).at(idp.clock.timestamp())
    idp.client.session.cookie_jar.clear()
    resp, _ = await password_step(idp)
    assert (await second_factor(idp, resp.headers["Location"], code)).status == 303
    idp.client.session.cookie_jar.clear()
    resp, _ = await password_step(idp)
    again = await second_factor(idp, resp.headers["Location"], code)
    assert again.status == 400 and "not correct" in await again.text()


async def test_recovery_code_works_once_and_not_twice(required):
    idp = required
    user = await idp.add_user()
    resp, _ = await password_step(idp)
    _, codes, _ = await enrol_totp(idp, resp.headers["Location"])
    for expected in (303, 400):
        idp.client.session.cookie_jar.clear()
        resp, verifier = await password_step(idp)
        answer = await second_factor(idp, resp.headers["Location"], codes[0].upper(), method="recovery_code")
        assert answer.status == expected, await answer.text()
    assert await idp.services.durable.count_recovery_codes("acme", user.id) == 3
    events = [e.type for e in await idp.services.durable.list_events("acme")]
    assert events.count("recovery_code_used") == 1 and "mfa_failed" in events


async def test_wrong_codes_end_the_pending_sign_in_and_then_lock(required):
    """Brute force of TOTP codes is stopped: five wrong codes and the password must be
    given again; at the lockout's threshold even the right code is refused."""
    idp = required
    await idp.add_user()
    resp, _ = await password_step(idp)
    secret, _, _ = await enrol_totp(idp, resp.headers["Location"])
    wrong = "000000" if pyotp.TOTP(secret).at(idp.clock.timestamp()) != "000000" else "111111"
    statuses = []
    for _ in range(4):  # 4 pending sign-ins x 5 codes = 20: the account policy's max_failures
        idp.client.session.cookie_jar.clear()
        resp, _ = await password_step(idp)
        location = resp.headers["Location"]
        for _ in range(mfa.MAX_ATTEMPTS):
            answer = await second_factor(idp, location, wrong) if _ == 0 else await _post_again(idp, location, wrong)
            statuses.append(answer.status)
    # 20 wrong guesses: the lockout's max_failures (the per-account rate limit allows as many)
    assert statuses == [400] * 20, str(statuses)
    idp.client.session.cookie_jar.clear()
    idp.clock.advance(30)
    resp, _ = await password_step(idp)
    answer = await second_factor(idp, resp.headers["Location"], pyotp.TOTP(secret).at(idp.clock.timestamp()))
    assert answer.status == 429 and "paused" in await answer.text()  # the right code is refused now


async def _post_again(idp, location, code):
    page = await idp.client.get(location, allow_redirects=False)
    if page.status != 200:
        return page
    from tests.accounts.mfa_helpers import action_of, fields_of
    html = await page.text()
    return await idp.client.post(action_of(html, "totp-form"), data={**fields_of(html, "totp-form"), "code": code},
                                 allow_redirects=False)


async def test_step_up_with_acr_values_inside_a_session(idp):
    await idp.add_user()
    secret, _ = await enrolled(idp)
    idp.client.session.cookie_jar.clear()
    # A user with a factor is asked for it at every sign-in: the session is multi-factor.
    idp.clock.advance(60)
    resp, verifier = await password_step(idp)
    resp = await second_factor(idp, resp.headers["Location"], pyotp.TOTP(secret).at(idp.clock.timestamp()))
    claims = await id_token_of(idp, resp.headers["Location"], verifier)
    assert claims["acr"] == mfa.ACR_MFA
    # Inside that session, acr_values=aal2 is met without a question.
    resp, verifier = await authorize(idp, acr_values=mfa.ACR_MFA)
    assert query_of(resp.headers["Location"]).get("code")


async def test_step_up_asks_the_second_factor_in_a_single_factor_session(idp):
    user = await idp.add_user()
    resp, verifier = await password_step(idp)  # no factor yet: a one-factor session
    claims = await id_token_of(idp, resp.headers["Location"], verifier)
    assert claims["acr"] == mfa.ACR_SINGLE
    # alice enrols TOTP (as the account page would)
    from engine.accounts import totp
    secret = totp.new_secret()
    assert await totp.enrol(idp.services, idp.realm(), user.id, secret, pyotp.TOTP(secret).at(idp.clock.timestamp()))
    idp.clock.advance(30)
    # prompt=none cannot step up: unmet_authentication_requirements (OIDC Core §3.1.2.6)
    resp, _ = await authorize(idp, acr_values=mfa.ACR_MFA, prompt="none")
    assert query_of(resp.headers["Location"])["error"] == "unmet_authentication_requirements"
    # acr_values=aal2 inside the session: the second factor is asked, not the password
    resp, verifier = await authorize(idp, acr_values=mfa.ACR_MFA)
    assert resp.headers["Location"].endswith("/mfa"), resp.headers["Location"]
    page = await idp.client.get(resp.headers["Location"])
    assert "Confirm it is you" in await page.text()
    resp = await second_factor(idp, resp.headers["Location"], pyotp.TOTP(secret).at(idp.clock.timestamp()))
    claims = await id_token_of(idp, resp.headers["Location"], verifier)
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == mfa.ACR_MFA


async def test_essential_acr_in_claims_steps_up(idp):
    user = await idp.add_user()
    resp, _ = await password_step(idp)
    from engine.accounts import totp
    secret = totp.new_secret()
    assert await totp.enrol(idp.services, idp.realm(), user.id, secret, pyotp.TOTP(secret).at(idp.clock.timestamp()))
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": [mfa.ACR_MFA]}}})
    resp, _ = await authorize(idp, claims=claims)
    assert resp.headers["Location"].endswith("/mfa")


async def test_unmet_when_no_factor_can_be_used(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    idp = await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), totp="off")
    await idp.add_user()
    resp, _ = await password_step(idp, acr_values=mfa.ACR_MFA)
    assert query_of(resp.headers["Location"])["error"] == "unmet_authentication_requirements"


async def test_bad_claims_parameter_is_invalid_request(idp):
    resp, _ = await authorize(idp, claims="not json")
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


async def test_require_mfa_client_gets_two_factors_whatever_it_asks(idp):
    await idp.add_user()
    secret, _ = await enrolled(idp)
    # the session is now multi-factor; a fresh browser signing in to `strict` is asked the code
    idp.client.session.cookie_jar.clear()
    idp.clock.advance(30)
    resp, verifier = await password_step(idp, client_id="strict", acr_values=mfa.ACR_SINGLE)
    assert resp.headers["Location"].endswith("/mfa")


async def test_remembered_device_skips_the_second_factor(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    idp = await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), totp="required",
                        remember="30d")
    await idp.add_user()
    resp, _ = await password_step(idp)
    await enrol_totp(idp, resp.headers["Location"])
    # same browser, session gone (logout): the password alone, amr says mfa without a method
    session_cookie = "tessera_session_acme"
    idp.client.session.cookie_jar.clear(lambda c: c.key == session_cookie)
    resp, verifier = await password_step(idp)
    claims = await id_token_of(idp, resp.headers["Location"], verifier)
    assert claims["amr"] == ["pwd", "mfa"] and claims["acr"] == mfa.ACR_MFA
    # forgotten (what a reset of the factors, a removal or a password reset does): asked again
    idp.clock.advance(1)
    await mfa.forget_devices(idp.services, idp.realm(), (await idp.services.durable.get_user_by_email(
        "acme", "alice@example.com")).id)
    idp.client.session.cookie_jar.clear(lambda c: c.key == session_cookie)
    resp, _ = await password_step(idp)
    assert resp.headers["Location"].endswith("/mfa")
    # another browser is asked
    idp.client.session.cookie_jar.clear()
    resp, _ = await password_step(idp)
    assert resp.headers["Location"].endswith("/mfa")


async def test_second_factor_page_without_a_pending_sign_in(idp):
    page = await idp.client.get("/mfa", allow_redirects=False)
    assert page.status == 400


async def test_discovery_lists_the_acr_values(idp):
    """OIDC Discovery 1.0 §3 `acr_values_supported`, `claims_parameter_supported`."""
    document = await (await idp.client.get("/.well-known/openid-configuration")).json()
    assert document["acr_values_supported"] == [mfa.ACR_SINGLE, mfa.ACR_MFA]
    assert document["claims_parameter_supported"] is True
    assert {"amr", "acr"} <= set(document["claims_supported"])


async def test_a_multi_factor_first_factor_is_not_asked_a_second(required):
    """A passkey with user verification (amr hwk/swk + user/pin + mfa) is two factors in
    one: even a `required` realm asks nothing more of it (engine.accounts.passkeys)."""
    from engine.exchange import Call
    user = await required.add_user()
    step, amr = await mfa.next_step(required.services, required.realm(), Call.of("GET"),
                                    {"client_id": "strict"}, user.id, ["hwk", "user", "mfa"])
    assert (step, amr) == ("none", ["hwk", "user", "mfa"])
    step, _ = await mfa.next_step(required.services, required.realm(), Call.of("GET"), {"client_id": "spa"},
                                  user.id, ["pwd"])
    assert step == "enrol"


async def test_second_factor_attempts_are_counted_by_method_and_result(required):
    """`mfa_attempts_total{method,result}` (from the audit events)."""
    idp = required
    await idp.add_user()
    resp, _ = await password_step(idp)
    secret, codes, _ = await enrol_totp(idp, resp.headers["Location"])
    idp.client.session.cookie_jar.clear()
    resp, _ = await password_step(idp)
    await second_factor(idp, resp.headers["Location"], "not-a-code", method="recovery_code")
    await second_factor(idp, resp.headers["Location"], codes[1], method="recovery_code")
    text = idp.services.metrics.render().decode()
    assert 'mfa_attempts_total{method="recovery_code",realm="acme",result="failure"} 1.0' in text
    assert 'mfa_attempts_total{method="recovery_code",realm="acme",result="success"} 1.0' in text


async def test_refreshed_id_tokens_keep_amr_and_acr(required):
    """OIDC Core §12.2: an ID token from a refresh says how the user signed in then."""
    idp = required
    await idp.add_user()
    resp, verifier = await password_step(idp)
    _, _, done = await enrol_totp(idp, resp.headers["Location"])
    tokens = await (await exchange(idp, query_of(done.headers["Location"])["code"], verifier)).json()
    resp = await idp.client.post("/token", data={"grant_type": "refresh_token", "client_id": "spa",
                                                 "refresh_token": tokens["refresh_token"]})
    claims = jwt_parts((await resp.json())["id_token"])[1]
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == mfa.ACR_MFA


async def test_the_lockout_pauses_second_factor_sign_in(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Wrong codes count against the user like wrong passwords (the realm's `lockout`
    policy): at its threshold even the right code is refused for a while."""
    idp = await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), totp="required",
                        extra="lockout: {account: {free_failures: 1, max_failures: 3}}\n")
    await idp.add_user()
    resp, _ = await password_step(idp)
    secret, _, _ = await enrol_totp(idp, resp.headers["Location"])
    idp.clock.advance(30)
    idp.client.session.cookie_jar.clear()
    resp, _ = await password_step(idp)
    location = resp.headers["Location"]
    wrong = "000000" if pyotp.TOTP(secret).at(idp.clock.timestamp()) != "000000" else "111111"
    for _ in range(3):
        assert (await _post_again(idp, location, wrong)).status == 400
    answer = await _post_again(idp, location, pyotp.TOTP(secret).at(idp.clock.timestamp()))
    assert answer.status == 429 and "paused" in await answer.text()
    assert "Retry-After" in answer.headers
    assert "lockout" in {e.type for e in await idp.services.durable.list_events("acme")}
    idp.clock.advance(16 * 60)  # lockout_for (15 min) later, the right code works (a new sign-in:
    idp.client.session.cookie_jar.clear()  # the pending one lived lifetimes.pending_flow, 10 min)
    resp, _ = await password_step(idp)
    answer = await second_factor(idp, resp.headers["Location"], pyotp.TOTP(secret).at(idp.clock.timestamp()))
    assert answer.status == 303 and "code=" in answer.headers["Location"]


async def test_using_a_recovery_code_mails_the_user(required):
    idp = required
    await idp.add_user()
    resp, _ = await password_step(idp)
    _, codes, _ = await enrol_totp(idp, resp.headers["Location"])
    idp.client.session.cookie_jar.clear()
    resp, _ = await password_step(idp)
    assert (await second_factor(idp, resp.headers["Location"], codes[0], method="recovery_code")).status == 303
    await idp.services.mail.drain()
    outbox = idp.services.runtime.config.path.parent / "var" / "outbox"
    mails = [p.read_text() for p in outbox.glob("*.eml")]
    assert any("A recovery code was used to sign in" in m and "alice@example.com" in m for m in mails), mails


async def test_a_failed_passkey_ceremony_is_shown_on_the_pages(required):
    """engine.accounts.passkeys sends the browser back with ?error=passkey."""
    idp = required
    await idp.add_user()
    resp, _ = await password_step(idp)
    enrol = await idp.client.get(resp.headers["Location"] + "?error=passkey")
    assert "The passkey could not be used" in await enrol.text()
    await enrol_totp(idp, resp.headers["Location"])
    idp.client.session.cookie_jar.clear()
    resp, _ = await password_step(idp)
    page = await idp.client.get(resp.headers["Location"] + "?error=passkey")
    assert page.status == 200 and "The passkey could not be used" in await page.text()


async def test_an_essential_acr_nobody_has_is_unmet(idp):
    """OIDC Core §5.5.1.1: an essential acr that cannot be met fails the authentication."""
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["urn:example:loa:4"]}}})
    resp, _ = await authorize(idp, claims=claims)
    assert query_of(resp.headers["Location"])["error"] == "unmet_authentication_requirements"
    voluntary = json.dumps({"id_token": {"acr": {"values": ["urn:example:loa:4"]}}})
    resp, _ = await authorize(idp, claims=voluntary)
    assert "/login?" in resp.headers["Location"]  # a voluntary one is only a wish


async def test_access_tokens_say_how_the_user_signed_in(required):
    """RFC 9068 §2.2.1 `acr`/`amr` in JWT access tokens (for RFC 9470 step-up at resource
    servers; introspection passes them on too)."""
    idp = required
    await idp.add_user()
    resp, verifier = await password_step(idp)
    _, _, done = await enrol_totp(idp, resp.headers["Location"])
    tokens = await (await exchange(idp, query_of(done.headers["Location"])["code"], verifier)).json()
    claims = jwt_parts(tokens["access_token"])[1]
    assert claims["acr"] == mfa.ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]
