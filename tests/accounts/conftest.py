"""An IdP for the account pages: registration on, mail caught (the outbox, or a real SMTP
server on loopback), sign-in delays recorded instead of waited (the app's `sleep` is
injected; time only moves through the FrozenClock), both storage backends."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import re
import textwrap
from dataclasses import dataclass, field
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller

from engine.clock import FrozenClock
from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.oauth.conftest import SPA_REDIRECT, WEB_REDIRECT, WEB_SECRET, Idp

PASSWORD = "purple monkey dishwasher"
CHEAP_ARGON2 = "{memory_cost: 1024, time_cost: 1, parallelism: 1}"

ACME = f"""\
name: acme
display_name: ACME
mail: {{sender: "ACME Accounts <accounts@acme.test>"}}
lockout:
  ip: {{free_failures: 10, max_failures: 30}}
providers:
  - id: password
    type: password
    registration: true
    argon2: {CHEAP_ARGON2}
clients:
  - client_id: spa
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    scopes: [openid, profile, email, offline_access]
    consent: implicit
  - client_id: web
    type: confidential
    secret: ${{WEB_SECRET}}
    redirect_uris: ["{WEB_REDIRECT}"]
    scopes: [openid, profile, email, offline_access]
    consent: required
"""
# Registration off (the default), and shorter link lifetimes.
OTHER = f"""\
name: other
lifetimes: {{email_verification: 1h, password_reset: 10m}}
providers:
  - {{id: password, type: password, argon2: {CHEAP_ARGON2}}}
clients:
  - client_id: spa
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    scopes: [openid, profile, email, offline_access]
    consent: implicit
"""


class RecordedSleeps:
    """The app's sleeper in tests: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@dataclass
class AccountsIdp(Idp):
    outbox: Path | None = None
    sleeps: RecordedSleeps = field(default_factory=RecordedSleeps)
    smtp: Any = None

    async def mails(self) -> list[EmailMessage]:
        """Every message sent so far, oldest first (after pending deliveries finish)."""
        await self.services.mail.drain()
        if self.smtp is not None:
            return list(self.smtp.messages)
        return [read_eml(path) for path in sorted(self.outbox.glob("*.eml"))] if self.outbox.exists() else []

    async def last_mail(self, to: str | None = None) -> EmailMessage:
        mails = [m for m in await self.mails() if to is None or m["To"] == to]
        assert mails, f"no mail{' to ' + to if to else ''}"
        return mails[-1]


def read_eml(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def link_in(message: EmailMessage, path: str) -> str:
    """The link to `path` in the text part, as a path + query on the IdP."""
    for url in re.findall(r"https?://\S+", text_of(message)):
        parts = urlsplit(url)
        if parts.path.endswith(path):
            return f"{parts.path}?{parts.query}" if parts.query else parts.path
    raise AssertionError(f"no {path} link in:\n{text_of(message)}")


def form_action(html: str) -> str:
    return unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))


def hidden_fields(html: str) -> dict[str, str]:
    return {m.group(1): unescape(m.group(2))
            for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def mail_yaml(outbox: Path | None = None, smtp: dict[str, Any] | None = None) -> str:
    if smtp is not None:
        options = ", ".join(f"{k}: {v}" for k, v in smtp.items())
        return f"mail: {{type: smtp, sender: 'Tessera <no-reply@tessera.test>', smtp: {{{options}}}}}\n"
    return f"mail: {{type: outbox, outbox: {{directory: '{outbox}'}}}}\n"


async def build_idp(tmp_path, backend, aiohttp_client, port: int, *, mail: str,
                    realms: dict[str, str] | None = None, environ: dict[str, str] | None = None,
                    sleeps: RecordedSleeps | None = None, **extra: Any) -> AccountsIdp:
    (tmp_path / "realms").mkdir(exist_ok=True)
    for name, text in (realms or {"acme": ACME, "other": OTHER}).items():
        (tmp_path / "realms" / f"{name}.yaml").write_text(textwrap.dedent(text))
    (tmp_path / "idp.yaml").write_text(
        f"base_url: http://127.0.0.1:{port}\nrealms: realms/\nroot_realm: acme\n"
        f"storage: {{durable: '{backend.durable_url}', ephemeral: '{backend.ephemeral_url}'}}\n" + mail
    )
    config = load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(),
                         environ={"WEB_SECRET": WEB_SECRET, **(environ or {})})
    clock = FrozenClock()
    sleeps = sleeps or RecordedSleeps()
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix, sleep=sleeps,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    client = await aiohttp_client(app, server_kwargs={"port": port})
    return AccountsIdp(client=client, services=app[SERVICES], clock=clock, sleeps=sleeps, **extra)


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> AccountsIdp:
    """The IdP, mail to an outbox directory."""
    outbox = tmp_path / "outbox"
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                           mail=mail_yaml(outbox), outbox=outbox)


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(unused_tcp_port_factory):
    """An SMTP server on 127.0.0.1 without TLS or AUTH; yields (sink, port)."""
    sink = SmtpSink()
    port = unused_tcp_port_factory()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
async def smtp_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory, smtp_server) -> AccountsIdp:
    """The IdP, mail through SMTP to the loopback server."""
    sink, smtp_port = smtp_server
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                           mail=mail_yaml(smtp={"host": "127.0.0.1", "port": smtp_port, "starttls": "false"}),
                           smtp=sink)
