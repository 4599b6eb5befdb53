"""The applied-configuration snapshot behind `idp plan` (issue 6, item 2): every setting of
every realm, secrets only as a SHA-256 fingerprint, durations as written in YAML, and the
file the server writes reads back to the same snapshot."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from engine.config.loader import load_config
from engine.config.plan import SNAPSHOT_FILE, diff, read_snapshot, snapshot, snapshot_text, write_snapshot_text
from engine.plugins import Plugins

REALM = """\
name: acme
lifetimes: {access_token: 10m, refresh_token: 45d}
clients:
  - {client_id: svc, type: confidential, secret: "${SVC_SECRET}", grant_types: [client_credentials]}
"""


def _config(tmp_path, secret: str = "s3cret-value-0123456789"):
    (tmp_path / "realms").mkdir(exist_ok=True)
    (tmp_path / "realms" / "acme.yaml").write_text(REALM)
    (tmp_path / "idp.yaml").write_text("base_url: http://127.0.0.1:8080\nrealms: realms/\nroot_realm: acme\n")
    return load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(),
                       environ={"SVC_SECRET": secret})


def test_snapshot_fingerprints_secrets_and_formats_durations(tmp_path):
    secret = "s3cret-value-0123456789"
    taken = snapshot(_config(tmp_path, secret))
    realm = taken["realms"]["acme"]
    client = realm["clients"][0]
    assert client["secret"] == f"<secret sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]}>"
    assert secret not in json.dumps(taken)
    assert realm["lifetimes"]["access_token"] == "10m" and realm["lifetimes"]["refresh_token"] == "45d"
    assert client["grant_types"] == ["client_credentials"] and client["client_id"] == "svc"
    assert taken["server"]["base_url"] == "http://127.0.0.1:8080"
    # every field of the model is there, defaults included
    assert set(realm) == set(type(_config(tmp_path).realms["acme"]).model_fields)


def test_a_rotated_secret_shows_as_changed(tmp_path):
    before = snapshot(_config(tmp_path, "first-secret-0123456789"))
    after = snapshot(_config(tmp_path, "second-secret-0123456789"))
    assert [line.split(":")[0] for line in diff(before, after)] == ["~ realms.acme.clients.svc.secret"]


def test_written_snapshot_reads_back(tmp_path):
    config = _config(tmp_path)
    write_snapshot_text(tmp_path / "var", snapshot_text(config))
    assert read_snapshot(tmp_path / "var") == snapshot(config)
    assert not [p for p in (tmp_path / "var").iterdir() if p.name != SNAPSHOT_FILE]  # no temporary left


def test_values_outside_models_are_written_as_yaml_would_say_them():
    from pydantic import SecretBytes

    from engine.config.plan import _dumps

    assert json.loads(_dumps({"a": frozenset({1}), "b": (timedelta(hours=2),)})) == {"a": [1], "b": ["2h"]}
    assert _dumps(SecretBytes(b"key")) == json.dumps(f"<secret sha256:{hashlib.sha256(b'key').hexdigest()[:12]}>")


def test_snapshot_text_is_one_sorted_compact_document(tmp_path):
    """The text built a realm at a time is exactly a sorted, compact dump of the whole."""
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "zeta.yaml").write_text("name: zeta\nproviders: [{id: password, type: password}]\n")
    config = _config(tmp_path)
    text = snapshot_text(config)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert list(json.loads(text)["realms"]) == ["acme", "zeta"]


async def test_serving_process_writes_the_snapshot_between_requests(tmp_path):
    from engine.config.plan import write_snapshot_in_turns

    config = _config(tmp_path)
    await write_snapshot_in_turns(config, tmp_path / "var", realms_per_turn=1)
    assert read_snapshot(tmp_path / "var") == snapshot(config)


def test_passwords_in_server_urls_are_fingerprinted(tmp_path):
    """A storage DSN's password (often from `${ENV}`) is a secret like any other: the
    snapshot and `idp plan` show a fingerprint, which changes when the password does."""
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(REALM)
    (tmp_path / "idp.yaml").write_text(
        "base_url: http://127.0.0.1:8080\nrealms: realms/\nroot_realm: acme\n"
        'storage: {durable: "postgresql://tessera:${DB_PASSWORD}@db.internal:5432/tessera"}\n')
    models = Plugins().providers.settings_models()

    def taken(password):
        return snapshot(load_config(tmp_path / "idp.yaml", models,
                                    environ={"SVC_SECRET": "s3cret-value-0123456789", "DB_PASSWORD": password}))

    before, after = taken("first-db-password"), taken("second-db-password")
    fingerprint = hashlib.sha256(b"first-db-password").hexdigest()[:12]
    assert before["server"]["storage"]["durable"] == \
        f"postgresql://tessera:<secret sha256:{fingerprint}>@db.internal:5432/tessera"
    assert "first-db-password" not in json.dumps(before)
    assert [line.split(":")[0] for line in diff(before, after)] == ["~ server.storage.durable"]
