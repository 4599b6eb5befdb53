"""Fixtures of the operations tests: deployments on disk, `idp serve` processes, and
throwaway Redis and PostgreSQL servers (tests/ops/servers.py)."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import production_unavailable
from tests.oauth.conftest import idp  # noqa: F401 - the in-process IdP under test, on both backends
from tests.ops.servers import (
    KEK,
    PASSWORD,
    WORKER_SECRET,
    PostgresServer,
    RedisServer,
    postgres_binaries_missing,
)


def add_user(config: Path, email: str, monkeypatch: pytest.MonkeyPatch, password: str = PASSWORD) -> None:
    """`idp users add`, in this process (faster than a subprocess)."""
    from engine.cli import main

    monkeypatch.setenv("IDP_KEY_ENCRYPTION_KEY", KEK)
    monkeypatch.setenv("WORKER_SECRET", WORKER_SECRET)
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    assert main(["users", "add", "-c", str(config), "--realm", "acme", "--email", email]) == 0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for this module, which its tests may kill and restart."""
    if shutil.which("redis-server") is None:
        production_unavailable("redis-server (binary)", FileNotFoundError("not on PATH"))
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for this module, which its tests may stop and crash."""
    if (missing := postgres_binaries_missing()) is not None:
        production_unavailable("a throwaway PostgreSQL", FileNotFoundError(missing))
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()
