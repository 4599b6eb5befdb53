"""RFC 8628 the device authorization grant, through HTTP on the real app factory, on both
store pairs: the device authorization endpoint (§3.1, §3.2), the verification pages
(§3.3: user code, the realm's sign-in, a confirmation naming client and scopes), polling
the token endpoint (§3.4, §3.5) and discovery (§4)."""

from __future__ import annotations

import re

import pytest

from tests.oauth.conftest import ACME, Idp, build_idp, jwt_parts, query_of
from tests.oauth.flow import basic, form_fields, submit_login

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CONSOLE_SECRET = "console-secret-" + "c" * 32
DEVICE_CLIENTS = f"""\
  - client_id: tv
    name: Living-room TV
    type: public
    grant_types: ["{GRANT}", refresh_token]
    scopes: [openid, profile, email, offline_access, videos.read]
  - client_id: console
    type: confidential
    secret_sha256: {__import__("hashlib").sha256(CONSOLE_SECRET.encode()).hexdigest()}
    grant_types: ["{GRANT}"]
    scopes: [openid, videos.read]
"""
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")
EMAIL, PASSWORD = "alice@example.com", "correct horse battery"


make_idp = build_idp  # the IdP with a given `acme` realm (tests.oauth.conftest)


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> Idp:
    return await make_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), ACME + DEVICE_CLIENTS)


async def device_code(idp: Idp, client_id: str = "tv", scope: str = "openid profile offline_access", **extra):
    resp = await idp.client.post("/device/code", data={"client_id": client_id, "scope": scope, **extra})
    return resp, await resp.json()


async def poll(idp: Idp, code: str, client_id: str = "tv"):
    resp = await idp.client.post("/token", data={"grant_type": GRANT, "device_code": code, "client_id": client_id})
    return resp, await resp.json()


async def enter_code(idp: Idp, user_code: str):
    return await idp.client.post("/device", data={"user_code": user_code}, allow_redirects=False)


async def confirm(idp: Idp, location: str, decision: str = "approve"):
    page = await idp.client.get(location, allow_redirects=False)
    assert page.status == 200, await page.text()
    html = await page.text()
    return await idp.client.post("/device/confirm", data={**form_fields(html), "decision": decision},
                                 allow_redirects=False)


async def sign_in_and_decide(idp: Idp, user_code: str, decision: str = "approve"):
    resp = await enter_code(idp, user_code)
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    if "/login?" in location:
        resp = await submit_login(idp, location, EMAIL, PASSWORD)
        assert resp.status == 303, await resp.text()
        location = resp.headers["Location"]
    assert "/device/confirm?flow=" in location, location
    return await confirm(idp, location, decision)


async def test_device_authorization_response(idp):
    """§3.2: device_code, user_code (XXXX-XXXX from the consonant alphabet),
    verification_uri(_complete), expires_in (lifetimes.device_code, 10 min), interval 5; no-store."""
    resp, body = await device_code(idp)
    assert resp.status == 200, body
    assert resp.headers["Cache-Control"] == "no-store"
    assert len(body["device_code"]) >= 40
    assert USER_CODE.match(body["user_code"]), body["user_code"]
    assert body["verification_uri"] == f"{idp.issuer}/device"
    assert body["verification_uri_complete"] == f"{idp.issuer}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600 and body["interval"] == 5
    # The device code is stored only as its SHA-256 (a store dump does not hold it).
    assert await idp.services.ephemeral.get(f"acme:device:{body['device_code']}") is None


