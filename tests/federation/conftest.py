"""A Tessera realm federating a fake Google (OIDC) and a fake GitHub, both real aiohttp
servers on loopback, on the parametrised storage backends (tests/conftest.py `backend`),
with one FrozenClock shared by the IdP and the fake upstreams."""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest

from engine.clock import FrozenClock
from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.federation.fakes import (
    GITHUB_CLIENT_ID,
    GITHUB_SECRET,
    GOOGLE_CLIENT_ID,
    GOOGLE_SECRET,
    FakeGitHub,
    FakeGoogle,
)
from tests.oauth.conftest import SPA_REDIRECT, WEB_REDIRECT, WEB_SECRET, Idp

KEK = base64.urlsafe_b64encode(b"k" * 32).decode()


def realm_yaml(google_issuer: str, github_url: str, *, google_extra: str = "", github_extra: str = "",
               password_extra: str = "", realm_extra: str = "", google_links_by_email: bool | None = True) -> str:
    """The realm: password, google and github providers; `*_extra` are more settings
    (YAML lines) for that provider, `realm_extra` for the realm. The fake Google stands for
    Google, whose verified emails link (the default only for Google's own issuer: a loopback
    issuer says so explicitly unless `google_links_by_email` is None)."""
    if google_links_by_email is not None and "link_by_verified_email" not in google_extra:
        google_extra = f"link_by_verified_email: {str(google_links_by_email).lower()}\n{textwrap.dedent(google_extra)}"
    google_extra = textwrap.indent(textwrap.dedent(google_extra), " " * 4)
    github_extra = textwrap.indent(textwrap.dedent(github_extra), " " * 4)
    password_extra = textwrap.indent(textwrap.dedent(password_extra), " " * 4)
    return f"""\
name: acme
display_name: ACME
{textwrap.dedent(realm_extra)}
providers:
  - id: password
    type: password
    argon2: {{memory_cost: 1024, time_cost: 1, parallelism: 1}}
{password_extra}
  - id: google
    type: google
    display_name: Google
    issuer: "{google_issuer}"
    client_id: {GOOGLE_CLIENT_ID}
    client_secret: ${{GOOGLE_SECRET}}
{google_extra}
  - id: github
    type: github
    base_url: "{github_url}"
    api_url: "{github_url}/api/v3"
    client_id: {GITHUB_CLIENT_ID}
    client_secret: ${{GITHUB_SECRET}}
{github_extra}
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
    scopes: [openid, profile, email]
    consent: implicit
"""


@dataclass
class Federation:
    idp: Idp
    google: FakeGoogle
    github: FakeGitHub

    @property
    def clock(self) -> FrozenClock:
        return self.idp.clock

    @property
    def services(self) -> Any:
        return self.idp.services


async def start_federation(tmp_path, backend, aiohttp_client, aiohttp_server, port: int,
                           google_issuer: str | None = None, **realm_options: str) -> Federation:
    clock = FrozenClock()
    google, github = FakeGoogle(clock), FakeGitHub()
    google_server = await aiohttp_server(google.app())
    github_server = await aiohttp_server(github.app())
    google.issuer = f"http://{google_server.host}:{google_server.port}"
    github.base_url = f"http://{github_server.host}:{github_server.port}"

    (tmp_path / "realms").mkdir()
    realm = realm_yaml(google_issuer or google.issuer, github.base_url, **realm_options)
    (tmp_path / "realms" / "acme.yaml").write_text(realm)
    (tmp_path / "idp.yaml").write_text(
        f"base_url: http://127.0.0.1:{port}\nrealms: realms/\nroot_realm: acme\n"
        f"storage: {{durable: '{backend.durable_url}', ephemeral: '{backend.ephemeral_url}'}}\n"
    )
    config = load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(), environ={
        "WEB_SECRET": WEB_SECRET, "GOOGLE_SECRET": GOOGLE_SECRET, "GITHUB_SECRET": GITHUB_SECRET})
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": KEK})
    client = await aiohttp_client(app, server_kwargs={"port": port})
    return Federation(Idp(client=client, services=app[SERVICES], clock=clock), google, github)


@pytest.fixture
async def fed(tmp_path, backend, aiohttp_client, aiohttp_server, unused_tcp_port_factory) -> Federation:
    return await start_federation(tmp_path, backend, aiohttp_client, aiohttp_server,
                                  unused_tcp_port_factory())


@pytest.fixture
async def make_fed(tmp_path, backend, aiohttp_client, aiohttp_server, unused_tcp_port_factory):
    """A federation with extra provider settings (`google_extra=` / `github_extra=` /
    `password_extra=`: YAML lines), realm settings (`realm_extra=`) or another `google_issuer`."""

    async def make(**options: str) -> Federation:
        return await start_federation(tmp_path, backend, aiohttp_client, aiohttp_server,
                                      unused_tcp_port_factory(), **options)

    return make
