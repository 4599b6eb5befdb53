"""`idp serve --workers 2` (issue 6, items 3 and 5): two processes share the port and
both answer, the metrics any worker serves are the sum over all of them (prometheus
multi-process mode, in a directory `idp serve` creates and removes), and one SIGTERM to
the parent stops every worker."""

from __future__ import annotations

import os
import re
import secrets
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import delete_redis_prefix, run_in_thread, truncate_data_tables
from tests.ops.servers import free_port, http, server_env, start_idp, write_deployment

pytestmark = pytest.mark.production


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_share_port_metrics_and_stop_together(tmp_path, pg_database_url, redis_url):
    # An empty database: the KEK generated below cannot open keys earlier tests left (it
    # would be refused at start-up, rightly).
    run_in_thread(lambda: truncate_data_tables(pg_database_url))
    prefix = f"tessera-ops-{secrets.token_hex(6)}:"
    port = free_port()
    write_deployment(tmp_path, base_url=f"http://127.0.0.1:{port}", durable=pg_database_url, ephemeral=redis_url,
                     prefix=prefix)
    env = server_env()
    del env["IDP_KEY_ENCRYPTION_KEY"]  # generated on first start: once, by the parent
    server = start_idp(tmp_path, "--workers", "2", port=port, env=env)
    try:
        announcement = re.compile(r"started 2 workers \((\d+), (\d+)\); they share metrics in (\S+)\"")
        started = server.wait_for(lambda: announcement.search(server.output()), 30, "the workers")
        workers = {int(started.group(1)), int(started.group(2))}
        metrics_dir = Path(started.group(3))
        assert metrics_dir.is_dir()
        server.wait_ready()

        def listening() -> set[int]:
            return {r["pid"] for r in server.json_logs() if r["message"].startswith("serving on http://")}

        server.wait_for(lambda: listening() == workers, 30, "both workers listening")

        requests = 60  # each on a new connection: the kernel spreads them over the workers
        for _ in range(requests):  # the JWKS needs the signing keys, decrypted with the shared KEK
            assert http("GET", server.url + "/realms/acme/.well-known/jwks.json")[0] == 200
        assert (tmp_path / "var" / "key-encryption-key").is_file()

        def answered_by() -> set[int]:
            return {r["pid"] for r in server.json_logs() if r.get("route") == "/realms/{realm}/.well-known/jwks.json"}

        server.wait_for(lambda: len(answered_by()) == 2, 10, "access logs of both workers")
        assert answered_by() == workers

        def counted() -> float:  # whichever worker answers the scrape
            samples = text_string_to_metric_families(httpx.get(server.url + "/metrics").text)
            route = "/realms/{realm}/.well-known/jwks.json"
            return sum(s.value for family in samples for s in family.samples
                       if s.name == "http_requests_total" and s.labels.get("route") == route)

        # each worker adds its request counts to the shared files every second (engine.metrics)
        server.wait_for(lambda: counted() == requests, 5, f"{requests} requests in the metrics")
        assert counted() == requests

        server.signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        assert not any(alive(pid) for pid in workers)
        assert not metrics_dir.exists()
    finally:
        server.stop()
        run_in_thread(lambda: delete_redis_prefix(redis_url, prefix))


def test_workers_need_a_shared_ephemeral_store(tmp_path):
    port = free_port()
    write_deployment(tmp_path, base_url=f"http://127.0.0.1:{port}", durable="sqlite:///var/idp.sqlite3",
                     ephemeral="memory://")
    server = start_idp(tmp_path, "--workers", "2", port=port)
    try:
        assert server.proc.wait(timeout=30) == 2
    finally:
        server.stop()
    assert "memory:// is per process" in server.output()
