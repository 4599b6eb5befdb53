"""The plugin system: documented hookspecs, entry-point loading of in-tree and third-party
plugins, typos caught (pluggy check_pending), provider types validated in realm files."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest

from engine import hookspecs
from engine.config import ConfigError, load_config
from engine.plugins import Plugins

THIRD_PARTY = Path(__file__).parent / "thirdparty"
ROOT = Path(__file__).resolve().parents[2]


def test_every_hook_is_documented_for_plugin_authors():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("tessera_")]
    assert len(hooks) >= 3
    for hook in hooks:
        assert hook.__doc__ and len(hook.__doc__.strip()) > 80, f"{hook.__name__} is undocumented"


def test_in_tree_plugins_load_through_entry_points():
    plugins = Plugins()
    names = dict(plugins.names())
    assert {"password", "google", "github"} <= set(names)
    assert names["password"] is not None  # loaded from the tessera-idp distribution's entry points
    assert {"password", "google", "github"} <= set(plugins.providers.names())


def test_tests_can_build_a_manager_without_installed_plugins():
    assert Plugins(load_entrypoints=False).providers.names() == []


def test_misspelt_hook_is_an_error():
    class Typo:
        @hookspecs.hookimpl
        def tessera_register_provider(self, registry):  # missing "s"
            pass

    with pytest.raises(pluggy.PluginValidationError):
        Plugins([Typo()], load_entrypoints=False)


@pytest.fixture
def third_party(monkeypatch):
    """Make the throwaway distribution visible to importlib.metadata, as `pip install` would."""
    monkeypatch.syspath_prepend(str(THIRD_PARTY))
    yield
    sys.modules.pop("tessera_demo_sso", None)


def realm_with_demo(tmp_path) -> Path:
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "corp.yaml").write_text(textwrap.dedent("""\
        name: corp
        providers:
          - {id: sso, type: demo-sso, authorize_url: "https://sso.example/authorize"}
        """))
    (tmp_path / "idp.yaml").write_text("realms: realms/\nroot_realm: corp\n")
    return tmp_path / "idp.yaml"


def test_third_party_provider_type_validates(third_party, tmp_path):
    plugins = Plugins()
    assert "demo-sso" in plugins.providers.names()
    assert ("demo-sso", "0.1.0") in plugins.names()
    config = load_config(realm_with_demo(tmp_path), plugins.providers.settings_models())
    provider = config.realms["corp"].providers[0]
    assert type(provider).__name__ == "DemoSsoSettings" and provider.tenant == "main"


def test_third_party_settings_errors_have_file_and_line(third_party, tmp_path):
    path = realm_with_demo(tmp_path)
    (tmp_path / "realms" / "corp.yaml").write_text("name: corp\nproviders:\n  - {id: sso, type: demo-sso}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, Plugins().providers.settings_models())
    assert any("corp.yaml:3: providers.0: `authorize_url` is required" in p
               for p in caught.value.problems), caught.value.problems


def test_without_the_plugin_the_type_is_unknown(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(realm_with_demo(tmp_path), Plugins().providers.settings_models())
    assert any("unknown provider type 'demo-sso'" in p for p in caught.value.problems)


def test_idp_check_shows_third_party_provider(tmp_path):
    path = realm_with_demo(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(THIRD_PARTY), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "engine.cli", "check", "-c", str(path)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "realm corp:" in result.stdout and "sso:demo-sso" in result.stdout


async def test_third_party_provider_appears_on_the_login_page(third_party, tmp_path, aiohttp_client):
    from engine.web.app import create_app

    path = realm_with_demo(tmp_path)
    (tmp_path / "realms" / "corp.yaml").write_text(textwrap.dedent("""\
        name: corp
        providers:
          - {id: sso, type: demo-sso, authorize_url: "https://sso.example/authorize", display_name: Demo SSO}
        clients:
          - {client_id: app, type: confidential, secret_sha256: "%s", redirect_uris: ["https://app/cb"],
             scopes: [openid]}
        """ % ("0" * 64)))
    plugins = Plugins()
    config = load_config(path, plugins.providers.settings_models())
    client = await aiohttp_client(create_app(config, plugins=plugins))
    resp = await client.get("/authorize", params={"client_id": "app", "redirect_uri": "https://app/cb",
                                                  "response_type": "code", "scope": "openid"},
                            allow_redirects=False)
    login = await client.get(resp.headers["Location"])
    assert "Continue with Demo SSO" in await login.text()
