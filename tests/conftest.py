"""Shared fixtures: the storage backends, embedded and production.

- `backend`: parametrised `embedded` / `production`, yields `BackendUrls`.
- `durable`, `ephemeral`: opened (and migrated) stores for that backend, closed afterwards.
- `pg_database_url` (session): a fresh PostgreSQL database for this run, migrated once.
- `redis_url` (session): the Redis server, checked reachable.
- `blank_durable_url`: a never-migrated database of the current backend (for migration tests).

Production servers default to 127.0.0.1 and can be moved with TESSERA_TEST_POSTGRES_URL (an
admin DSN: the run's database is created next to it) and TESSERA_TEST_REDIS_URL. When they
are unreachable, production tests are skipped, unless TESSERA_REQUIRE_PRODUCTION_STORES=1
(CI), which makes them fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from engine.store import DurableStore, EphemeralStore, open_durable, open_ephemeral

POSTGRES_ADMIN_URL = os.environ.get(
    "TESSERA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TESSERA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_PRODUCTION = os.environ.get("TESSERA_REQUIRE_PRODUCTION_STORES") == "1"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BackendUrls:
    name: str  # "embedded" or "production"
    durable_url: str
    ephemeral_url: str
    ephemeral_prefix: str


def production_unavailable(what: str, error: BaseException) -> NoReturn:
    """Skip (or, with TESSERA_REQUIRE_PRODUCTION_STORES=1, fail) a test whose server is down."""
    reason = f"{what} is unreachable ({type(error).__name__}: {error})"
    if REQUIRE_PRODUCTION:
        pytest.fail(f"{reason}; TESSERA_REQUIRE_PRODUCTION_STORES=1 requires it", pytrace=False)
    pytest.skip(f"{reason}; set TESSERA_REQUIRE_PRODUCTION_STORES=1 to make this a failure")


def run_in_thread(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private event loop in a private thread, so
    session-scoped setup never touches the loops pytest-asyncio manages."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="tessera-test-setup")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def create_database(prefix: str = "tessera_test_") -> str:
    """CREATE a uniquely named database next to the admin DSN; return its URL."""
    name = prefix + secrets.token_hex(6)
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(POSTGRES_ADMIN_URL, name)


async def drop_database(url: str) -> None:
    """Terminate the database's connections, then DROP it."""
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def _create_migrated_database() -> str:
    url = await create_database()
    try:
        store = await open_durable(url)
        try:
            await store.migrate()
        finally:
            await store.close()
    except BaseException:
        await drop_database(url)
        raise
    return url


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A PostgreSQL database created (and migrated) for this test run, dropped at the end."""
    try:
        url = run_in_thread(_create_migrated_database)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        production_unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL}", exc)
    yield url
    run_in_thread(lambda: drop_database(url))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server URL, after checking that it answers PING."""

    async def ping() -> None:
        client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        run_in_thread(ping)
    except (OSError, TimeoutError, aioredis.RedisError) as exc:
        production_unavailable(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


async def truncate_data_tables(url: str) -> None:
    """Empty every table except schema_migrations (one cheap reset per test)."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(t["name"] for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


async def delete_redis_prefix(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        batch = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("production", id="production", marks=pytest.mark.production),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[BackendUrls]:
    """Where the stores of this test live. Production starts with empty tables and a
    unique Redis key prefix, whose keys are deleted afterwards."""
    if request.param == "embedded":
        yield BackendUrls("embedded", f"sqlite:///{tmp_path}/idp.sqlite3", "memory://", "tessera:")
        return
    database = request.getfixturevalue("pg_database_url")
    redis = request.getfixturevalue("redis_url")
    await truncate_data_tables(database)
    prefix = f"tessera-test-{secrets.token_hex(6)}:"
    yield BackendUrls("production", database, redis, prefix)
    await delete_redis_prefix(redis, prefix)


@pytest.fixture
async def durable(backend: BackendUrls) -> AsyncIterator[DurableStore]:
    """The backend's durable store, opened and migrated."""
    store = await open_durable(backend.durable_url)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@pytest.fixture
async def ephemeral(backend: BackendUrls) -> AsyncIterator[EphemeralStore]:
    """The backend's ephemeral store, opened."""
    store = await open_ephemeral(backend.ephemeral_url, prefix=backend.ephemeral_prefix)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def blank_durable_url(backend: BackendUrls, tmp_path) -> AsyncIterator[str]:
    """A durable URL of the backend's kind on which no migration has run yet."""
    if backend.name == "embedded":
        yield f"sqlite:///{tmp_path}/blank/idp.sqlite3"
        return
    url = await create_database("tessera_blank_")
    try:
        yield url
    finally:
        await drop_database(url)


def _ephemeral_ports() -> range:
    """The kernel's range for the local ports of outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low, high = (int(n) for n in handle.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 65536)


@pytest.fixture(scope="session")
def unused_tcp_port_factory() -> Callable[[], int]:
    """Free ports for servers whose address a test must know before they start (issuer
    URLs), outside the kernel's ephemeral range. pytest-asyncio's own factory binds port 0,
    which hands out an ephemeral port: until the server binds it, any outgoing connection
    (to PostgreSQL, Redis, a fake Google) may be given the same port as its local one, and
    the server fails with "address already in use" (seen once in CI)."""
    import random
    import socket

    ephemeral = _ephemeral_ports()
    taken: set[int] = set()

    def factory() -> int:
        for _ in range(1000):
            port = random.randrange(10_000, 30_000)
            if port in taken or port in ephemeral:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            taken.add(port)
            return port
        raise RuntimeError("no free TCP port between 10000 and 30000")

    return factory
