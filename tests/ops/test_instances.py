"""Many instances behave as one IdP (issue 6, item 5): two real `idp serve` processes on
different ports share one PostgreSQL database and one Redis (a key prefix of their own),
and a browser and its clients use whichever instance they are sent to, as behind a load
balancer. Every refresh-token rotation is kept exactly once, and every reuse detected,
also when the requests race across instances; sign-in limits and lockouts count the
attempts made on either instance."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import delete_redis_prefix, run_in_thread, truncate_data_tables
from tests.ops.browser import Browser, client_credentials, exchange, query_of, refresh, refresh_async
from tests.ops.conftest import add_user
from tests.ops.servers import OPS_REALM, PASSWORD, WORKER_SECRET, free_port, start_idp, write_deployment

pytestmark = pytest.mark.production

ALICE = "alice@example.com"
REALM = OPS_REALM + "rate_limits:\n  login_per_account: {requests: 3, per: 15m}\n"
LOCKOUT_REALM = OPS_REALM + "lockout:\n  account: {free_failures: 2, max_failures: 2, lockout_for: 15m}\n"


def metric(base_url: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, scraped from /metrics."""
    text = httpx.get(base_url + "/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture
def instances(request, tmp_path, pg_database_url, redis_url, monkeypatch):
    """Instances A and B: same database, same Redis prefix, same issuer (A's URL stands in
    for the load balancer's), and the realm `request.param` (default REALM)."""
    realm = getattr(request, "param", REALM)
    run_in_thread(lambda: truncate_data_tables(pg_database_url))
    prefix = f"tessera-ops-{secrets.token_hex(6)}:"
    port_a, port_b = free_port(), free_port()
    servers = []
    for name, port in (("a", port_a), ("b", port_b)):
        directory = tmp_path / name
        config = write_deployment(directory, base_url=f"http://127.0.0.1:{port_a}", durable=pg_database_url,
                                  ephemeral=redis_url, prefix=prefix, realms={"acme": realm})
        if name == "a":
            add_user(config, ALICE, monkeypatch)
        servers.append(start_idp(directory, port=port, name=name))
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        codes = [server.stop() for server in servers]
        run_in_thread(lambda: delete_redis_prefix(redis_url, prefix))
    assert codes == [0, 0], [server.output()[-2000:] for server in servers]
    for server in servers:  # nothing secret reached the logs of either instance
        assert "Traceback" not in server.output()


def test_login_on_a_exchange_on_b_refresh_reuse_and_logout(instances):
    a, b = instances
    A, B = a.url + "/realms/acme", b.url + "/realms/acme"
    browser = Browser()

    code, verifier = browser.login_for_code(A, A, email=ALICE)
    first = exchange(B, code, verifier)  # the code made on A is redeemed on B
    assert first.status_code == 200, first.text
    tokens = browser.remember(first.json())
    userinfo = httpx.get(B + "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200 and userinfo.json()["email"] == ALICE

    rotated = refresh(A, tokens["refresh_token"])  # B's refresh token rotates on A
    assert rotated.status_code == 200, rotated.text
    successor = browser.remember(rotated.json())["refresh_token"]
    reuse = refresh(B, tokens["refresh_token"])  # the old one comes back, on B
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert refresh(A, successor).json()["error"] == "invalid_grant"  # the whole family is revoked
    assert metric(b.url, "refresh_token_reuse_detected_total", realm="acme") == 1
    assert metric(a.url, "refresh_token_reuse_detected_total", realm="acme") == 0

    # The SSO session made on A works on B; logging out on B ends it on A.
    code, verifier = browser.code_by_session(B)
    second = browser.remember(exchange(A, code, verifier).json())
    logout = browser.http.get(B + "/logout", params={
        "id_token_hint": second["id_token"], "post_logout_redirect_uri": "http://localhost:3000/"})
    assert logout.status_code == 303, logout.text
    response, _ = browser.authorize(A, prompt="none")
    assert query_of(response.headers["location"])["error"] == "login_required"
    assert refresh(A, second["refresh_token"]).json()["error"] == "invalid_grant"  # the session's family
    browser.close()

    for server in (a, b):
        log = server.output()
        leaked = [value for value in browser.secrets_seen if value in log]
        assert not leaked, f"secret values in the log of {server.log_path.name}"


def test_sign_in_limit_is_counted_across_instances(instances):
    a, b = instances
    A, B = a.url + "/realms/acme", b.url + "/realms/acme"
    browser = Browser()
    response, _ = browser.authorize(A)
    login = response.headers["location"]
    # login_per_account allows 3 attempts per 15 minutes, wherever they land.
    for base in (A, B, A):
        assert browser.submit_login(base, login, ALICE, "wrong password").status_code == 400
    refused = browser.submit_login(B, login, ALICE, PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    failures = metric(a.url, "login_failures_total", realm="acme", provider="password") + metric(
        b.url, "login_failures_total", realm="acme", provider="password")
    assert failures == 3
    browser.close()


@pytest.mark.parametrize("instances", [LOCKOUT_REALM], indirect=True)
def test_lockout_is_shared_across_instances(instances):
    a, b = instances
    A, B = a.url + "/realms/acme", b.url + "/realms/acme"
    browser = Browser()
    response, _ = browser.authorize(A)
    login = response.headers["location"]
    assert browser.submit_login(A, login, ALICE, "wrong password").status_code == 400
    assert browser.submit_login(B, login, ALICE, "wrong again").status_code == 400  # the second: locked
    locked = browser.submit_login(A, login, ALICE, PASSWORD)  # even the right password, elsewhere
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 800
    assert metric(b.url, "lockouts_total", realm="acme") == 1
    browser.close()


def test_an_access_token_revoked_on_a_is_inactive_on_b_within_a_second(instances):
    """RFC 7009 §2 and RFC 7662 §2.2 across instances (issue 7, target 3: "a revoked token is
    inactive on every instance within 1 s"). B has just answered `active` for the token, so
    it holds the short-lived "not revoked" memory that keeps introspection off Redis; the
    revocation on A must still reach B's answers within a second, and A's at once."""
    a, b = instances
    A, B = a.url + "/realms/acme", b.url + "/realms/acme"
    issued = client_credentials(A)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    with httpx.Client(auth=("worker", WORKER_SECRET), timeout=10) as worker:  # keep-alive, as a gateway
        def active(base: str) -> bool:
            answer = worker.post(f"{base}/introspect", data={"token": token})
            assert answer.status_code == 200, answer.text
            return answer.json()["active"]

        assert active(B) and active(A)
        revoked = worker.post(f"{A}/revoke", data={"token": token, "token_type_hint": "access_token"})
        assert revoked.status_code == 200, revoked.text
        started = time.monotonic()
        assert not active(A)  # the revoking instance forgets its own memory at once
        while active(B):
            assert time.monotonic() - started < 1.0, "B still calls a revoked token active after 1 s"
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        time.sleep(0.6)  # and it stays inactive once B's memory of the earlier answer is gone
        assert not active(B) and not active(A), elapsed


async def _family_chains(bases: list[str], tokens: list[str], rounds: int) -> list[str]:
    """Each family rotated `rounds` times in a row, alternating instances; all families
    at once. Returns the last token of each family."""
    async with httpx.AsyncClient(timeout=20) as client:
        async def chain(index: int, token: str) -> str:
            for step in range(rounds):
                response = await refresh_async(client, bases[(index + step) % 2], token)
                assert response.status_code == 200, response.text
                token = response.json()["refresh_token"]
            return token

        return list(await asyncio.gather(*(chain(i, t) for i, t in enumerate(tokens))))


async def _race(bases: list[str], tokens: list[str], racers: int) -> list[list[httpx.Response]]:
    """Every family's current token sent `racers` times at once, to both instances."""
    async with httpx.AsyncClient(timeout=20) as client:
        return list(await asyncio.gather(*(
            asyncio.gather(*(refresh_async(client, bases[r % 2], token) for r in range(racers)))
            for token in tokens
        )))


async def _families(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT f.id, f.revoked_reason, count(t.*) AS tokens,"
            " count(t.*) FILTER (WHERE t.replaced_by IS NULL) AS unreplaced,"
            " count(DISTINCT t.replaced_by) AS successors"
            " FROM refresh_families f LEFT JOIN refresh_tokens t ON t.realm = f.realm AND t.family_id = f.id"
            " GROUP BY f.id, f.revoked_reason"
        )
    finally:
        await conn.close()


def test_concurrent_rotations_across_instances_lose_nothing_and_detect_every_reuse(instances, pg_database_url):
    a, b = instances
    bases = [a.url + "/realms/acme", b.url + "/realms/acme"]
    browser = Browser()
    browser.login_for_code(bases[0], email=ALICE)  # signs in; the codes below come from the session
    families = 6
    first_tokens = []
    for index in range(families):
        code, verifier = browser.code_by_session(bases[index % 2])
        response = exchange(bases[(index + 1) % 2], code, verifier)
        assert response.status_code == 200, response.text
        first_tokens.append(response.json()["refresh_token"])

    rounds = 5
    last = asyncio.run(_family_chains(bases, first_tokens, rounds))
    assert len(set(last)) == families

    racers = 4
    outcomes = asyncio.run(_race(bases, last, racers))
    for responses in outcomes:
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 400: racers - 1}, statuses  # one rotation; every other use is a reuse
        assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
        winner = next(r for r in responses if r.status_code == 200).json()["refresh_token"]
        assert refresh(bases[0], winner).json()["error"] == "invalid_grant"  # its family is revoked

    rows = asyncio.run(_families(pg_database_url))
    assert len(rows) == families
    for row in rows:
        # first token + `rounds` rotations + the race winner; each token replaced at most
        # once, one unreplaced (the last), and the family revoked for the reuse.
        assert row["tokens"] == 1 + rounds + 1, dict(row)
        assert row["unreplaced"] == 1 and row["successors"] == rounds + 1, dict(row)
        assert row["revoked_reason"] == "refresh_reuse", dict(row)

    issued = sum(metric(s.url, "tokens_issued_total", realm="acme", grant_type="refresh_token") for s in (a, b))
    assert issued == families * (rounds + 1)
    detections = sum(metric(s.url, "refresh_token_reuse_detected_total", realm="acme") for s in (a, b))
    assert detections >= families
    browser.close()
