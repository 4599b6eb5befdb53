"""`idp serve` with the wrong key-encryption key refuses to start (issue 16, item 11;
OWASP Key Management Cheat Sheet): a second instance on the same store, started with
another IDP_KEY_ENCRYPTION_KEY or none, exits non-zero with one line (and a hint) naming the realm,
the kid and "wrong or missing IDP_KEY_ENCRYPTION_KEY", no traceback, and leaves no key of
its own (nor, without the variable, a generated KEK file) behind. Before, it made its own
KEK, reported ready, and answered 500 to every token and JWKS request. Real processes, on
both store pairs."""

from __future__ import annotations

import base64
import subprocess

import httpx
import pytest

from tests.ops.browser import client_credentials
from tests.ops.servers import free_port, server_env, start_idp, write_deployment

OTHER_KEK = base64.urlsafe_b64encode(b"another-key-encryption-key-32by!").decode()


@pytest.fixture
def first_instance(tmp_path, backend):
    """Instance A, serving, with the realm's keys created (a token was issued)."""
    port = free_port()
    config = write_deployment(tmp_path / "a", base_url=f"http://127.0.0.1:{port}", durable=backend.durable_url,
                              ephemeral=backend.ephemeral_url, prefix=backend.ephemeral_prefix)
    server = start_idp(config.parent, port=port, name="a").wait_ready()
    try:
        assert client_credentials(server.url + "/realms/acme").status_code == 200
        yield server
    finally:
        assert server.stop() == 0


def start_second(tmp_path, backend, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, str]:
    port = free_port()
    directory = tmp_path / "b"
    write_deployment(directory, base_url=f"http://127.0.0.1:{port}", durable=backend.durable_url,
                     ephemeral=backend.ephemeral_url, prefix=backend.ephemeral_prefix)
    server = start_idp(directory, port=port, name="b", env=env)
    try:
        server.proc.wait(timeout=30)
    finally:
        server.stop()
    return server.proc, server.output()


def kids(server) -> set[str]:
    return {key["kid"] for key in httpx.get(server.url + "/realms/acme/jwks.json").json()["keys"]}


@pytest.mark.parametrize("kek", ["another", "missing"])
def test_second_instance_without_the_kek_refuses_to_start(tmp_path, backend, first_instance, kek):
    published = kids(first_instance)
    env = server_env(IDP_KEY_ENCRYPTION_KEY=OTHER_KEK)
    if kek == "missing":
        env.pop("IDP_KEY_ENCRYPTION_KEY")
    proc, output = start_second(tmp_path, backend, env)

    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    # One line a person can act on (and its hint), as for every start-up failure (engine.failures).
    refusals = [line for line in output.splitlines() if line.startswith("idp serve: ")]
    assert len(refusals) == 1, output[-3000:]
    message = refusals[0]
    assert "realm acme" in message and "wrong or missing IDP_KEY_ENCRYPTION_KEY" in message
    assert any(kid in message for kid in published), (message, published)
    assert "hint: every instance sharing the store needs the key-encryption key" in output
    # Nothing of its own: no key beside A's, and no generated KEK file to trip over later.
    assert kids(first_instance) == published
    assert not (tmp_path / "b" / "var" / "key-encryption-key").exists()
    assert client_credentials(first_instance.url + "/realms/acme").status_code == 200


@pytest.mark.production
@pytest.mark.parametrize("backend", ["production"], indirect=True)  # --workers needs Redis
def test_workers_refuse_once_before_they_start(tmp_path, backend, first_instance):
    """`idp serve --workers 2`: the parent checks once; one line, no worker started."""
    port = free_port()
    directory = tmp_path / "b"
    write_deployment(directory, base_url=f"http://127.0.0.1:{port}", durable=backend.durable_url,
                     ephemeral=backend.ephemeral_url, prefix=backend.ephemeral_prefix)
    env = server_env()
    env.pop("IDP_KEY_ENCRYPTION_KEY")
    server = start_idp(directory, "--workers", "2", port=port, name="b", env=env)
    try:
        server.proc.wait(timeout=30)
    finally:
        server.stop()
    output = server.output()
    assert server.proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert output.count("wrong or missing IDP_KEY_ENCRYPTION_KEY") == 1, output[-3000:]
    assert "started 2 workers" not in output, output[-3000:]
    assert not (directory / "var" / "key-encryption-key").exists()
