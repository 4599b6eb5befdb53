"""Metrics, structured logs and the audit trail (issue 6, items 3 and 4), in-process on
both storage backends.

The headline test drives every flow that handles a secret (password sign-in, a failed
one, the code exchange with PKCE, refresh and its reuse, client credentials with a
secret, introspection, revocation, logout) with every log record of every logger
captured, then checks that none of those secret values is in the logs or in any audit row,
and that the counters saw exactly what happened."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.logs import JsonFormatter, RequestIdFilter, redact
from engine.metrics import Metrics
from engine.store.instrumented import InstrumentedStore, instrument
from engine.store.protocols import AlreadyExists, StoreUnavailable
from tests.oauth.conftest import WEB_REDIRECT, WEB_SECRET, WORKER_SECRET, basic_auth
from tests.oauth.flow import authorize as start_authorize
from tests.oauth.flow import exchange, login_for_code, submit_login

PASSWORD = "correct horse battery"
WRONG_PASSWORD = "Tr0ub4dor&3-not-it"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every record of every logger, as `idp serve --log-format json` writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def scrape(idp) -> dict[tuple[str, frozenset], float]:
    response = await idp.client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_full_flows_leave_no_secret_in_logs_or_audit_and_are_counted(idp, captured_logs):
    seen: list[str] = [PASSWORD, WRONG_PASSWORD, WEB_SECRET, WORKER_SECRET]
    await idp.add_user(password=PASSWORD)

    # A failed sign-in, then a good one, then the code exchange (public client, PKCE).
    response, verifier = await start_authorize(idp)
    assert response.status == 303
    failed = await submit_login(idp, response.headers["Location"], "alice@example.com", WRONG_PASSWORD)
    assert failed.status == 400
    code, verifier, _ = await login_for_code(idp)
    seen += [code, verifier]
    tokens = await (await exchange(idp, code, verifier)).json()
    seen += [tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]

    # Refresh, then the old refresh token again: reuse detected.
    refresh = {"grant_type": "refresh_token", "client_id": "spa"}
    rotated = await (await idp.client.post("/token", data={**refresh, "refresh_token": tokens["refresh_token"]})).json()
    seen += [rotated["access_token"], rotated["refresh_token"], rotated["id_token"]]
    reuse = await idp.client.post("/token", data={**refresh, "refresh_token": tokens["refresh_token"]})
    assert (await reuse.json())["error"] == "invalid_grant"

    # A confidential client: consent, client_secret_basic, introspection, revocation.
    code, verifier, _ = await login_for_code(idp, client_id="web", redirect_uri=WEB_REDIRECT)
    seen += [code, verifier]
    web = await (await exchange(idp, code, verifier, redirect_uri=WEB_REDIRECT, auth=("web", WEB_SECRET))).json()
    seen += [web["access_token"], web["refresh_token"], web["id_token"]]
    web_auth = basic_auth("web", WEB_SECRET)
    introspected = await idp.client.post("/introspect", data={"token": web["access_token"]}, headers=web_auth)
    assert (await introspected.json())["active"] is True
    userinfo = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {web['access_token']}"})
    assert userinfo.status == 200
    for token in (web["access_token"], web["refresh_token"]):  # the refresh token would take the other along
        assert (await idp.client.post("/revoke", data={"token": token}, headers=web_auth)).status == 200

    # Service to service, with the secret in the form this time.
    service = await (await idp.client.post("/token", data={
        "grant_type": "client_credentials", "client_id": "worker", "client_secret": WORKER_SECRET,
        "scope": "videos.read"})).json()
    seen.append(service["access_token"])

    # Logout with the ID token as hint.
    logout = await idp.client.get("/logout", params={"id_token_hint": rotated["id_token"]}, allow_redirects=False)
    assert logout.status == 200

    logs = captured_logs.getvalue()
    records = [json.loads(line) for line in logs.splitlines()]
    assert any(r["logger"] == "engine.access" for r in records)
    events = await idp.services.durable.list_events("acme")
    audit = json.dumps([[e.realm, e.type, e.user_id, e.client_id, e.ip, e.data] for e in events], default=str)
    assert {"login", "login_failed", "token_issued", "refresh_reuse_detected", "revocation", "logout"} <= {
        e.type for e in events}
    for secret in seen:
        assert secret not in logs, f"a secret value is in the logs: {secret[:6]}..."
        assert secret not in audit, f"a secret value is in the audit log: {secret[:6]}..."

    # Every audit event made during a request carries that request's id, as its log lines do.
    logged_ids = {r.get("request_id") for r in records if r["logger"] == "engine.access"}
    assert all(e.data.get("request_id") in logged_ids for e in events), [e.data for e in events]

    samples = await scrape(idp)
    issued = "tokens_issued_total"
    assert value(samples, issued, realm="acme", grant_type="authorization_code") == 2
    assert value(samples, issued, realm="acme", grant_type="refresh_token") == 1
    assert value(samples, issued, realm="acme", grant_type="client_credentials") == 1
    assert value(samples, "refresh_token_uses_total", realm="acme") == 1
    assert value(samples, "refresh_token_reuse_detected_total", realm="acme") == 1
    assert value(samples, "token_revocations_total", realm="acme", token_type="refresh_token") == 1
    assert value(samples, "token_revocations_total", realm="acme", token_type="access_token") == 1
    assert value(samples, "logins_total", realm="acme", provider="password") == 1  # then SSO
    assert value(samples, "login_failures_total", realm="acme", provider="password") == 1
    assert value(samples, "audit_events_total", realm="acme", type="logout") == 1
    token_requests = value(samples, "http_request_duration_seconds_count", route="/token", method="POST")
    assert token_requests == 5  # 2 code exchanges, a refresh and its refused reuse, client credentials
    assert value(samples, "http_requests_total", route="/token", method="POST", status="200") == 4
    assert value(samples, "http_requests_total", route="/token", method="POST", status="400") == 1
    assert value(samples, "store_operation_duration_seconds_count", store="durable", operation="get_user") > 0
    assert value(samples, "store_operation_duration_seconds_count", store="ephemeral", operation="take") > 0


async def test_lockouts_are_counted_from_audit_events(idp):
    await idp.services.audit("acme", "lockout", user_id="usr_1", ip="203.0.113.7")
    await idp.services.audit("acme", "lockout", ip="203.0.113.7")
    samples = await scrape(idp)
    assert value(samples, "lockouts_total", realm="acme") == 2
    assert value(samples, "audit_events_total", realm="acme", type="lockout") == 2


async def test_routes_are_labelled_by_template_not_by_path(idp):
    for path in ("/realms/acme/token-x9f2", "/realms/other/.well-known/openid-configuration", "/nope/a1b2c3"):
        await idp.client.get(path)
    text = await (await idp.client.get("/metrics")).text()
    assert 'route="/realms/{realm}/.well-known/openid-configuration"' in text
    assert 'route="<unmatched>"' in text
    assert "token-x9f2" not in text and "a1b2c3" not in text and "realms/other" not in text


async def test_request_id_is_echoed_logged_and_audited(idp, captured_logs):
    response = await idp.client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.01"})
    assert response.headers["X-Request-Id"] == "lb-7f3a.01"
    for bad in ("x" * 200, "has space", "quote\"s"):
        generated = (await idp.client.get("/healthz", headers={"X-Request-Id": bad})).headers["X-Request-Id"]
        assert generated != bad and len(generated) == 32
    error = await idp.client.post("/token", data={}, headers={"X-Request-Id": "req-err-1"})
    assert error.status == 400 and error.headers["X-Request-Id"] == "req-err-1"  # error responses too
    records = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    access = [r for r in records if r["logger"] == "engine.access"]
    assert any(r["request_id"] == "lb-7f3a.01" and r["route"] == "/healthz" and r["status"] == 200 for r in access)
    assert any(r["request_id"] == "req-err-1" and r["status"] == 400 for r in access)


async def test_unavailable_store_is_a_503_and_an_error_in_the_metrics(idp):
    services = idp.services

    class Down:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        async def get_refresh_token_and_user(self, realm, token_hash):
            raise StoreUnavailable("postgres: ConnectionRefusedError")

    healthy = services.durable
    services.durable = instrument(Down(healthy.inner), "durable", services.metrics)
    try:
        response = await idp.client.post("/token", data={
            "grant_type": "refresh_token", "client_id": "spa", "refresh_token": "rt_" + "a" * 43})
    finally:
        services.durable = healthy
    assert response.status == 503 and response.headers["Cache-Control"] == "no-store"
    assert (await response.json())["error"] == "temporarily_unavailable"
    samples = await scrape(idp)
    assert value(samples, "store_errors_total", store="durable", operation="get_refresh_token_and_user",
                 kind="unavailable") == 1
    assert value(samples, "http_requests_total", route="/token", method="POST", status="503") == 1


async def test_instrumented_store_times_and_classifies_failures():
    metrics = Metrics()

    class Store:
        label = "plain attribute"

        async def ok(self):
            return 42

        async def taken(self):
            raise AlreadyExists("users_realm_email_key")

        async def down(self):
            raise StoreUnavailable("redis: ConnectionError")

        async def broken(self):
            raise RuntimeError("bug")

    store = instrument(Store(), "ephemeral", metrics)
    assert isinstance(store, InstrumentedStore) and store.label == "plain attribute"
    assert await store.ok() == 42
    for name, error in (("taken", AlreadyExists), ("down", StoreUnavailable), ("broken", RuntimeError)):
        with pytest.raises(error):
            await getattr(store, name)()
    metrics.flush()  # counted in plain integers until the metrics are read
    registry = metrics.registry
    for operation in ("ok", "taken", "down", "broken"):
        count = registry.get_sample_value("store_operation_duration_seconds_count",
                                          {"store": "ephemeral", "operation": operation})
        assert count == 1, operation
    errors = {op: registry.get_sample_value("store_errors_total", {"store": "ephemeral", "operation": op, "kind": kind})
              for op, kind in (("down", "unavailable"), ("broken", "error"), ("taken", "error"))}
    assert errors == {"down": 1.0, "broken": 1.0, "taken": None}  # AlreadyExists is an answer


def test_request_metrics_batched_equal_prometheus_histogram_semantics():
    """Requests are counted in plain integers and added at read time: the exposition must
    be what `Histogram.observe` would have produced (buckets are `le`, cumulative)."""
    metrics = Metrics()
    for seconds in (0.003, 0.005, 7.0, 60.0):
        metrics.observe_request("/realms/{realm}/token", "POST", 200, seconds)
    metrics.observe_request("/realms/{realm}/token", "POST", 400, 0.001)
    metrics.observe_request("/x", "BREW", 404, 0.001)
    metrics.render()
    metrics.observe_request("/realms/{realm}/token", "POST", 200, 0.02)  # after a flush, added again
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(metrics.render().decode()) for s in family.samples}
    token = {"route": "/realms/{realm}/token", "method": "POST"}
    buckets = {le: value(samples, "http_request_duration_seconds_bucket", **token, le=le)
               for le in ("0.002", "0.005", "0.025", "5.0", "10.0", "+Inf")}
    assert buckets == {"0.002": 1, "0.005": 3, "0.025": 4, "5.0": 4, "10.0": 5, "+Inf": 6}
    assert value(samples, "http_request_duration_seconds_count", **token) == 6
    assert value(samples, "http_request_duration_seconds_sum", **token) == pytest.approx(67.029)
    assert value(samples, "http_requests_total", **token, status="200") == 5
    assert value(samples, "http_requests_total", **token, status="400") == 1
    assert value(samples, "http_requests_total", route="/x", method="OTHER", status="404") == 1


def test_redaction_masks_token_shaped_values():
    text = ("POST code=abc123&client_secret=s3cr3t password=hunter2 Bearer eyJhbGciOi.eyJzdWIi.c2ln "
            "rt_AbCdEfGhIjKlMnOpQrStUv {'password': 'pw', \"refresh_token\": \"x\"} status code: 503")
    masked = redact(text)
    for secret in ("abc123", "s3cr3t", "hunter2", "eyJhbGciOi", "rt_AbCdEfGh", "'pw'", '"x"'):
        assert secret not in masked
    assert "status code: 503" in masked
