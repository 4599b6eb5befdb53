"""`idp audit --realm R [--since ISO8601|duration] [--type T]`: the realm's audit events,
one JSON object per line, oldest first (issue 6, item 4)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from engine.audit import parse_since, read_events
from engine.cli import main
from engine.store import AuditEvent, open_durable
from tests.ops.servers import KEK, OPS_REALM, WORKER_SECRET, write_deployment

NOW = datetime.now(UTC).replace(microsecond=0)


async def seed(url: str, events: list[AuditEvent]) -> None:
    store = await open_durable(url)
    try:
        await store.migrate()
        for event in events:
            await store.append_event(event)
    finally:
        await store.close()


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    monkeypatch.setenv("IDP_KEY_ENCRYPTION_KEY", KEK)
    monkeypatch.setenv("WORKER_SECRET", WORKER_SECRET)
    config = write_deployment(tmp_path, base_url="http://127.0.0.1:4000", durable="sqlite:///var/idp.sqlite3",
                              ephemeral="memory://",
                              realms={"acme": OPS_REALM,
                                      "other": "name: other\nproviders: [{id: password, type: password}]\n"})
    (tmp_path / "var").mkdir()
    asyncio.run(seed(f"sqlite:///{tmp_path}/var/idp.sqlite3", [
        AuditEvent("acme", "login", NOW - timedelta(hours=3), "usr_1", "app", "203.0.113.1", {"provider": "password"}),
        AuditEvent("acme", "login_failed", NOW - timedelta(minutes=30), None, "app", "203.0.113.2",
                   {"provider": "password", "reason": "credentials"}),
        AuditEvent("acme", "refresh_reuse_detected", NOW - timedelta(minutes=5), "usr_1", "app", None,
                   {"family_id": "fam_1"}),
        AuditEvent("other", "login", NOW - timedelta(minutes=1), "usr_9", "app", None, {}),
    ]))
    return config


def audit(config, capsys, *args: str) -> tuple[int, list[dict]]:
    code = main(["audit", "-c", str(config), *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def test_prints_one_json_object_per_event_oldest_first(deployment, capsys):
    code, events = audit(deployment, capsys, "--realm", "acme")
    assert code == 0
    assert [e["type"] for e in events] == ["login", "login_failed", "refresh_reuse_detected"]
    first = events[0]
    assert set(first) == {"id", "at", "realm", "type", "user_id", "client_id", "ip", "data"}
    assert first["realm"] == "acme" and first["user_id"] == "usr_1" and first["ip"] == "203.0.113.1"
    assert datetime.fromisoformat(first["at"]) == NOW - timedelta(hours=3)
    assert first["data"] == {"provider": "password"}


def test_since_a_duration_or_a_time_and_by_type(deployment, capsys):
    assert [e["type"] for e in audit(deployment, capsys, "--realm", "acme", "--since", "1h")[1]] == [
        "login_failed", "refresh_reuse_detected"]
    since = (NOW - timedelta(minutes=10)).isoformat()
    assert [e["type"] for e in audit(deployment, capsys, "--realm", "acme", "--since", since)[1]] == [
        "refresh_reuse_detected"]
    naive = (NOW - timedelta(minutes=10)).replace(tzinfo=None).isoformat()  # read as UTC
    assert len(audit(deployment, capsys, "--realm", "acme", "--since", naive)[1]) == 1
    both = audit(deployment, capsys, "--realm", "acme", "--type", "login", "--type", "refresh_reuse_detected")[1]
    assert [e["type"] for e in both] == ["login", "refresh_reuse_detected"]
    comma = audit(deployment, capsys, "--realm", "acme", "--type", "login_failed,login", "--since", "2h")[1]
    assert [e["type"] for e in comma] == ["login_failed"]


def test_refuses_bad_arguments(deployment, capsys):
    assert main(["audit", "-c", str(deployment), "--realm", "acme", "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["audit", "-c", str(deployment), "--realm", "nope"])
    assert exited.value.code == 2 and "no realm named 'nope'" in capsys.readouterr().err


def testparse_since():
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-01-01T00:00:00+01:00", now) == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    assert parse_since("2026-01-01T06:00:00Z", now) == datetime(2026, 1, 1, 6, 0, tzinfo=UTC)


async def test_pages_through_many_events_sharing_instants():
    """The store returns pages ordered by (time, id); events of one instant that straddle
    a page are neither repeated nor skipped, even a full page of one instant."""
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    stored = [AuditEvent("acme", "e", instant + timedelta(seconds=i // 5), id=i + 1) for i in range(23)]

    class Store:
        async def list_events(self, realm, since=None, limit=1000):
            return [e for e in stored if since is None or e.at >= since][:limit]

    for page_size in (1, 2, 3, 7, 100):
        read = [e.id async for e in read_events(Store(), "acme", None, page_size=page_size)]
        assert read == list(range(1, 24)), page_size
