"""The store factories: URL parsing, backend choice, and failing fast on dead servers."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import AsyncIterator

import pytest

from engine.store import StoreUnavailable, open_durable, open_ephemeral, sqlite_path
from engine.store.ephemeral.memory import MemoryEphemeralStore
from engine.store.ephemeral.redis import RedisEphemeralStore
from engine.store.sql.migrate import load_migrations, split_statements
from engine.store.sql.postgres import PostgresDurableStore
from engine.store.sql.sqlite import SqliteDurableStore

ALL_MIGRATIONS = ["0001_init", "0002_family_resources_user_origin", "0003_logout_deliveries",
                  "0004_mfa", "0005_webauthn_credentials"]


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/idp.sqlite3", "var/idp.sqlite3"),
        ("sqlite:////srv/idp/idp.sqlite3", "/srv/idp/idp.sqlite3"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_url_paths(url: str, path: str):
    """Three slashes then the path: relative with three, absolute with four."""
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/db", "sqlite:///x?mode=ro"]
)
def test_bad_sqlite_urls_are_refused(url: str):
    """SQLite URLs without a usable path are a ValueError naming the accepted forms."""
    with pytest.raises(ValueError, match="sqlite:///"):
        sqlite_path(url)


@pytest.mark.parametrize("url", ["mysql://localhost/idp", "idp.sqlite3", "", "postgresql:/x"])
async def test_unknown_durable_scheme_is_a_value_error(url: str):
    """Only sqlite and postgres(ql) URLs open a durable store."""
    with pytest.raises(ValueError, match="unsupported durable storage URL"):
        await open_durable(url)


@pytest.mark.parametrize("url", ["memcached://localhost", "redis", "memory://elsewhere"])
async def test_unknown_ephemeral_url_is_a_value_error(url: str):
    """Only memory:// and redis(s):// open an ephemeral store."""
    with pytest.raises(ValueError, match="memory://"):
        await open_ephemeral(url)


async def test_memory_url_opens_the_memory_store():
    """memory:// is the in-process store."""
    store = await open_ephemeral("memory://")
    assert isinstance(store, MemoryEphemeralStore)
    await store.close()


async def test_sqlite_creates_parent_directory_and_uses_wal(tmp_path):
    """Opening a SQLite file creates its directory and switches the file to WAL."""
    path = tmp_path / "a" / "b" / "idp.sqlite3"
    store = await open_durable(f"sqlite:///{path}")
    try:
        assert isinstance(store, SqliteDurableStore)
        assert await store.migrate() == ALL_MIGRATIONS
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_in_memory_works():
    """sqlite://:memory: is a private, migratable database."""
    store = await open_durable("sqlite://:memory:")
    try:
        assert await store.migrate() == ALL_MIGRATIONS
        await store.ping()
    finally:
        await store.close()


async def test_sqlite_unopenable_path_is_unavailable(tmp_path):
    """A path whose parent is a file cannot be opened: StoreUnavailable."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailable):
        await open_durable(f"sqlite:///{tmp_path}/file/idp.sqlite3")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    writers = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_postgres_refused_connection_is_unavailable():
    """Nobody listening: StoreUnavailable, not an OSError."""
    with pytest.raises(StoreUnavailable):
        await open_durable(f"postgresql://postgres@127.0.0.1:{_closed_port()}/idp")


async def test_postgres_hung_server_fails_fast(silent_port: int):
    """A server that never answers: StoreUnavailable after the connect timeout."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await PostgresDurableStore.open(
            f"postgresql://postgres@127.0.0.1:{silent_port}/idp", connect_timeout=0.5
        )
    assert time.monotonic() - started < 3


async def test_redis_refused_connection_is_unavailable():
    """Nobody listening: StoreUnavailable at open (the factory pings)."""
    with pytest.raises(StoreUnavailable):
        await open_ephemeral(f"redis://127.0.0.1:{_closed_port()}/0")


async def test_redis_hung_server_fails_fast(silent_port: int):
    """A server that never answers: StoreUnavailable after the socket timeout."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await RedisEphemeralStore.open(f"redis://127.0.0.1:{silent_port}/0", timeout=0.5)
    assert time.monotonic() - started < 3


def test_both_dialects_have_the_same_migration_versions():
    """Every migration exists for SQLite and for PostgreSQL, so the schemas stay in step."""
    sqlite_versions = [m.version for m in load_migrations("sqlite")]
    assert sqlite_versions == [m.version for m in load_migrations("postgres")]
    assert sqlite_versions[0] == "0001_init"


def test_split_statements_keeps_triggers_and_drops_comments():
    """The SQLite splitter cuts at statement ends, not at every semicolon."""
    script = """-- heading
CREATE TABLE t (a TEXT DEFAULT 'x;y');

CREATE TRIGGER tr AFTER INSERT ON t BEGIN
    UPDATE t SET a = 'z';
END;
INSERT INTO t VALUES ('1'); -- trailing
"""
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    conn = sqlite3.connect(":memory:")
    for statement in statements:
        conn.execute(statement)
    assert conn.execute("SELECT a FROM t").fetchall() == [("z",)]
    with pytest.raises(ValueError):
        split_statements("CREATE TABLE u (a TEXT)")


async def test_sqlite_cancelled_while_committing_stays_cancelled(tmp_path):
    """A task cancelled while its COMMIT is queued on the connection's thread (the server
    stopping under load) ends cancelled: the rollback that finds the transaction already
    committed must not replace the cancellation with `cannot rollback` (a background loop
    that catches errors would then go on, and the shutdown that awaits it would hang)."""
    store = await SqliteDurableStore.open(str(tmp_path / "idp.sqlite3"))
    try:
        db = store._db
        execute = db.execute

        async def commit_then_cancelled(sql: str, *args):
            if sql == "COMMIT":  # queued on the thread; the awaiting task is cancelled first
                committing.append(asyncio.ensure_future(execute(sql, *args)))
                await asyncio.sleep(0)  # the COMMIT is on the thread's queue
                raise asyncio.CancelledError
            return await execute(sql, *args)

        committing: list[asyncio.Future] = []
        db.execute = commit_then_cancelled
        with pytest.raises(asyncio.CancelledError):
            async with store._tx():
                pass
        db.execute = execute
        await asyncio.gather(*committing)
        assert not db.in_transaction
    finally:
        await store.close()


@pytest.mark.production
async def test_postgres_transaction_cancelled_mid_statement_stays_cancelled(pg_database_url):
    """The PostgreSQL side of the test above: a task cancelled while a statement of its
    transaction runs ends cancelled (the rollback must not replace the cancellation), and
    the store keeps working on its other connections."""
    store = await open_durable(pg_database_url)
    try:
        async def slow_transaction() -> None:
            async with store._tx() as conn:
                await conn.execute("SELECT pg_sleep(5)")

        task = asyncio.ensure_future(slow_transaction())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await store.ping()
    finally:
        await store.close()
