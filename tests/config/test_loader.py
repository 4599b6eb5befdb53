"""Configuration loading: every problem reported as `file:line: message`, all at once
(issue 2 item 2)."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.plugins import Plugins

PASSWORD = "providers: [{id: password, type: password}]\n"  # a realm needs a way to sign in
SERVER = "base_url: http://localhost:4000\nrealms: realms/\nroot_realm: acme\n"
GOOD_REALM = """\
name: acme
scopes:
  videos.read: {description: Read videos}
providers:
  - {id: password, type: password}
clients:
  - client_id: frontend
    type: public
    redirect_uris: ["http://localhost:3000/callback"]
    scopes: [openid, profile, email, offline_access]
  - client_id: worker
    type: confidential
    secret: ${WORKER_SECRET}
    grant_types: [client_credentials]
    scopes: [videos.read]
    audience: [videos-api]
"""


@pytest.fixture(scope="module")
def models():
    return Plugins().providers.settings_models()


def write(tmp_path: Path, realms: dict[str, str], server: str = SERVER) -> Path:
    (tmp_path / "realms").mkdir(exist_ok=True)
    for name, text in realms.items():
        (tmp_path / "realms" / name).write_text(textwrap.dedent(text))
    (tmp_path / "idp.yaml").write_text(server)
    return tmp_path / "idp.yaml"


def problems(path: Path, models, environ=None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, models, environ={} if environ is None else environ)
    return caught.value.problems


def test_valid_config_loads_with_defaults_and_env(tmp_path, models):
    config = load_config(write(tmp_path, {"acme.yaml": GOOD_REALM}), models,
                         environ={"WORKER_SECRET": "s" * 32})
    realm = config.realms["acme"]
    assert realm.lifetimes.access_token == timedelta(minutes=10)
    assert realm.lifetimes.refresh_token == timedelta(days=45)
    assert realm.clients[1].secret.get_secret_value() == "s" * 32
    assert config.issuer("acme") == "http://localhost:4000"  # root realm: the base URL


def test_missing_env_variable_names_it_and_its_line(tmp_path, models):
    found = problems(write(tmp_path, {"acme.yaml": GOOD_REALM}), models)
    assert len(found) == 1
    assert found[0].endswith(
        "realms/acme.yaml:13: environment variable WORKER_SECRET is not set"
        " (referenced by clients.1.secret)"
    ), found


@pytest.mark.parametrize(
    ("realm", "line", "fragment"),
    [
        ("name: acme\ncolour: red\n", 2, "colour: unknown key"),
        ("name: acme\nclients:\n  - {client_id: a, type: public, redirect_uris: [/cb]}\n", 3,
         "is not an absolute URI"),
        ("name: acme\nclients:\n  - client_id: a\n    type: public\n    redirect_uris: ['https://a/cb']\n"
         "    scopes: [openid, videos.write]\n", 6, "scope 'videos.write' is not declared"),
        ("name: acme\nclients:\n  - client_id: a\n    type: public\n"
         "    grant_types: [client_credentials]\n", 5, "public client may not use client_credentials"),
        ("name: acme\nproviders:\n  - {id: corp, type: ldap}\n", 3, "unknown provider type 'ldap'"),
        ("name: acme\nlifetimes: {access_token: 10 minutes}\n", 2, "invalid duration"),
        ("name: acme\nclients:\n  - {client_id: a, type: confidential, grant_types: [client_credentials]}\n",
         3, "confidential client needs"),
        ("name: acme\nname: other\n", 2, "duplicate key 'name'"),
        ("name: acme\nclients: [\n", 3, "invalid YAML"),
        ("name: acme\nsigning: {algs: [HS256]}\n", 2, "signing.algs.0"),
        ("name: acme\nclients:\n  - client_id: a\n    type: public\n    redirect_uris: ['https://a/cb']\n"
         "    web_origins: ['https://app.example.com/']\n", 6, "is not an origin"),
    ],
    ids=["unknown-key", "relative-redirect", "undeclared-scope", "public-client-credentials",
         "unknown-provider-type", "bad-duration", "confidential-without-secret", "duplicate-key",
         "yaml-syntax", "unsupported-alg", "origin-with-path"],
)
def test_each_broken_realm_is_reported_with_file_and_line(tmp_path, models, realm, line, fragment):
    found = problems(write(tmp_path, {"acme.yaml": realm}, server="realms: realms/\nroot_realm: null\n"), models)
    assert any(p.startswith(f"{tmp_path}/realms/acme.yaml:{line}: ") or f"acme.yaml:{line}: " in p
               for p in found), found
    assert any(fragment in p for p in found), found


def test_duplicate_client_ids_and_realm_names(tmp_path, models):
    realm = ("name: acme\nclients:\n  - {client_id: a, type: public, redirect_uris: ['https://a/cb']}\n"
             "  - {client_id: a, type: public, redirect_uris: ['https://a/cb']}\n")
    found = problems(write(tmp_path, {"a.yaml": realm, "b.yaml": "name: acme\n" + PASSWORD},
                           server="realms: realms/\nroot_realm: null\n"), models)
    assert any("a.yaml:4: duplicate client_id 'a'" in p for p in found), found
    assert any("b.yaml:1: duplicate realm name 'acme'" in p for p in found), found


def test_all_problems_across_files_are_reported_at_once(tmp_path, models):
    found = problems(write(tmp_path, {"a.yaml": "name: a\nfoo: 1\n", "b.yaml": "name: b\nbar: 2\n"},
                           server="realms: realms/\nroot_realm: null\n"), models)
    assert any("a.yaml:2" in p for p in found) and any("b.yaml:2" in p for p in found)


def test_server_config_errors_and_unknown_root_realm(tmp_path, models):
    found = problems(write(tmp_path, {"acme.yaml": "name: acme\n" + PASSWORD}, server="base_url: localhost\n"), models)
    assert any("idp.yaml:1: base_url" in p for p in found), found
    found = problems(write(tmp_path, {"acme.yaml": "name: acme\n" + PASSWORD}, server="root_realm: nope\n"), models)
    assert any("root_realm 'nope' is not a realm" in p for p in found), found


def test_env_expansion_happens_after_parsing(tmp_path, models):
    """A secret with YAML syntax in it stays a string (api-notes §7 pitfall 2)."""
    config = load_config(write(tmp_path, {"acme.yaml": GOOD_REALM}), models,
                         environ={"WORKER_SECRET": "a: b\n- c # not yaml-parsed"})
    assert config.realms["acme"].clients[1].secret.get_secret_value() == "a: b\n- c # not yaml-parsed"


@pytest.mark.parametrize(("text", "expected"), [
    ("name: acme\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)),
     "acme.yaml:2: anchors and aliases are not allowed"),
    ("name: acme\nclients: " + "[" * 10_000 + "]" * 10_000 + "\n", "acme.yaml:2: nesting deeper than 20"),
], ids=["billion-laughs", "deep"])
def test_hostile_realm_files_are_problems_of_the_loader(tmp_path, models, text, expected):
    """Issue 23 item 3: what `idp check`, `idp serve` and a reload all go through."""
    found = problems(write(tmp_path, {"acme.yaml": text}, server="realms: realms/\nroot_realm: null\n"), models)
    assert len(found) == 1 and found[0].endswith(expected), found
