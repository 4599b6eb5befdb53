"""No secret at any log level (issue 16, item 10; OWASP Logging Cheat Sheet, "Data to
exclude": "access tokens, ... passwords, database connection strings, encryption keys").

The process is set up as `idp serve --log-level DEBUG` sets it up (`setup_logging`), every
record of every logger is kept, and the flows that handle secrets run for real on both
backends: registration, the verification link, sign-in, the code exchange (the realm's
signing keys are created then), a refresh, a confidential client. Then no record may hold
the argon2 hash, an encrypted signing key, a refresh token, a code or a client secret.
(aiosqlite writes every statement with its parameters at DEBUG: the hash and the key
blobs were in the log before.)"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator

import pytest

from engine import logs
from engine.logs import setup_logging
from tests.accounts.conftest import PASSWORD, build_idp, link_in, mail_yaml
from tests.accounts.helpers import register, verify
from tests.oauth.conftest import WEB_REDIRECT, WEB_SECRET
from tests.oauth.flow import exchange, login_for_code


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """The root logger as `idp serve --log-level DEBUG --log-format json` configures it."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level, {name: logging.getLogger(name).level
                                             for name in list(logging.root.manager.loggerDict)}
    stream = io.StringIO()
    access = logs._access  # the access-log writer setup_logging replaces: put back after
    setup_logging("json", "DEBUG", stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
        if logs._access is not None:
            logs._access.flush()
        logs._access = access


@pytest.fixture
async def accounts(tmp_path, backend, aiohttp_client, unused_tcp_port_factory, debug_logs):
    """The account pages' IdP (registration on, mail to an outbox), started after the
    logging is set up, so that its start-up is in the log too."""
    outbox = tmp_path / "outbox"
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                           mail=mail_yaml(outbox), outbox=outbox)


def forms_of(blob: bytes) -> list[str]:
    """The ways a bytes value shows in a log line: its repr's body, hex, base64."""
    body = repr(blob)[2:-1]
    return [body[:48], blob.hex()[:48], base64.b64encode(blob).decode()[:48],
            base64.urlsafe_b64encode(blob).decode().rstrip("=")[:48]]


async def test_debug_logging_of_real_flows_holds_no_secret(debug_logs, accounts):
    idp = accounts
    email = "new@example.com"
    assert (await register(idp, email=email)).status in (200, 303)
    link = link_in(await idp.last_mail(to=email), "/verify-email")
    assert (await verify(idp, link)).status in (200, 303)

    code, verifier, _ = await login_for_code(idp, email=email, password=PASSWORD)
    tokens = await (await exchange(idp, code, verifier)).json()
    refreshed = await (await idp.client.post("/token", data={
        "grant_type": "refresh_token", "client_id": "spa", "refresh_token": tokens["refresh_token"]})).json()
    web_code, web_verifier, _ = await login_for_code(idp, email=email, password=PASSWORD,
                                                     client_id="web", redirect_uri=WEB_REDIRECT)
    web = await (await exchange(idp, web_code, web_verifier, redirect_uri=WEB_REDIRECT,
                                auth=("web", WEB_SECRET))).json()
    assert "access_token" in web, web

    user = await idp.services.durable.get_user_by_email("acme", email)
    credential = await idp.services.durable.get_credential("acme", user.id, "password")
    assert credential.secret_hash.startswith("$argon2")
    key_rows = await idp.services.durable.list_signing_keys("acme")
    assert key_rows, "the exchange created the realm's signing keys"

    await idp.services.drain_audits()
    logs = debug_logs.getvalue()
    assert '"level": "debug"' in logs or '"level": "info"' in logs  # the capture works
    secrets = {
        "the argon2 hash": [credential.secret_hash, credential.secret_hash.rsplit("$", 1)[-1]],
        "the password": [PASSWORD],
        "an encrypted signing key": [form for row in key_rows for form in forms_of(row.private_jwk)],
        "a refresh token": [tokens["refresh_token"], refreshed["refresh_token"], web["refresh_token"]],
        "a code": [code, web_code, verifier, web_verifier],
        "a client secret": [WEB_SECRET],
        "an access token": [tokens["access_token"], web["access_token"]],
        "the verification link": [link.split("?", 1)[-1]],
    }
    for what, values in secrets.items():
        for value in values:
            assert value not in logs, f"{what} is in the DEBUG log: ...{logs[max(0, logs.find(value) - 200):][:300]}"
