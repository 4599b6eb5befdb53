"""`idp check` reports every problem in one pass, in the product's words (issue 18 item 5):
cross-reference problems come with the field errors, not after they are fixed; messages
say what a value must be, never a regular expression or the validator's wording."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.plugins import Plugins

SERVER = "base_url: http://localhost:4000\nrealms: realms/\nroot_realm: acme\n"


@pytest.fixture(scope="module")
def models():
    return Plugins().providers.settings_models()


def check(tmp_path: Path, models, realms: dict[str, str], server: str = SERVER) -> list[str]:
    (tmp_path / "realms").mkdir(exist_ok=True)
    for name, text in realms.items():
        (tmp_path / "realms" / name).write_text(textwrap.dedent(text))
    (tmp_path / "idp.yaml").write_text(server)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "idp.yaml", models, environ={})
    return [p.replace(f"{tmp_path}/", "") for p in caught.value.problems]


BROKEN = """\
name: acme
scopes:
  videos.read: {description: Read}
providers:
  - {id: password, type: password}
clients:
  - client_id: a
    type: publc
  - client_id: b
    type: public
    grant_types: [client_credentials]
    redirect_uris: ["https://app.example/cb"]
    scopes: [openid, videos.raed]
    colour: red
  - type: confidential
"""


def test_cross_reference_problems_come_with_field_errors(tmp_path, models):
    found = check(tmp_path, models, {"acme.yaml": BROKEN})
    assert found == [
        "realms/acme.yaml:8: clients.0.type: 'publc' is not one of: public, confidential; did you mean 'public'?",
        # RFC 6749 §2.1, §4.4: client_credentials is for confidential clients only
        "realms/acme.yaml:11: a public client may not use client_credentials",
        "realms/acme.yaml:13: scope 'videos.raed' is not declared in the realm's scopes;"
        " did you mean 'videos.read'?",
        "realms/acme.yaml:14: clients.1.colour: unknown key",
        "realms/acme.yaml:15: clients.2: `client_id` is required",
    ], found


def test_idp_yaml_problems_do_not_hide_the_realms(tmp_path, models):
    found = check(tmp_path, models, {"acme.yaml": BROKEN},
                  server="base_url: http://localhost:4000\nlisten: {port: 99999}\nroot_realm: nope\n")
    assert found[:2] == ["idp.yaml:2: listen.port: must be at most 65535",
                         "idp.yaml:3: root_realm 'nope' is not a realm (realms: acme)"], found
    assert "realms/acme.yaml:11: a public client may not use client_credentials" in found, found


def test_root_realm_is_checked_even_when_realms_have_problems(tmp_path, models):
    found = check(tmp_path, models, {"acme.yaml": "name: acme\ncolour: red\n"},
                  server="base_url: http://localhost:4000\nroot_realm: acmee\n")
    assert "idp.yaml:2: root_realm 'acmee' is not a realm (realms: acme)" in found, found
    assert "realms/acme.yaml:2: colour: unknown key" in found, found


@pytest.mark.parametrize(("realm", "expected"), [
    ("name: Acme Corp\n", "realms/acme.yaml:1: name: must be lowercase letters, digits, `-` and `_`,"
     " at most 63 characters, starting with a letter or digit"),
    ("name: acme\nclients:\n  - {client_id: a, redirect_uris: ['https://a.example/cb']}\n",
     "realms/acme.yaml:3: clients.0: `type` is required"),
    ("name: acme\nclients:\n  - {client_id: a, type: public, grant_types: [authorisation_code]}\n",
     "realms/acme.yaml:3: clients.0.grant_types.0: 'authorisation_code' is not one of: authorization_code,"
     " refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code,"
     " urn:ietf:params:oauth:grant-type:token-exchange; did you mean 'authorization_code'?"),
    ("name: acme\nclients:\n  - {client_id: a, type: public, scope: [openid]}\n",
     "realms/acme.yaml:3: clients.0.scope: unknown key; did you mean `scopes`?"),
    ("name: acme\nproviders:\n  - {id: password, type: password, registation: true}\n",
     "realms/acme.yaml:3: providers.0.registation: unknown key; did you mean `registration`?"),
    ("name: acme\nmax_sessions_per_user: lots\n", "realms/acme.yaml:2: max_sessions_per_user: must be a whole number"),
    ("name: acme\nrefresh_requires_verified_email: maybe\n",
     "realms/acme.yaml:2: refresh_requires_verified_email: must be true or false"),
    ("name: acme\nproviders:\n  - {id: password, type: pasword}\n",
     "realms/acme.yaml:3: providers.0: unknown provider type 'pasword'; installed types: github, google, password;"
     " did you mean 'password'?"),
], ids=["name-pattern", "required", "literal", "unknown-key", "unknown-key-in-provider", "int", "bool",
        "provider-type"])
def test_messages_are_in_the_products_words(tmp_path, models, realm, expected):
    found = check(tmp_path, models, {"acme.yaml": realm + "providers: [{id: password, type: password}]\n"
                                     if "providers" not in realm else realm})
    assert expected in found, found
    assert not any("pattern" in p or "Field required" in p or "Input should" in p for p in found), found


def test_misspelled_claim_names(tmp_path, models):
    # OIDC Core §5.1: the standard claims a scope can release.
    realm = ("name: acme\nproviders: [{id: password, type: password}]\n"
             "claims:\n  profile: [name, given_nme, shoe_size]\n")
    found = check(tmp_path, models, {"acme.yaml": realm})
    assert found == [
        "realms/acme.yaml:4: claim 'given_nme' is not an OpenID Connect standard claim (OIDC Core §5.1);"
        " did you mean 'given_name'?",
        "realms/acme.yaml:4: claim 'shoe_size' is not an OpenID Connect standard claim (OIDC Core §5.1),"
        " and with only local providers no user can have it",
    ], found


def test_custom_claims_are_allowed_with_a_federated_provider(tmp_path, models):
    realm = ("name: acme\nproviders:\n  - {id: password, type: password}\n"
             "  - {id: corp, type: google, issuer: 'https://sso.example', client_id: x,"
             " client_secret: '${CORP_SECRET}'}\n"
             "claims:\n  profile: [name, department]\n")
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(realm)
    (tmp_path / "idp.yaml").write_text(SERVER)
    load_config(tmp_path / "idp.yaml", models, environ={"CORP_SECRET": "s" * 32})


def test_realm_file_name_must_match_its_name(tmp_path, models):
    found = check(tmp_path, models, {"acme.yaml": "name: other\nproviders: [{id: password, type: password}]\n"},
                  server="base_url: http://localhost:4000\nroot_realm: null\n")
    assert found == ["realms/acme.yaml:1: the realm is named 'other' but its file is acme.yaml:"
                     " name the file other.yaml (or the realm 'acme')"], found


def test_a_realm_without_any_way_to_sign_in(tmp_path, models):
    found = check(tmp_path, models, {"acme.yaml": "name: acme\ndisplay_name: Acme\n"})
    assert found == ["realms/acme.yaml:1: the realm has no way to sign in: add a provider (users) or a"
                     " confidential client_credentials client (machines)"], found
    # ... and it is still said when another part of the realm does not validate
    found = check(tmp_path, models, {"acme.yaml": "name: acme\nlogo_url: 42\n"})
    assert any("no way to sign in" in p for p in found) and any("logo_url" in p for p in found), found


@pytest.mark.parametrize(("text", "expected"), [
    ("name: acme\nclients: [\n  {client_id: a}\n", "realms/acme.yaml:2: invalid YAML: a flow sequence starting"
     " here is never closed"),
    ("name: acme\nscopes:\n  x: {description: \"unterminated}\nclients: []\n",
     "realms/acme.yaml:3: invalid YAML: a quoted scalar starting here is never closed"),
    ("name: acme\n\tclients: []\n", "realms/acme.yaml:2: invalid YAML: found character '\\t' that cannot start"
     " any token (indent with spaces, not tabs)"),
], ids=["unclosed-bracket", "unclosed-quote", "tab"])
def test_yaml_syntax_errors_point_at_the_line_to_fix(tmp_path, models, text, expected):
    found = check(tmp_path, models, {"acme.yaml": text})
    assert len(found) == 1 and found[0].startswith(expected), found  # no root_realm noise either


def test_a_client_that_needs_users_in_a_realm_without_providers_is_said_with_other_errors(tmp_path, models):
    realm = ("name: acme\nclients:\n  - {client_id: a, type: public, redirect_uris: ['https://a.example/cb']}\n"
             "  - {client_id: b, type: nope}\n")
    found = check(tmp_path, models, {"acme.yaml": realm})
    assert found == [
        "realms/acme.yaml:3: this client signs users in, but the realm has no provider to sign in with",
        "realms/acme.yaml:4: clients.1.type: 'nope' is not one of: public, confidential",
    ], found
