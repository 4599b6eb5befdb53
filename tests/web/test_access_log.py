"""The access log as `idp serve` writes it (issue 17 item 5): one preformatted line per
request, batched, with the fields and shape of every other log line; and the same lines
through the ordinary `engine.access` logger where `setup_logging` was not called."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from engine import logs


@pytest.fixture
def configured_logs() -> Iterator[io.StringIO]:
    """`setup_logging` as `idp serve --log-format json` calls it, undone afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.setup_logging("json", "INFO", stream)
    try:
        yield stream
    finally:
        logs._access = None
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


async def test_access_lines_are_json_objects_with_the_request_id(idp, configured_logs):
    await idp.client.get("/healthz", headers={"X-Request-Id": "lb-1"})
    await idp.client.post("/token", data={})  # a 400
    writer = logs.access_log_writer()
    assert writer is not None
    assert "lb-1" not in configured_logs.getvalue() or writer.pending == []  # batched, not written per request
    writer.flush()
    lines = [json.loads(line) for line in configured_logs.getvalue().splitlines()]
    access = [r for r in lines if r["logger"] == "engine.access"]
    health = next(r for r in access if r["route"] == "/healthz")
    assert health["request_id"] == "lb-1" and health["status"] == 200 and health["method"] == "GET"
    assert health["level"] == "info" and isinstance(health["pid"], int) and health["time"].endswith("+00:00")
    assert health["message"].startswith("GET /healthz 200 ")
    token = next(r for r in access if r["route"] == "/token")
    assert token["status"] == 400 and len(token["request_id"]) == 32


def test_the_preformatted_line_has_the_formatters_fields():
    """The same keys as `JsonFormatter` gives the record the logger path would make."""
    stream = io.StringIO()
    writer = logs.AccessLog(stream, "json")
    token = logs.REQUEST_ID.set("rid-1")
    try:
        writer.write("POST", "/realms/{realm}/token", 200, 0.00123, "203.0.113.9")
        record = logging.LogRecord("engine.access", logging.INFO, "", 0, "%s %s %d %.2fms",
                                   ("POST", "/realms/{realm}/token", 200, 1.23), None)
        for key, value in {"method": "POST", "route": "/realms/{realm}/token", "status": 200,
                           "duration_ms": 1.23, "remote": "203.0.113.9", "request_id": "rid-1"}.items():
            setattr(record, key, value)
    finally:
        logs.REQUEST_ID.reset(token)
    writer.flush()
    fast = json.loads(stream.getvalue())
    slow = json.loads(logs.JsonFormatter().format(record))
    assert set(fast) == set(slow)
    assert {k: v for k, v in fast.items() if k not in ("time", "pid")} == \
        {k: v for k, v in slow.items() if k not in ("time", "pid")}


def test_lines_formatted_in_the_batch_keep_each_requests_own_fields():
    """Lines are formatted when the batch is written: each keeps the request id current at
    its request, and an address that is not a plain IP literal is still escaped as JSON."""
    stream = io.StringIO()
    writer = logs.AccessLog(stream, "json")
    for rid, remote in (("rid-a", "198.51.100.7"), ("rid-b", 'x"\\y'), (None, None), ("rid-c", "2001:db8::1")):
        token = logs.REQUEST_ID.set(rid)
        try:
            writer.write("GET", "/healthz", 200, 0.0005, remote)
        finally:
            logs.REQUEST_ID.reset(token)
    writer.flush()
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r.get("request_id") for r in records] == ["rid-a", "rid-b", None, "rid-c"]
    assert [r["remote"] for r in records] == ["198.51.100.7", 'x"\\y', None, "2001:db8::1"]
    assert all(r["duration_ms"] == 0.5 and r["message"] == "GET /healthz 200 0.50ms" for r in records)
