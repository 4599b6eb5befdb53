"""`${VAR}` is expanded only where a secret, credential or endpoint goes (issue 23 item 5,
DESIGN.md "Configuration"): a realm file can never publish the host's environment on a
page. Secrets are `${ENV}` references, never written in clear (issue 16 item 15)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.config.schema import config_schema
from engine.plugins import Plugins

LOOPBACK = "base_url: http://localhost:4000\nrealms: realms/\nroot_realm: null\n"
PUBLIC = "base_url: https://idp.example.com\nrealms: realms/\nroot_realm: null\n"
ENVIRON = {"KEK": "the-key-encryption-key", "SECRET": "s" * 32, "GID": "google-client", "GSECRET": "g" * 32,
           "HOST": "smtp.example.com", "PORT": "2525", "PW": "smtp-password"}
PASSWORD = "providers: [{id: password, type: password}]\n"


@pytest.fixture(scope="module")
def models():
    return Plugins().providers.settings_models()


def write(tmp_path: Path, realm: str, server: str = LOOPBACK) -> Path:
    (tmp_path / "realms").mkdir(exist_ok=True)
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent(realm))
    (tmp_path / "idp.yaml").write_text(server)
    return tmp_path / "idp.yaml"


def problems(path: Path, models, environ=ENVIRON) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, models, environ=environ)
    return caught.value.problems


@pytest.mark.parametrize(("realm", "line", "where"), [
    ("name: acme\ndisplay_name: 'Key: ${KEK}'\n" + PASSWORD, 2, "display_name"),
    ("name: acme\nscopes:\n  videos.read: {description: '${KEK}'}\n" + PASSWORD, 3, "scopes.videos.read.description"),
    ("name: acme\nlogo_url: 'https://cdn.example.com/${KEK}.png'\n" + PASSWORD, 2, "logo_url"),
    ("name: acme\nclaims:\n  profile: [name, '${KEK}']\n" + PASSWORD, 3, "claims.profile.1"),
    ("name: acme\nproviders:\n  - {id: password, type: password, display_name: '${KEK}'}\n", 3,
     "providers.0.display_name"),
    ("name: acme\nmail: {sender: '${KEK} <a@example.com>'}\n" + PASSWORD, 2, "mail.sender"),
    ("name: acme\n" + PASSWORD + "clients:\n  - client_id: app\n    name: '${KEK}'\n    type: public\n"
     "    redirect_uris: ['https://app.example.com/${KEK}']\n", 5, "clients.0.name"),
    ("name: acme\n" + PASSWORD + "clients:\n  - client_id: app\n    type: public\n"
     "    redirect_uris: ['https://app.example.com/${KEK}']\n", 6, "clients.0.redirect_uris.0"),
    ("name: acme\ncolour: '${KEK}'\n" + PASSWORD, 2, "colour"),  # an unknown key expands nothing either
], ids=["display-name", "scope-description", "logo-url", "claims", "provider-display-name", "realm-sender",
        "client-name", "redirect-uri", "unknown-key"])
def test_a_reference_outside_secret_and_endpoint_fields_is_a_problem(tmp_path, models, realm, line, where):
    found = problems(write(tmp_path, realm), models)
    assert any(f"acme.yaml:{line}: {where}: ${{...}} is not allowed here" in p for p in found), found
    assert not any("the-key-encryption-key" in p for p in found)


def test_references_expand_in_secret_credential_and_endpoint_fields(tmp_path, models):
    server = (LOOPBACK + "listen: {host: '${HOST:-127.0.0.1}', port: '${PORT}'}\n"
              "mail: {type: smtp, smtp: {host: '${HOST}', port: '${PORT}', username: '${GID}', password: '${PW}'}}\n")
    realm = """\
        name: acme
        providers:
          - {id: google, type: google, client_id: '${GID}', client_secret: '${GSECRET}',
             issuer: '${ISSUER:-https://accounts.example.com}'}
          - {id: github, type: github, client_id: '${GID}', client_secret: '${GSECRET}',
             base_url: '${GHE:-https://ghe.example.com}', api_url: '${GHE_API:-https://ghe.example.com/api/v3}'}
        clients:
          - {client_id: worker, type: confidential, secret: '${SECRET}', grant_types: [client_credentials]}
        """
    config = load_config(write(tmp_path, realm, server), models, environ=ENVIRON)
    google, github = config.realms["acme"].providers
    assert google.client_id == "google-client" and google.client_secret.get_secret_value() == "g" * 32
    assert google.issuer == "https://accounts.example.com"
    assert github.base_url == "https://ghe.example.com" and github.api_url == "https://ghe.example.com/api/v3"
    assert config.realms["acme"].clients[0].secret.get_secret_value() == "s" * 32
    assert config.server.listen.port == 2525 and config.server.mail.smtp.host == "smtp.example.com"
    assert config.server.mail.smtp.password.get_secret_value() == "smtp-password"


@pytest.mark.parametrize(("realm", "line", "where"), [
    ("name: acme\nclients:\n  - {client_id: w, type: confidential, secret: 'a-clear-secret-0123456789',"
     " grant_types: [client_credentials]}\n", 3, "clients.0.secret"),
    ("name: acme\nclients:\n  - {client_id: w, type: confidential, secret: 'pre-${SECRET}',"
     " grant_types: [client_credentials]}\n", 3, "clients.0.secret"),  # half of it is still in the file
    ("name: acme\nproviders:\n  - {id: g, type: google, client_id: x, client_secret: 'clear-google-secret'}\n",
     3, "providers.0.client_secret"),
    ("name: acme\nproviders:\n  - {id: g, type: github, client_id: x, client_secret: 'clear-github-secret'}\n",
     3, "providers.0.client_secret"),
], ids=["client-secret", "half-reference", "google-secret", "github-secret"])
def test_a_secret_written_in_clear_is_a_problem_everywhere(tmp_path, models, realm, line, where):
    """The README's promise: secrets are `${ENV}` references or hashes, even in development."""
    found = problems(write(tmp_path, realm), models)
    assert any(f"acme.yaml:{line}: {where}: a secret must be a ${{ENV}} reference" in p for p in found), found


