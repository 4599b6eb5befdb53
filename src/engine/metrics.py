"""Prometheus metrics, served at `/metrics` in the text exposition format.

One `Metrics` object per application, with its own `CollectorRegistry` (no globals, so
tests build as many apps as they like). What it counts:

- `tokens_issued_total{realm,grant_type}` and `refresh_token_uses_total{realm}`: counted by
  the token endpoint after a grant issued (client credentials included, which is not
  audited: it is the hot path, so the cost is one dict lookup and one increment);
- logins, login failures (by provider), lockouts, refresh-token reuse detections,
  revocations (by token type), and every audit event by type: counted from the audit
  events themselves, through a built-in `tessera_event` sink (`MetricsSink`), so the
  modules that audit need no metrics code;
- `http_request_duration_seconds{route,method}` and `http_requests_total{route,method,status}`:
  by the route's *template* (`/realms/{realm}/token`), never the raw path, so a scanner
  cannot create series;
- `store_operation_duration_seconds{store,operation}` and `store_errors_total{store,operation,kind}`:
  by `engine.store.instrumented`.

Requests and store operations are on every hot path: durations go straight into the
histograms (the label children are kept, so an observation is one `observe`), request and
token counts are plain integers per label set, added to the counters when they are read
(`render`) and, with several workers, every second (`flush`). Only prometheus-client's
public API is used.

Several worker processes (`idp serve --workers N`) share the numbers through
prometheus-client's multi-process mode: `idp serve` sets `PROMETHEUS_MULTIPROC_DIR` to a
directory it creates (and removes) before the workers import prometheus-client, and a
scrape of any worker then reports the sum over all of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    values,
)

from engine import events
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.web.appkeys import SERVICES

# Seconds. Token and browser requests take ~1-50 ms; argon2 logins ~0.1-0.5 s; a store
# failing over hits its timeouts (3-5 s).
REQUEST_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


def multiprocess_mode() -> bool:
    """True when prometheus-client was imported with PROMETHEUS_MULTIPROC_DIR set."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class Metrics:
    """Every metric of one application."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        if not multiprocess_mode():  # in multi-process mode these would be one worker's only
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=self.registry)

        self.tokens_issued = counter(
            "tokens_issued", "Token responses issued by the token endpoint.", ("realm", "grant_type"))
        self.refresh_uses = counter(
            "refresh_token_uses", "Refresh tokens successfully rotated (refresh_token grant).", ("realm",))
        self.refresh_reuse = counter(
            "refresh_token_reuse_detected",
            "Replaced refresh tokens presented again; each revoked its family.", ("realm",))
        self.revocations = counter(
            "token_revocations", "Tokens revoked at the revocation endpoint.", ("realm", "token_type"))
        self.backchannel_deliveries = counter(
            "backchannel_logout_deliveries", "Logout tokens delivered (OIDC Back-Channel Logout).", ("realm",))
        self.backchannel_failures = counter(
            "backchannel_logout_failures", "Back-channel logout attempts that failed (each is retried).",
            ("realm",))
        self.logins = counter("logins", "Successful sign-ins.", ("realm", "provider"))
        self.login_failures = counter("login_failures", "Failed sign-ins.", ("realm", "provider"))
        self.lockouts = counter("lockouts", "Accounts locked out after repeated failures.", ("realm",))
        self.mfa_attempts = counter(
            "mfa_attempts", "Second-factor attempts, by method (totp, recovery_code, passkey) and result.",
            ("realm", "method", "result"))
        self.config_reloads = counter(
            "config_reloads", "Configuration reloads, by result (applied or refused).", ("result",))
        self.audit_events = counter("audit_events", "Audit events recorded, by type.", ("realm", "type"))
        self.http_requests = counter(
            "http_requests", "HTTP requests answered, by route template.", ("route", "method", "status"))
        self.http_duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
            ("route", "method"), buckets=REQUEST_BUCKETS, registry=self.registry,
        )
        self.store_duration = Histogram(
            "store_operation_duration_seconds", "Time of one storage operation.",
            ("store", "operation"), buckets=STORE_BUCKETS, registry=self.registry,
        )
        self.store_errors = counter(
            "store_errors", "Storage operations that failed (kind: unavailable or error).",
            ("store", "operation", "kind"),
        )
        # Label lookups cost a lock and a tuple; the hot paths keep their children here.
        self._children: dict[tuple[Any, ...], Any] = {}
        # Counted since the last flush: requests by (route, method, status).
        self._requests: dict[tuple[str, str, int], int] = {}
        self._tokens: dict[tuple[str, str], int] = {}  # token responses by (realm, grant_type)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # counted by the engine

    def token_issued(self, realm: str, grant_type: str) -> None:
        key = (realm, grant_type)
        self._tokens[key] = self._tokens.get(key, 0) + 1

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._child(self.http_duration, route, method).observe(seconds)

    def observe_store(self, store: str, operation: str, seconds: float, error: str | None = None) -> None:
        self._child(self.store_duration, store, operation).observe(seconds)
        if error is not None:
            self._child(self.store_errors, store, operation, error).inc()

    def flush(self) -> None:
        """Add what was observed since the last flush to the Prometheus metrics."""
        requests, self._requests = self._requests, {}
        for (route, method, status), count in requests.items():
            self._child(self.http_requests, route, method, str(status)).inc(count)
        tokens, self._tokens = self._tokens, {}
        for (realm, grant_type), count in tokens.items():
            self._child(self.tokens_issued, realm, grant_type).inc(count)
            if grant_type == "refresh_token":
                self._child(self.refresh_uses, realm).inc(count)

    async def flush_periodically(self, every: float = 1.0) -> None:
        """With several workers a scrape reads every worker's files, so each worker
        flushes on its own clock (the numbers are at most `every` seconds old)."""
        while True:
            await asyncio.sleep(every)
            self.flush()

    # counted from audit events

    def on_event(self, event: Event) -> None:
        realm, data = event.realm, event.data
        self._child(self.audit_events, realm, event.type).inc()
        if event.type == events.LOGIN:
            self._child(self.logins, realm, str(data.get("provider", "unknown"))).inc()
        elif event.type == events.LOGIN_FAILED:
            self._child(self.login_failures, realm, str(data.get("provider", "unknown"))).inc()
        elif event.type == events.LOCKOUT:
            self._child(self.lockouts, realm).inc()
        elif event.type in (events.MFA_VERIFIED, events.MFA_FAILED):
            result = "success" if event.type == events.MFA_VERIFIED else "failure"
            self._child(self.mfa_attempts, realm, str(data.get("method", "unknown")), result).inc()
        elif event.type == events.REFRESH_REUSE_DETECTED:
            self._child(self.refresh_reuse, realm).inc()
        elif event.type == events.REVOCATION:
            self._child(self.revocations, realm, str(data.get("token_type", "unknown"))).inc()

    # exposition

    def render(self) -> bytes:
        self.flush()
        if multiprocess_mode():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsSink:
    """The built-in `tessera_event` sink that turns audit events into counters. It is
    registered by `create_app` while the app runs, like any plugin."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @hookimpl
    def tessera_event(self, event: Event) -> None:
        self.metrics.on_event(event)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """`GET /metrics`: the Prometheus text format (process-wide, not per realm)."""
    body = request.app[SERVICES].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
