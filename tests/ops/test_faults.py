"""Faults (issue 6, item 6): with Redis or PostgreSQL stopped, crashed or hung under a
running server, requests that need them fail fast (503 `temporarily_unavailable`, never
a hang), `/readyz` names the store that is down, nothing is half written, and service
resumes by itself when the store is back: the same server process, no restart.

The stores are this module's own throwaway `redis-server` and PostgreSQL cluster, so the
tests can kill and restart them; one `idp serve` process runs through every test."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.ops.browser import Browser, client_credentials, exchange, refresh
from tests.ops.conftest import add_user
from tests.ops.servers import (
    IdpServer,
    PostgresServer,
    RedisServer,
    free_port,
    http,
    start_idp,
    wait_for,
    write_deployment,
)

pytestmark = pytest.mark.production

FAST = 5.0  # seconds: "fail fast" means an answer within this, never a hang
ALICE = "alice@example.com"


@dataclass
class Stack:
    server: IdpServer
    redis: RedisServer
    postgres: PostgresServer
    database_url: str
    directory: Path  # the deployment: idp.yaml and realms/

    @property
    def realm(self) -> str:
        return self.server.url + "/realms/acme"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_server, postgres_server) -> Iterator[Stack]:
    async def create_database() -> None:
        conn = await asyncpg.connect(postgres_server.url(), timeout=5)
        try:
            await conn.execute("CREATE DATABASE tessera")
        finally:
            await conn.close()

    asyncio.run(create_database())
    directory = tmp_path_factory.mktemp("faults")
    port = free_port()
    config = write_deployment(directory, base_url=f"http://127.0.0.1:{port}",
                              durable=postgres_server.url("tessera"), ephemeral=redis_server.url)
    with pytest.MonkeyPatch.context() as monkeypatch:
        add_user(config, ALICE, monkeypatch)
    server = start_idp(directory, port=port).wait_ready()
    try:
        yield Stack(server, redis_server, postgres_server, postgres_server.url("tessera"), directory)
    finally:
        code = server.stop()
    assert code == 0, server.output()[-3000:]


@pytest.fixture
def stores_back(stack: Stack) -> Iterator[None]:
    """Whatever a test did to the stores, they run again afterwards."""
    yield
    for resume in (stack.redis.resume, stack.postgres.resume):
        try:
            resume()
        except (OSError, ValueError):
            pass
    if stack.redis.proc is None or stack.redis.proc.poll() is not None:
        stack.redis.start()
    if not (stack.postgres.data / "postmaster.pid").exists():
        stack.postgres.start()
    wait_until_ready(stack)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert elapsed < FAST, f"took {elapsed:.1f}s"
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "temporarily_unavailable"


def readiness(stack: Stack) -> tuple[int, dict]:
    response, elapsed = timed(lambda: httpx.get(stack.server.url + "/readyz", timeout=10))
    assert elapsed < FAST
    return response.status_code, response.json()


def wait_until_ready(stack: Stack) -> None:
    wait_for(lambda: readiness(stack)[0] == 200, 20, "/readyz to turn 200 again", interval=0.1)


def user_tokens(stack: Stack, client_id: str = "app") -> dict:
    browser = Browser()
    code, verifier = browser.login_for_code(stack.realm, email=ALICE, client_id=client_id)
    response = exchange(stack.realm, code, verifier, client_id=client_id)
    assert response.status_code == 200, response.text
    browser.close()
    return response.json()


def many_at_once(call: Callable[[], httpx.Response], count: int = 16) -> list[tuple[httpx.Response, float]]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: timed(call), range(count)))


async def family_health(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        return await conn.fetch(
            "SELECT f.id, f.client_id, f.revoked_at, count(t.*) AS tokens,"
            " count(t.*) FILTER (WHERE t.replaced_by IS NULL) AS unreplaced"
            " FROM refresh_families f LEFT JOIN refresh_tokens t ON t.realm = f.realm AND t.family_id = f.id"
            " GROUP BY f.id, f.client_id, f.revoked_at"
        )
    finally:
        await conn.close()


def assert_no_half_written_family(stack: Stack) -> None:
    for row in asyncio.run(family_health(stack.database_url)):
        assert row["tokens"] >= 1 and row["unreplaced"] == 1, dict(row)


def userinfo(stack: Stack, access_token: str) -> httpx.Response:
    """Needs Redis: the access token's id is checked against the revocation deny-list."""
    return httpx.get(stack.realm + "/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=15)


def authorize_page(stack: Stack) -> httpx.Response:
    """Needs Redis: the login flow is kept there."""
    return httpx.get(stack.realm + "/authorize", timeout=15, params={
        "response_type": "code", "client_id": "app", "redirect_uri": "http://localhost:3000/callback",
        "scope": "openid", "state": "s", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})


def test_redis_killed_then_back(stack, stores_back):
    tokens = user_tokens(stack)
    pid = stack.server.proc.pid
    stack.redis.kill()

    assert_unavailable(*timed(lambda: userinfo(stack, tokens["access_token"])))
    for response, elapsed in many_at_once(lambda: userinfo(stack, tokens["access_token"])):
        assert_unavailable(response, elapsed)
    page, elapsed = timed(lambda: authorize_page(stack))  # a browser endpoint: an HTML page
    assert elapsed < FAST and page.status_code == 503 and "text/html" in page.headers["content-type"]
    # Client credentials may keep working (rate-limit counts are batched locally): fast either way.
    response, elapsed = timed(lambda: client_credentials(stack.realm))
    assert response.status_code in (200, 503) and elapsed < FAST
    assert readiness(stack) == (503, {"status": "unavailable", "unavailable": ["ephemeral"]})

    stack.redis.start()  # empty: Redis here keeps nothing on disk
    wait_until_ready(stack)
    assert userinfo(stack, tokens["access_token"]).status_code == 200
    assert authorize_page(stack).status_code == 303
    assert client_credentials(stack.realm).status_code == 200
    assert refresh(stack.realm, tokens["refresh_token"]).status_code == 200  # durable: untouched by Redis
    assert stack.server.proc.pid == pid and stack.server.proc.poll() is None


def test_redis_hung_then_back(stack, stores_back):
    tokens = user_tokens(stack)
    stack.redis.pause()  # accepts connections, answers nothing
    for response, elapsed in many_at_once(lambda: userinfo(stack, tokens["access_token"]), count=8):
        assert_unavailable(response, elapsed)
    assert readiness(stack) == (503, {"status": "unavailable", "unavailable": ["ephemeral"]})
    stack.redis.resume()
    wait_until_ready(stack)
    assert userinfo(stack, tokens["access_token"]).status_code == 200


@pytest.mark.parametrize("mode", ["fast", "immediate"])  # a clean shutdown, and a crash
def test_postgres_stopped_then_back(stack, stores_back, mode):
    tokens = user_tokens(stack)
    stack.postgres.stop(mode)

    assert_unavailable(*timed(lambda: refresh(stack.realm, tokens["refresh_token"])))
    for response, elapsed in many_at_once(lambda: refresh(stack.realm, tokens["refresh_token"])):
        assert_unavailable(response, elapsed)
    assert readiness(stack) == (503, {"status": "unavailable", "unavailable": ["durable"]})

    stack.postgres.start()
    wait_until_ready(stack)
    again = refresh(stack.realm, tokens["refresh_token"])  # the refused tries rotated nothing
    assert again.status_code == 200, again.text
    assert refresh(stack.realm, again.json()["refresh_token"]).status_code == 200
    assert_no_half_written_family(stack)


def test_postgres_hung_then_back(stack, stores_back):
    tokens = user_tokens(stack)
    stack.postgres.pause()
    for response, elapsed in many_at_once(lambda: refresh(stack.realm, tokens["refresh_token"]), count=12):
        assert_unavailable(response, elapsed)
    assert readiness(stack) == (503, {"status": "unavailable", "unavailable": ["durable"]})
    stack.postgres.resume()
    wait_until_ready(stack)
    assert refresh(stack.realm, tokens["refresh_token"]).status_code == 200
    assert_no_half_written_family(stack)


def test_store_restarts_under_load_lose_no_rotation(stack, stores_back):
    """Clients rotate their refresh tokens non-stop while PostgreSQL crashes and Redis is
    killed, each restarted. A client retries a refused refresh with the same token (the
    `mobile` client has a retry grace, as a real app on a flaky network should). Every
    answer comes fast, and afterwards every family is intact: one live token, which the
    client holds."""
    families = [user_tokens(stack, client_id="mobile")["refresh_token"] for _ in range(4)]
    stop = threading.Event()
    slowest = [0.0]
    errors: list[str] = []

    def rotate_forever(index: int) -> None:
        token = families[index]
        while not stop.is_set():
            try:
                response, elapsed = timed(
                    lambda token=token: refresh(stack.realm, token, client_id="mobile", timeout=15))
            except httpx.HTTPError as exc:
                errors.append(f"transport error {exc!r}")
                return
            slowest[0] = max(slowest[0], elapsed)
            if response.status_code == 200:
                token = response.json()["refresh_token"]
            elif response.status_code != 503:
                errors.append(f"{response.status_code} {response.text}")
                return
            else:
                time.sleep(0.05)
        families[index] = token

    workers = [threading.Thread(target=rotate_forever, args=(i,)) for i in range(len(families))]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        stack.postgres.stop("immediate")
        time.sleep(1.0)
        stack.postgres.start()
        time.sleep(0.5)
        stack.redis.kill()
        time.sleep(1.0)
        stack.redis.start()
        time.sleep(1.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert not errors, errors
    assert slowest[0] < FAST, f"slowest answer {slowest[0]:.1f}s"
    wait_until_ready(stack)
    for token in families:
        assert refresh(stack.realm, token, client_id="mobile").status_code == 200
    rows = asyncio.run(family_health(stack.database_url))
    mobile = [row for row in rows if row["client_id"] == "mobile"]
    assert len(mobile) == len(families)
    assert_no_half_written_family(stack)
    assert all(row["revoked_at"] is None for row in mobile)


def test_sigterm_drains_requests_in_flight(stack, stores_back):
    """A request still waiting on its store when SIGTERM arrives completes; new
    connections are no longer accepted; the process then exits cleanly."""
    draining = start_idp(stack.directory, name="drain").wait_ready()
    try:
        drain_in_flight(stack, draining)
    finally:
        draining.stop()


def drain_in_flight(stack: Stack, draining: IdpServer) -> None:
    tokens = user_tokens(stack)
    result: dict[str, Any] = {}

    def in_flight() -> None:
        result["response"], result["elapsed"] = timed(
            lambda: httpx.get(draining.url + "/realms/acme/userinfo", timeout=15,
                              headers={"Authorization": f"Bearer {tokens['access_token']}"}))

    stack.redis.pause()  # the request below waits for Redis (less than its 2 s timeout)
    request = threading.Thread(target=in_flight)
    request.start()
    try:
        time.sleep(0.3)
        draining.signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(OSError):  # the listening socket is closed first
            http("GET", draining.url + "/healthz", timeout=2)
    finally:
        stack.redis.resume()
        request.join(timeout=20)
    assert result["response"].status_code == 200, result["response"].text
    assert result["response"].json()["sub"]
    assert draining.proc.wait(timeout=20) == 0