def test_a_clear_smtp_password_in_idp_yaml_is_a_problem(tmp_path, models):
    server = LOOPBACK + "mail:\n  type: smtp\n  smtp: {host: smtp.example.com, password: hunter2}\n"
    found = problems(write(tmp_path, "name: acme\n" + PASSWORD, server), models)
    assert any("idp.yaml:6: mail.smtp.password: a secret must be a ${ENV} reference" in p for p in found), found


DEMO = ("name: acme\nclients:\n  - client_id: worker\n    type: confidential\n"
        "    secret: ${VIDEOS_WORKER_SECRET:-change-me-videos-worker-secret-0123456789}\n"
        "    grant_types: [client_credentials]\n")


def test_the_shipped_demo_secret_works_only_on_a_loopback_base_url(tmp_path, models):
    config = load_config(write(tmp_path, DEMO), models, environ={})
    assert config.realms["acme"].clients[0].secret.get_secret_value().startswith("change-me")
    found = problems(write(tmp_path, DEMO, PUBLIC), models, environ={})
    assert any("acme.yaml:5: clients.0.secret: the variable is not set" in p for p in found), found
    # The demo value handed in through the environment (compose.yaml's default) is refused too.
    found = problems(write(tmp_path, DEMO, PUBLIC), models,
                     environ={"VIDEOS_WORKER_SECRET": "change-me-videos-worker-secret-0123456789"})
    assert any("acme.yaml:5: clients.0.secret: this is the shipped demo secret" in p for p in found), found
    config = load_config(write(tmp_path, DEMO, PUBLIC), models, environ={"VIDEOS_WORKER_SECRET": "r" * 40})
    assert config.realms["acme"].clients[0].secret.get_secret_value() == "r" * 40


def test_plugin_settings_mark_their_own_fields_and_the_schema_shows_them(models):
    """A plugin marks its secret and endpoint fields itself (`from engine import ENV, SECRET`)."""
    from engine.config.env import FromEnv
    from plugins.google import GoogleSettings

    marks = {name: next((m for m in field.metadata if isinstance(m, FromEnv)), None)
             for name, field in GoogleSettings.model_fields.items()}
    assert marks["client_secret"].secret and marks["client_id"] and marks["issuer"]
    assert marks["display_name"] is None and marks["scopes"] is None
    schema = config_schema(models, kind="realm")
    google = schema["$defs"]["GoogleSettings"]["properties"]
    assert google["client_secret"]["x-env"] == "required" and google["issuer"]["x-env"] == "allowed"
    assert "x-env" not in google["display_name"]


def test_an_unmarked_secretstr_of_a_third_party_plugin_is_a_secret(tmp_path):
    """A plugin written before the marks: its `SecretStr` fields still must be `${ENV}`,
    and its other fields expand nothing."""
    from typing import Literal

    from pydantic import SecretStr

    from engine import ProviderSettings

    class LegacySettings(ProviderSettings):
        type: Literal["legacy"]
        api_key: SecretStr
        endpoint: str

    realm = ("name: acme\nproviders:\n  - {id: old, type: legacy, api_key: '${KEY}', endpoint: 'https://x/${KEK}'}\n"
             "  - {id: old2, type: legacy, api_key: clear-key, endpoint: 'https://x'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, realm), [LegacySettings], environ={"KEY": "k" * 20, "KEK": "kek"})
    found = caught.value.problems
    assert any("acme.yaml:3: providers.0.endpoint: ${...} is not allowed here" in p for p in found), found
    assert any("acme.yaml:4: providers.1.api_key: a secret must be a ${ENV} reference" in p for p in found), found
    assert len(found) == 2, found


def test_realm_files_cannot_read_the_servers_own_variables(tmp_path, models):
    """Even where a reference may go (a provider's client_id travels to the upstream in
    the browser), a realm file cannot read IDP_* / TESSERA_* (the KEK, the database URL)."""
    realm = ("name: acme\nproviders:\n  - {id: g, type: google, client_id: '${IDP_KEY_ENCRYPTION_KEY}',"
             " client_secret: '${GSECRET}', issuer: 'https://sso.example.com'}\n")
    found = problems(write(tmp_path, realm), models, environ={**ENVIRON, "IDP_KEY_ENCRYPTION_KEY": "kek"})
    assert any("acme.yaml:3: providers.0.client_id: ${IDP_KEY_ENCRYPTION_KEY} is one of the server's own"
               in p for p in found), found
    assert len(found) == 1, found