async def test_approve_path_issues_tokens_exactly_once(idp):
    """§3.3-§3.5: pending until approved in the browser (user code page, sign-in,
    confirmation naming client and scopes), then access, ID and refresh tokens, once."""
    user = await idp.add_user()
    _, body = await device_code(idp)
    resp, error = await poll(idp, body["device_code"])
    assert resp.status == 400 and error["error"] == "authorization_pending"

    page = await idp.client.get(body["verification_uri_complete"].removeprefix(idp.issuer))
    assert page.status == 200 and f'value="{body["user_code"]}"' in await page.text()
    resp = await enter_code(idp, body["user_code"])
    assert resp.status == 303 and "/login?flow=" in resp.headers["Location"]
    resp = await submit_login(idp, resp.headers["Location"], EMAIL, PASSWORD)
    assert resp.status == 303 and "/device/confirm?flow=" in resp.headers["Location"]
    confirm_page = await (await idp.client.get(resp.headers["Location"])).text()
    assert "Living-room TV" in confirm_page and body["user_code"] in confirm_page
    assert 'name="csrf"' in confirm_page and "Approve" in confirm_page and "Deny" in confirm_page
    resp = await confirm(idp, resp.headers["Location"], "approve")
    assert resp.status == 200 and "Device connected" in await resp.text()

    idp.clock.advance(5)
    resp, tokens = await poll(idp, body["device_code"])
    assert resp.status == 200, tokens
    assert resp.headers["Cache-Control"] == "no-store"
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "openid profile offline_access"
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens)
    _, id_claims = jwt_parts(tokens["id_token"])
    assert id_claims["sub"] == user.id and id_claims["aud"] in ("tv", ["tv"])
    assert "sid" in id_claims  # the browser session the user approved in
    assert id_claims["amr"] == ["pwd"] and id_claims["acr"] == "aal1"  # how (RFC 8176; issue 20)

    # Exactly once: a second poll after success is invalid_grant.
    idp.clock.advance(5)
    resp, error = await poll(idp, body["device_code"])
    assert resp.status == 400 and error["error"] == "invalid_grant"

    # Refresh tokens rotate as for every grant (the old one is spent).
    resp = await idp.client.post("/token", data={"grant_type": "refresh_token", "client_id": "tv",
                                                 "refresh_token": tokens["refresh_token"]})
    rotated = await resp.json()
    assert resp.status == 200 and rotated["refresh_token"] != tokens["refresh_token"]
    resp = await idp.client.post("/token", data={"grant_type": "refresh_token", "client_id": "tv",
                                                 "refresh_token": tokens["refresh_token"]})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"


async def test_sso_session_goes_straight_to_confirmation(idp):
    """§3.3 with the realm's SSO session: a signed-in browser is not asked to sign in again,
    but the confirmation is always shown (§5.4 remote phishing)."""
    await idp.add_user()
    _, first = await device_code(idp)
    await sign_in_and_decide(idp, first["user_code"])
    _, second = await device_code(idp)
    resp = await enter_code(idp, second["user_code"])
    assert resp.status == 303 and "/device/confirm?flow=" in resp.headers["Location"]
    resp = await confirm(idp, resp.headers["Location"])
    idp.clock.advance(5)
    resp, tokens = await poll(idp, second["device_code"])
    assert resp.status == 200 and "access_token" in tokens and "id_token" in tokens


async def test_deny_is_access_denied(idp):
    """§3.5 access_denied: the user pressed Deny."""
    await idp.add_user()
    _, body = await device_code(idp)
    resp = await sign_in_and_decide(idp, body["user_code"], "deny")
    assert resp.status == 200 and "denied" in await resp.text()
    resp, error = await poll(idp, body["device_code"])
    assert resp.status == 400 and error["error"] == "access_denied"
    events = [e.type for e in await idp.services.durable.list_events("acme")]
    assert "device_denied" in events and "device_approved" not in events


async def test_confirmation_requires_csrf(idp):
    """The confirmation is CSRF-protected like the consent page: without the flow's token
    the device is not approved."""
    await idp.add_user()
    _, body = await device_code(idp)
    resp = await enter_code(idp, body["user_code"])
    resp = await submit_login(idp, resp.headers["Location"], EMAIL, PASSWORD)
    flow_id = query_of(resp.headers["Location"])["flow"]
    resp = await idp.client.post("/device/confirm", data={"flow": flow_id, "decision": "approve"},
                                 allow_redirects=False)
    assert resp.status == 400
    resp, error = await poll(idp, body["device_code"])
    assert error["error"] == "authorization_pending"


async def test_expired_device_code(idp):
    """§3.5 expired_token after expires_in; the user code no longer works either."""
    await idp.add_user()
    _, body = await device_code(idp)
    idp.clock.advance(body["expires_in"] + 1)
    resp, error = await poll(idp, body["device_code"])
    assert resp.status == 400 and error["error"] == "expired_token"
    resp = await enter_code(idp, body["user_code"])
    assert resp.status == 400 and "not valid" in await resp.text()


async def test_slow_down_grows_the_interval(idp):
    """§3.5 slow_down: polling faster than the interval is refused and the interval of
    this device code grows by 5 seconds each time."""
    _, body = await device_code(idp)
    resp, error = await poll(idp, body["device_code"])
    assert error["error"] == "authorization_pending"
    resp, error = await poll(idp, body["device_code"])  # at once: too fast
    assert resp.status == 400 and error["error"] == "slow_down"
    idp.clock.advance(6)  # enough for 5 s, not for the grown 10 s
    resp, error = await poll(idp, body["device_code"])
    assert error["error"] == "slow_down"
    idp.clock.advance(15)  # the interval is now 15 s
    resp, error = await poll(idp, body["device_code"])
    assert error["error"] == "authorization_pending"


