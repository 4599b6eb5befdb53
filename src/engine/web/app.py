"""`create_app(config)`: the one constructor of the aiohttp application (no singletons).

Stores open in `cleanup_ctx` (and close in reverse order); the realm routes come from the
endpoint modules; errors are rendered by one middleware."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.accounts.lockout import default_sleep
from engine.accounts.passwords import PasswordService
from engine.accounts.users import Accounts
from engine.clock import Clock
from engine.config import Config
from engine.http import http_client
from engine.mail.service import MailService
from engine.metrics import MetricsSink, metrics_endpoint, multiprocess_mode
from engine.oauth import discovery as discovery_module
from engine.oauth import jwks as jwks_module
from engine.oauth.ratelimit import share_counts
from engine.plugins import Plugins
from engine.realm import build_runtime
from engine.services import Services
from engine.store import open_durable, open_ephemeral
from engine.store.instrumented import instrument
from engine.tokens.issue import TokenService
from engine.tokens.keys import KeyEncryption, KeyManager, derive_key, load_or_create_kek, verify_key_store
from engine.tokens.refresh import RefreshTokens
from engine.web.api import device_authorization, discovery, introspect, jwks, revoke, token, userinfo
from engine.web.appkeys import SERVICES
from engine.web.browser import (
    add_federation_routes,
    add_mfa_routes,
    authorize,
    consent_decision,
    consent_page,
    credentials_login,
    forgot,
    forgot_page,
    login_page,
    logout,
    register_account,
    register_page,
    resend,
    resend_page,
    reset,
    reset_page,
    resume,
    verify,
    verify_page,
)
from engine.web.cors import CLIENTS, PUBLIC
from engine.web.device import confirm_decision, confirm_page, device_entry, device_page
from engine.web.health import healthz, readyz
from engine.web.landing import favicon, landing
from engine.web.lifecycle import serving as serving_context
from engine.web.middleware import request_middleware
from engine.web.passkeys import add_passkey_routes
from engine.web.routing import add_realm_route

log = logging.getLogger("engine")


def resolve_sqlite(url: str, base: Path) -> str:
    """`sqlite:///var/x.db` is relative to the directory of idp.yaml (`sqlite:////abs` is absolute)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and not url.endswith(":memory:"):
        return prefix + str((base / url[len(prefix):]).resolve())
    return url


