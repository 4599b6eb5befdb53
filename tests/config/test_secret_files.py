"""Secrets from files (issue 18 item 12): `${VAR}` reads the file `VAR_FILE` names when
`VAR` is unset or empty, as Docker and Kubernetes mount secrets (docker-library `file_env`
convention: both set is an error). The file is read at load time; one that cannot be read
is a `file:line` problem naming the variable and the path, never showing content."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.plugins import Plugins
from engine.tokens.keys import load_or_create_kek

SERVER = "base_url: https://id.example.com\nrealms: realms/\nroot_realm: acme\n"
REALM = """\
name: acme
display_name: ${DISPLAY}
providers: [{id: password, type: password}]
clients:
  - client_id: worker
    type: confidential
    secret: ${WORKER_SECRET}
    grant_types: [client_credentials]
"""
SECRET = "file-secret-" + "x" * 32


@pytest.fixture(scope="module")
def models():
    return Plugins().providers.settings_models()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(REALM.replace("${DISPLAY}", "Acme"))
    (tmp_path / "idp.yaml").write_text(SERVER)
    return tmp_path / "idp.yaml"


def problems(path: Path, models, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, models, environ=environ)
    return caught.value.problems


def test_a_reference_reads_the_file_named_by_var_file(tmp_path, config, models):
    (tmp_path / "worker").write_text(SECRET + "\n")  # one trailing newline: stripped
    loaded = load_config(config, models, environ={"WORKER_SECRET_FILE": str(tmp_path / "worker")})
    assert loaded.realms["acme"].clients[0].secret.get_secret_value() == SECRET


def test_only_one_trailing_newline_is_stripped(tmp_path, config, models):
    (tmp_path / "worker").write_text(SECRET + "\n\n")
    loaded = load_config(config, models, environ={"WORKER_SECRET_FILE": str(tmp_path / "worker")})
    assert loaded.realms["acme"].clients[0].secret.get_secret_value() == SECRET + "\n"


def test_var_and_var_file_both_set_is_a_problem(tmp_path, config, models):
    (tmp_path / "worker").write_text(SECRET)
    found = problems(config, models, {"WORKER_SECRET": "x" * 32, "WORKER_SECRET_FILE": str(tmp_path / "worker")})
    assert found == [f"{config.parent}/realms/acme.yaml:7: clients.0.secret: ${{WORKER_SECRET}}:"
                     " both WORKER_SECRET and WORKER_SECRET_FILE are set: set only one"], found


def test_an_empty_var_gives_way_to_var_file(tmp_path, config, models):
    # compose.yaml passes `VAR: ${VAR:-}`, an empty VAR, to containers that use VAR_FILE
    (tmp_path / "worker").write_text(SECRET)
    loaded = load_config(config, models, environ={"WORKER_SECRET": "", "WORKER_SECRET_FILE": str(tmp_path / "worker")})
    assert loaded.realms["acme"].clients[0].secret.get_secret_value() == SECRET


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: None, "No such file or directory"),
    (lambda p: p.mkdir(), "Is a directory"),
    (lambda p: os.mkfifo(p), "not a regular file"),  # never waited on
    (lambda p: p.write_bytes(b"\xff\xfe" + SECRET.encode()), "not UTF-8 text"),
], ids=["missing", "directory", "fifo", "not-utf8"])
def test_an_unreadable_file_names_variable_and_path(tmp_path, config, models, make, reason):
    path = tmp_path / "worker"
    make(path)
    found = problems(config, models, {"WORKER_SECRET_FILE": str(path)})
    assert found == [f"{config.parent}/realms/acme.yaml:7: clients.0.secret: ${{WORKER_SECRET}}:"
                     f" WORKER_SECRET_FILE: cannot read {path}: {reason}"], found
    assert not any(SECRET in p for p in found)


def test_var_file_does_not_open_unmarked_fields(tmp_path, config, models):
    """Only fields marked ENV/SECRET take references; a _FILE does not change that."""
    (config.parent / "realms" / "acme.yaml").write_text(REALM)
    (tmp_path / "display").write_text(SECRET)
    (tmp_path / "worker").write_text(SECRET)
    found = problems(config, models, {"DISPLAY_FILE": str(tmp_path / "display"),
                                      "WORKER_SECRET_FILE": str(tmp_path / "worker")})
    assert len(found) == 1 and "display_name: ${...} is not allowed here" in found[0], found
    assert not any(SECRET in p for p in found)


def test_realm_files_cannot_read_the_servers_variables_from_files_either(tmp_path, config, models):
    (config.parent / "realms" / "acme.yaml").write_text(REALM.replace("${WORKER_SECRET}", "${IDP_SECRET}")
                                                        .replace("${DISPLAY}", "Acme"))
    (tmp_path / "kek").write_text(SECRET)
    found = problems(config, models, {"IDP_SECRET_FILE": str(tmp_path / "kek")})
    assert any("is one of the server's own variables" in p for p in found), found


def test_idp_yaml_reads_files_too(tmp_path, config, models):
    config.write_text(SERVER + "storage: {durable: '${IDP_DURABLE_URL}'}\n")
    (tmp_path / "durable").write_text("sqlite:///var/from-file.sqlite3\n")
    loaded = load_config(config, models, environ={"IDP_DURABLE_URL_FILE": str(tmp_path / "durable"),
                                                  "WORKER_SECRET": SECRET})
    assert loaded.server.storage.durable == "sqlite:///var/from-file.sqlite3"


KEK = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()


def test_the_key_encryption_key_from_a_file(tmp_path):
    (tmp_path / "kek").write_text(KEK + "\n")
    key, origin = load_or_create_kek({"IDP_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "kek"),
                                      "IDP_KEY_ENCRYPTION_KEY": ""}, tmp_path / "var")
    assert key == bytes(range(32)) and "IDP_KEY_ENCRYPTION_KEY_FILE" in origin
    assert not (tmp_path / "var").exists()  # nothing generated


def test_the_key_encryption_key_file_problems(tmp_path):
    (tmp_path / "kek").write_text(KEK)
    with pytest.raises(ValueError, match="both IDP_KEY_ENCRYPTION_KEY and IDP_KEY_ENCRYPTION_KEY_FILE are set"):
        load_or_create_kek({"IDP_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "kek"), "IDP_KEY_ENCRYPTION_KEY": KEK},
                           tmp_path / "var")
    with pytest.raises(ValueError) as caught:
        load_or_create_kek({"IDP_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "nope")}, tmp_path / "var")
    assert str(caught.value) == (f"IDP_KEY_ENCRYPTION_KEY_FILE: cannot read {tmp_path / 'nope'}:"
                                 " No such file or directory")
    assert not (tmp_path / "var").exists()  # a missing secret is not replaced by a generated key