async def test_user_code_is_compared_case_and_dash_insensitively(idp):
    """§6.1: the user may type the code in lower case, without the dash or with spaces."""
    await idp.add_user()
    for typed in (lambda c: c.lower().replace("-", ""), lambda c: c.replace("-", " ").lower()):
        _, body = await device_code(idp)
        resp = await enter_code(idp, typed(body["user_code"]))
        assert resp.status == 303 and "/login?flow=" in resp.headers["Location"], await resp.text()


async def test_wrong_user_codes_are_rate_limited_per_address(idp):
    """§5.1: user codes are short, so the codes tried from one address are limited
    (20 per 15 min): after that even the right code is refused (429)."""
    _, body = await device_code(idp)
    for _ in range(20):
        resp = await enter_code(idp, "BBBB-BBBB")
        assert resp.status == 400
    resp = await enter_code(idp, body["user_code"])
    assert resp.status == 429 and "Retry-After" in resp.headers


async def test_wrong_user_codes_are_capped_per_realm(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """§5.1: a realm-wide budget of wrong codes bounds guessing from many addresses."""
    acme = ACME.replace("name: acme\n", "name: acme\nrate_limits:\n  device_user_code_per_ip: {requests: 100}\n"
                        "  device_user_code_per_realm: {requests: 3, per: 15m}\n", 1) + DEVICE_CLIENTS
    idp = await make_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), acme)
    for _ in range(3):
        assert (await enter_code(idp, "BBBB-BBBB")).status == 400
    assert (await enter_code(idp, "CCCC-CCCC")).status == 429


async def test_discovery_advertises_the_device_grant(idp):
    """RFC 8628 §4: device_authorization_endpoint, and the grant type where a client has it."""
    metadata = await (await idp.client.get("/.well-known/openid-configuration")).json()
    assert metadata["device_authorization_endpoint"] == f"{idp.issuer}/device/code"
    assert GRANT in metadata["grant_types_supported"]
    other = await (await idp.client.get("/realms/other/.well-known/openid-configuration")).json()
    assert GRANT not in other["grant_types_supported"]


async def test_client_without_the_grant_is_unauthorized(idp):
    """§3.1/§3.4: only clients listing the grant may use it (RFC 6749 §5.2 unauthorized_client)."""
    resp, error = await device_code(idp, client_id="spa", scope="openid")
    assert resp.status == 400 and error["error"] == "unauthorized_client"
    resp, error = await poll(idp, "whatever", client_id="spa")
    assert resp.status == 400 and error["error"] == "unauthorized_client"


async def test_confidential_client_authenticates(idp):
    """§3.1: a confidential client authenticates as at the token endpoint (RFC 6749 §2.3)."""
    resp = await idp.client.post("/device/code", data={"client_id": "console", "scope": "openid"})
    assert resp.status == 401 and (await resp.json())["error"] == "invalid_client"
    resp = await idp.client.post("/device/code", data={"scope": "openid videos.read"},
                                 headers={"Authorization": basic("console", CONSOLE_SECRET)})
    assert resp.status == 200 and USER_CODE.match((await resp.json())["user_code"])


async def test_device_code_is_bound_to_its_client(idp):
    """§3.4: a device code polled by another client is invalid_grant; unknown scopes are refused."""
    _, body = await device_code(idp, scope="openid")
    resp = await idp.client.post("/token", data={"grant_type": GRANT, "device_code": body["device_code"]},
                                 headers={"Authorization": basic("console", CONSOLE_SECRET)})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
    resp, error = await device_code(idp, scope="openid admin")
    assert resp.status == 400 and error["error"] == "invalid_scope"
    resp, error = await poll(idp, "not-a-device-code")
    assert resp.status == 400 and error["error"] == "invalid_grant"


@pytest.fixture
async def fed(tmp_path, backend, aiohttp_client, aiohttp_server, unused_tcp_port_factory, monkeypatch):
    """The federation realm of tests/federation (fake Google and GitHub) with the device clients."""
    from tests.federation import conftest as federation

    plain = federation.realm_yaml
    clients = DEVICE_CLIENTS.replace(", videos.read", "")  # that realm declares no such scope
    monkeypatch.setattr(federation, "realm_yaml", lambda *a, **kw: plain(*a, **kw) + clients)
    return await federation.start_federation(tmp_path, backend, aiohttp_client, aiohttp_server,
                                             unused_tcp_port_factory())


