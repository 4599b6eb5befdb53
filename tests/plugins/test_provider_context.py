"""What a provider plugin receives (issue 17 §3): a narrow, typed `ProviderContext` (the
HTTP session, the clock, the realm users API, password hashing), not the engine's service
locator; and the password capability the account pages rely on is the declared
`engine.PasswordCapability` Protocol, not attributes found with hasattr/getattr."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
import time
from typing import Literal

import pytest

import engine
from engine import PasswordCapability, ProviderContext, ProviderServices, ProviderSettings, hookimpl
from engine.accounts.users import password_provider
from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES


def write_config(tmp_path, providers: str) -> None:
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "corp.yaml").write_text(textwrap.dedent("""\
        name: corp
        display_name: Corp Widgets
        providers:
        %s
        clients:
          - {client_id: app, type: confidential, secret_sha256: "%s", redirect_uris: ["https://app/cb"],
             scopes: [openid]}
        """) % (textwrap.indent(providers, "  "), "0" * 64))
    (tmp_path / "idp.yaml").write_text("realms: realms/\nroot_realm: corp\n")


async def test_a_provider_sees_only_what_it_may_call(tmp_path, aiohttp_client):
    write_config(tmp_path, "- {id: password, type: password}\n")
    plugins = Plugins()
    client = await aiohttp_client(create_app(load_config(tmp_path / "idp.yaml", plugins.providers.settings_models()),
                                             plugins=plugins))
    services = client.app[SERVICES]
    context = services.runtime.realms["corp"].providers["password"].context
    # No service locator: the stores, token service, runtime... are out of a provider's reach.
    assert not hasattr(context, "services")
    public = {name for name in dir(context) if not name.startswith("_")}
    assert public == {"realm", "issuer", "base_url", "display_name", "engine", "http", "now", "accounts", "passwords"}
    assert {name for name in dir(ProviderServices) if not name.startswith("_")} == {
        "http", "clock", "accounts", "passwords"}
    assert context.display_name == "Corp Widgets"
    assert context.http is services.http and context.http is not None
    assert context.accounts is services.accounts and context.passwords is services.passwords
    assert context.now() == services.clock.timestamp()


def test_a_context_without_an_engine_says_so():
    context = ProviderContext(realm="corp", issuer="https://idp/realms/corp", base_url="https://idp/realms/corp")
    with pytest.raises(RuntimeError, match="not attached"):
        _ = context.accounts
    assert abs(context.now() - time.time()) < 5  # the wall clock, as before


class LocalSettings(ProviderSettings):
    type: Literal["local-passwords"]


class LocalPasswords:
    """A plugin credentials provider that keeps local passwords: no base class, only the
    PasswordCapability members (and settings WITHOUT min/max_length or registration)."""

    kind = "credentials"
    registration = True
    require_verified_email = True
    min_length = 12
    max_length = 77

    def __init__(self, settings: LocalSettings, context: ProviderContext):
        self.settings = settings
        self.context = context

    async def hash_password(self, password: str) -> str:
        raise NotImplementedError

    def password_problem(self, password: str, *, email: str | None = None, name: str | None = None) -> str | None:
        return None

    async def login(self, username: str, password: str) -> engine.ExternalIdentity:
        raise engine.LoginFailed("no")


class LocalPlugin:
    @hookimpl
    def tessera_register_providers(self, registry):
        registry.add("local-passwords", LocalSettings, LocalPasswords)


async def test_the_register_page_uses_the_declared_capability(tmp_path, aiohttp_client):
    """The engine reads a plugin's capability from the Protocol's members (OWASP ASVS 4.0
    V2.1.1/V2.1.2: the length bounds the form states are the provider's), not from the
    in-tree password plugin's settings model."""
    write_config(tmp_path, "- {id: local, type: local-passwords}\n")
    plugins = Plugins([LocalPlugin()])
    client = await aiohttp_client(create_app(load_config(tmp_path / "idp.yaml", plugins.providers.settings_models()),
                                             plugins=plugins))
    assert isinstance(client.app[SERVICES].runtime.realms["corp"].providers["local"], PasswordCapability)
    page = await client.get("/register")
    assert page.status == 200, await page.text()
    text = await page.text()
    assert 'minlength="12"' in text and 'maxlength="77"' in text


async def test_a_provider_that_only_hashes_is_not_a_password_capability(tmp_path, aiohttp_client):
    write_config(tmp_path, "- {id: password, type: password}\n")
    plugins = Plugins()
    client = await aiohttp_client(create_app(load_config(tmp_path / "idp.yaml", plugins.providers.settings_models()),
                                             plugins=plugins))
    realm = client.app[SERVICES].runtime.realms["corp"]
    assert isinstance(realm.providers["password"], PasswordCapability)
    assert password_provider(realm) is realm.providers["password"]

    class HashesOnly:
        async def hash_password(self, password: str) -> str:
            return "x"

    variant = dataclasses.replace(realm)
    variant.__dict__["providers"] = {"other": HashesOnly()}  # the cached property, pre-filled
    assert not isinstance(HashesOnly(), PasswordCapability)
    assert password_provider(variant) is None


def test_the_capability_is_documented_for_plugin_authors():
    assert "PasswordCapability" in engine.__all__ and "ProviderServices" in engine.__all__
    doc = inspect.getdoc(PasswordCapability) or ""
    members = [name for name in vars(PasswordCapability) if not name.startswith("_")]
    assert {"registration", "require_verified_email", "min_length", "max_length", "hash_password",
            "password_problem"} <= set(members)
    for name in members:
        assert f"``{name}" in doc, f"PasswordCapability.{name} is undocumented"
