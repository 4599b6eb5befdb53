"""Rate limits wherever a secret is tried (issue 16 item 8; OWASP Authentication Cheat
Sheet, "Protect against automated attacks"; RFC 6749 §10.10 "the authorization server
MUST prevent attackers from guessing" credentials; RFC 7662 §4 and RFC 7009 §5 on
token-scanning). Failures are counted per address and per configured client; past a
budget every attempt is refused with 429 and `Retry-After` before its secret is looked at
(a refused guess, right or wrong, teaches nothing); successes are never counted, so a
working client or resource server never meets the limits."""

from __future__ import annotations

import base64

import pytest

from engine.clock import FrozenClock
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.oauth.conftest import ACME, OTHER, WORKER_SECRET, Idp, basic_auth, issue_user_tokens, write_config

WRONG = basic_auth("worker", "w" * 40)
RIGHT = basic_auth("worker", WORKER_SECRET)
CC = {"grant_type": "client_credentials"}


async def test_wrong_client_secrets_are_slowed_and_then_even_the_right_one_waits(idp):
    statuses = [(await idp.client.post("/token", data=CC, headers=WRONG)).status for _ in range(150)]
    assert statuses[:20] == [401] * 20  # the default budget: 20 failures a minute per address
    assert set(statuses[20:]) == {429}
    refused = await idp.client.post("/token", data=CC, headers=RIGHT)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"] == "rate_limited"
    idp.clock.advance(60)  # the window ends (130 refused attempts were not counted)
    assert (await idp.client.post("/token", data=CC, headers=RIGHT)).status == 200


async def test_steady_guessing_is_refused_for_longer(idp):
    """The long form (ten times the budget over sixty windows): 20 failures in each of ten
    minutes, and the eleventh minute is refused too, for the rest of the hour."""
    now = idp.clock.timestamp()
    idp.clock.advance(3600 - now % 3600)  # the start of an hour: all ten minutes in one long window
    for _ in range(10):
        for _ in range(20):
            assert (await idp.client.post("/token", data=CC, headers=WRONG)).status == 401
        idp.clock.advance(60)
    refused = await idp.client.post("/token", data=CC, headers=RIGHT)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 60


async def test_many_successes_are_never_slowed(idp):
    for _ in range(60):
        assert (await idp.client.post("/token", data=CC, headers=RIGHT)).status == 200


async def test_failures_at_introspection_and_revocation_count_too(idp):
    for path in ("/introspect", "/revoke") * 10:
        assert (await idp.client.post(path, data={"token": "x"}, headers=WRONG)).status == 401
    refused = await idp.client.post("/introspect", data={"token": "x"}, headers=RIGHT)
    assert refused.status == 429 and "Retry-After" in refused.headers


async def test_unknown_client_ids_are_counted_per_address(idp):
    for n in range(20):
        resp = await idp.client.post("/token", data=CC, headers=basic_auth(f"nobody-{n}", "s"))
        assert resp.status == 401
    assert (await idp.client.post("/token", data=CC, headers=RIGHT)).status == 429


SMALL = "rate_limits: {introspect_per_client: {requests: 5}, revoke_per_ip: {requests: 3}}\n"


@pytest.fixture
async def small(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> Idp:
    """The test IdP with small per-realm budgets (`rate_limits:` in the realm file)."""
    port = unused_tcp_port_factory()
    config = write_config(tmp_path, backend, {"acme": ACME + SMALL, "other": OTHER}, f"http://127.0.0.1:{port}")
    clock = FrozenClock()
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    client = await aiohttp_client(app, server_kwargs={"port": port})
    return Idp(client=client, services=app[SERVICES], clock=clock)


async def test_introspection_has_a_per_client_budget(small):
    """`rate_limits.introspect_per_client` (60,000 a minute by default, far above what a
    resource server asks); a smaller one, set in the realm file, shows it holds."""
    idp = small
    answers = [(await idp.client.post("/introspect", data={"token": "x"}, headers=RIGHT)).status for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2


async def test_userinfo_bearer_guessing_is_limited_per_address(idp):
    """RFC 6750 §5.2 (token guessing): bad tokens are counted per address; past the budget
    even a good token waits; good tokens are never counted."""
    user = await idp.add_user()
    good = (await issue_user_tokens(idp, user))["access_token"]
    for _ in range(30):
        ok = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {good}"})
        assert ok.status == 200
    statuses = [(await idp.client.get("/userinfo", headers={"Authorization": "Bearer guess"})).status
                for _ in range(125)]
    assert statuses[:120] == [401] * 120 and set(statuses[120:]) == {429}
    refused = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {good}"})
    assert refused.status == 429 and "Retry-After" in refused.headers
    idp.clock.advance(60)
    assert (await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {good}"})).status == 200


async def test_revocation_is_limited_per_address(small):
    answers = [(await small.client.post("/revoke", data={"token": "x"}, headers=RIGHT)).status for _ in range(4)]
    assert answers == [200, 200, 200, 429]


async def test_failures_for_one_client_from_many_addresses_are_counted_per_client(tmp_path, backend, aiohttp_client):
    """A spread-out guesser (ten addresses, ten failures each: under the per-address budget)
    still spends the client's budget (`client_auth_failures_per_client`, 100 a minute)."""
    from tests.oauth.test_client_ip import app_client

    client, _, _ = await app_client(tmp_path, backend, aiohttp_client, "trusted_proxies: [127.0.0.0/8]\n")
    for n in range(100):
        headers = {**WRONG, "X-Forwarded-For": f"198.51.100.{n // 10}"}
        assert (await client.post("/token", data=CC, headers=headers)).status == 401
    refused = await client.post("/token", data=CC, headers={**RIGHT, "X-Forwarded-For": "203.0.113.1"})
    assert refused.status == 429 and "Retry-After" in refused.headers
    stranger = {**basic_auth("nobody", "x"), "X-Forwarded-For": "203.0.113.1"}
    other = await client.post("/token", data=CC, headers=stranger)
    assert other.status == 401  # another client id from that address is not refused


async def test_failures_naming_a_public_client_do_not_refuse_it_to_everyone(tmp_path, backend, aiohttp_client):
    """A public client has no secret to guess: failures naming it are counted per address
    only, so nobody can have it refused to every user."""
    from tests.oauth.test_client_ip import app_client

    client, _, _ = await app_client(tmp_path, backend, aiohttp_client, "trusted_proxies: [127.0.0.0/8]\n")
    for n in range(200):
        data = {"grant_type": "refresh_token", "refresh_token": "rt_x", "client_id": "spa", "client_secret": "s"}
        resp = await client.post("/token", data=data, headers={"X-Forwarded-For": f"198.51.100.{n // 10}"})
        assert resp.status == 401
    data = {"grant_type": "refresh_token", "refresh_token": "rt_x", "client_id": "spa"}
    resp = await client.post("/token", data=data, headers={"X-Forwarded-For": "203.0.113.1"})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"  # authenticated, not refused


def test_basic_credentials_are_form_decoded_after_base64():
    """RFC 6749 §2.3.1: the client id and secret are form-urlencoded before base64, so `%XX`
    and `+` are decoded after it; a value with neither is taken as it is."""
    import base64

    from engine.oauth.clients import _decode_basic

    def encoded(raw: str) -> str:
        return base64.b64encode(raw.encode()).decode()

    assert _decode_basic(encoded("svc%3Aa:s+e%25cret")) == ("svc:a", "s e%cret")
    assert _decode_basic(encoded("svc-a:plain-secret_1")) == ("svc-a", "plain-secret_1")
    assert _decode_basic(encoded("no-colon")) is None