async def _device_through_google(fed):
    from tests.federation.browser import open_callback, through_upstream

    idp = fed.idp
    _, body = await device_code(idp)
    resp = await enter_code(idp, body["user_code"])
    assert resp.status == 303 and "/login?flow=" in resp.headers["Location"]
    html = await (await idp.client.get(resp.headers["Location"])).text()
    button = re.search(r'href="([^"]*/login/google\?flow=[^"]+)"', html).group(1).replace("&amp;", "&")
    resp = await idp.client.get(button, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    return body, await open_callback(fed, await through_upstream(fed, resp.headers["Location"]))


async def test_device_sign_in_through_a_federated_provider(fed):
    """§3.3: the user signs in through any of the realm's providers (here an upstream
    OpenID provider), then confirms; the device gets its tokens."""
    body, resp = await _device_through_google(fed)
    assert resp.status == 303 and "/device/confirm?flow=" in resp.headers["Location"], await resp.text()
    resp = await confirm(fed.idp, resp.headers["Location"])
    assert resp.status == 200
    resp, tokens = await poll(fed.idp, body["device_code"])
    assert resp.status == 200 and "access_token" in tokens, tokens


async def test_upstream_denial_in_a_device_flow_is_a_page(fed):
    """A device flow has no redirect URI: the upstream's access_denied is shown in the
    browser (never a 500, never a redirect), and the device keeps waiting."""
    fed.google.deny = True
    body, resp = await _device_through_google(fed)
    assert 400 <= resp.status < 500 and "Location" not in resp.headers
    assert "text/html" in resp.headers["Content-Type"]
    resp, error = await poll(fed.idp, body["device_code"])
    assert error["error"] == "authorization_pending"


async def test_a_device_login_is_told_when_its_session_ends(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """OIDC Back-Channel Logout 1.0 §2.5 for a device client: the browser session the user
    approved the device in got it tokens, so ending that session sends it a logout token."""
    from engine.accounts import admin
    from engine.web.backchannel import deliver_due
    from tests.oauth.test_backchannel_logout import Receiver, verified_logout_token

    receiver = Receiver(unused_tcp_port_factory())
    await receiver.start()
    try:
        told = DEVICE_CLIENTS.replace(
            "    scopes: [openid, profile, email, offline_access, videos.read]\n",
            "    scopes: [openid, profile, email, offline_access, videos.read]\n"
            f"    backchannel_logout_uri: http://127.0.0.1:{receiver.port}/bcl/tv\n", 1)
        idp = await make_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), ACME + told)
        user = await idp.add_user(EMAIL, PASSWORD)
        _, started = await device_code(idp)
        assert (await sign_in_and_decide(idp, started["user_code"])).status in (200, 303)
        resp, tokens = await poll(idp, started["device_code"])
        assert resp.status == 200 and "id_token" in tokens
        sid = jwt_parts(tokens["id_token"])[1]["sid"]
        await admin.revoke_sessions(idp.services, idp.realm(), user)
        assert await deliver_due(idp.services) == 1
        [(path, _, form)] = receiver.posts
        claims = await verified_logout_token(idp, form["logout_token"], "tv")
        assert path == "/bcl/tv" and claims["sub"] == user.id and claims["sid"] == sid
    finally:
        await receiver.stop()


async def test_a_device_approved_before_the_users_sessions_end_gets_no_tokens(idp):
    """RFC 8628 §5.4 (the device is as good as the session that approved it) and OWASP
    "invalidate sessions on password change": an approval given before the user's sessions
    were ended (a password reset, an admin's `users revoke`) is void: the device polls
    after it and gets invalid_grant, not tokens that outlive the reset."""
    from engine.accounts.admin import end_everything

    user = await idp.add_user()
    _, body = await device_code(idp)
    resp = await sign_in_and_decide(idp, body["user_code"])
    assert resp.status == 200
    idp.clock.advance(1)
    await end_everything(idp.services, idp.services.runtime.realms["acme"], user.id, "test")
    idp.clock.advance(5)
    resp, error = await poll(idp, body["device_code"])
    assert resp.status == 400 and error["error"] == "invalid_grant"