def create_app(
    config: Config,
    *,
    plugins: Plugins | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    ephemeral_prefix: str | None = None,
    extra_routes: Iterable[Any] = (),
    serving: bool = False,
    sleep: Any = None,
) -> web.Application:
    """The application. `serving=True` (only `idp serve`) adds SIGHUP reload, the applied
    configuration snapshot for `idp plan`, and scheduled key rotation. `ephemeral_prefix`
    overrides `storage.ephemeral_prefix` (tests give each run its own). `sleep` replaces
    the sign-in delays' `asyncio.sleep` (tests record delays instead of waiting)."""
    environ = os.environ if environ is None else environ
    plugins = plugins or Plugins()
    services = Services(plugins=plugins, clock=clock or Clock(), runtime=None)  # type: ignore[arg-type]
    services.runtime = build_runtime(config, plugins, services)
    services.tokens = TokenService(services)
    services.passwords = PasswordService(plugins.hashers)
    services.accounts = Accounts(services)
    base_dir = config.path.parent
    services.sleep = sleep or default_sleep(services.clock)
    mail_settings = config.server.mail
    mailer = plugins.mailers.get(mail_settings.type)(mail_settings, base_dir)
    services.mail = MailService(services, mail_settings, mailer, base_dir)
    storage = config.server.storage
    prefix = storage.ephemeral_prefix if ephemeral_prefix is None else ephemeral_prefix
    metrics = services.metrics

    async def stores(app: web.Application) -> AsyncIterator[None]:
        services.durable = instrument(await open_durable(resolve_sqlite(storage.durable, base_dir)), "durable", metrics)
        try:
            applied = await services.durable.migrate()
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
            ephemeral = await open_ephemeral(storage.ephemeral, prefix=prefix)
            services.ephemeral = instrument(ephemeral, "ephemeral", metrics)
            try:
                data_dir = base_dir / config.server.keys.data_dir
                kek, origin = load_or_create_kek(dict(environ), data_dir)
                log.info("%s", origin)
                services.keys = KeyManager(
                    services.durable,
                    KeyEncryption(kek),
                    services.clock,
                    verifier_cache_ttl=config.server.keys.verifier_cache_ttl,
                    on_event=services.audit_soon,  # key_created, key_rotated: into the audit log
                )
                # Refuses (KeysUnusable) a KEK that cannot open the store's keys.
                await verify_key_store(services.keys, origin, data_dir, list(config.realms))
                services.refresh = RefreshTokens(services, derive_key(kek, b"tessera refresh successor"))
                yield
            finally:
                await share_counts(services)
                await services.drain_audits()
                await services.ephemeral.close()
        finally:
            await services.durable.close()

    async def metrics_sink(app: web.Application) -> AsyncIterator[None]:
        sink = MetricsSink(metrics)
        plugins.register(sink, name=f"tessera-metrics-{id(sink)}")
        flusher = asyncio.create_task(metrics.flush_periodically()) if multiprocess_mode() else None
        yield
        if flusher is not None:
            flusher.cancel()
        metrics.flush()
        plugins.unregister(sink)

    async def mail_delivery(app: web.Application) -> AsyncIterator[None]:
        yield
        await services.mail.drain()  # deliver what is queued before the stores close

    app = web.Application(middlewares=[request_middleware])
    app[SERVICES] = services
    app.cleanup_ctx.append(metrics_sink)
    app.cleanup_ctx.append(stores)
    app.cleanup_ctx.append(mail_delivery)
    app.cleanup_ctx.append(http_client(services))
    if serving:
        app.cleanup_ctx.append(serving_context)
    app.router.add_get("/", landing)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    add_realm_route(app, ["GET"], discovery_module.PATH, discovery, cors=PUBLIC)
    # aiohttp tries the `/realms/{realm}/...` routes in the order they are added: the ones
    # resource servers and clients call most come first.
    add_realm_route(app, ["GET"], jwks_module.PATHS[0], jwks, cors=PUBLIC)
    add_realm_route(app, ["POST"], "/token", token, cors=CLIENTS)
    add_realm_route(app, ["POST"], "/introspect", introspect)
    for path in jwks_module.PATHS[1:]:
        add_realm_route(app, ["GET"], path, jwks, cors=PUBLIC)
    add_realm_route(app, ["GET", "POST"], "/userinfo", userinfo, cors=CLIENTS)
    add_realm_route(app, ["POST"], "/revoke", revoke, cors=CLIENTS)
    add_realm_route(app, ["POST"], "/revocation", revoke, cors=CLIENTS)
    add_realm_route(app, ["GET", "POST"], "/authorize", authorize, browser=True)
    add_realm_route(app, ["POST"], "/device/code", device_authorization, cors=CLIENTS)  # RFC 8628 §3.1
    add_realm_route(app, ["GET"], "/device", device_page, browser=True)
    add_realm_route(app, ["POST"], "/device", device_entry, browser=True)
    add_realm_route(app, ["GET"], "/device/confirm", confirm_page, browser=True)
    add_realm_route(app, ["POST"], "/device/confirm", confirm_decision, browser=True)
    add_realm_route(app, ["GET"], "/authorize/resume", resume, browser=True)
    add_realm_route(app, ["GET"], "/login", login_page, browser=True)
    add_realm_route(app, ["POST"], "/login/{provider}", credentials_login, browser=True)
    add_realm_route(app, ["GET"], "/consent", consent_page, browser=True)
    add_realm_route(app, ["POST"], "/consent", consent_decision, browser=True)
    add_realm_route(app, ["GET", "POST"], "/logout", logout, browser=True)
    add_realm_route(app, ["GET"], "/register", register_page, browser=True)
    add_realm_route(app, ["POST"], "/register", register_account, browser=True)
    add_realm_route(app, ["GET"], "/verify-email", verify_page, browser=True)
    add_realm_route(app, ["POST"], "/verify-email", verify, browser=True)
    add_realm_route(app, ["GET"], "/verify-email/resend", resend_page, browser=True)
    add_realm_route(app, ["POST"], "/verify-email/resend", resend, browser=True)
    add_realm_route(app, ["GET"], "/forgot-password", forgot_page, browser=True)
    add_realm_route(app, ["POST"], "/forgot-password", forgot, browser=True)
    add_realm_route(app, ["GET"], "/reset-password", reset_page, browser=True)
    add_realm_route(app, ["POST"], "/reset-password", reset, browser=True)
    add_federation_routes(app)
    add_mfa_routes(app)
    add_passkey_routes(app)
    for register in extra_routes:
        register(app)
    return app
