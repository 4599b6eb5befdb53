"""The shipped configuration files pass the shipped JSON Schema (issue 18 item 6): an
editor or CI step that validates against `idp schema` accepts what the project ships,
`${VAR}` references included (fields marked `x-env` accept a reference string)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.config.schema_subset import errors

ROOT = Path(__file__).resolve().parents[2]
SERVER_FILES = ["idp.yaml", "deploy/idp.yaml"]
REALM_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "realms").glob("*.yaml"))


def idp_schema(kind: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "engine.cli", "schema", "--kind", kind], capture_output=True,
                            text=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
                            timeout=120)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    return {kind: idp_schema(kind) for kind in ("server", "realm", "all")}


def test_realm_files_are_shipped():
    assert {"realms/acme.yaml", "realms/default.yaml"} <= set(REALM_FILES)


@pytest.mark.parametrize("name", SERVER_FILES + REALM_FILES)
def test_shipped_file_passes_the_shipped_schema(schemas, name):
    kind = "server" if name in SERVER_FILES else "realm"
    data = yaml.safe_load((ROOT / name).read_text())
    assert errors(schemas[kind], data) == []
    # the combined schema too: its parts' references resolve from its root
    combined = schemas["all"]
    assert errors(combined, data, combined["properties"][kind]) == []


def test_the_schema_still_refuses_what_the_loader_refuses(schemas):
    """The reference alternative does not make the schema accept anything: a port that is
    neither a number nor a reference, an unknown key, a bad enum value are still refused."""
    server, realm = schemas["server"], schemas["realm"]
    assert errors(server, {"listen": {"port": "${IDP_PORT:-4000}"}}) == []
    assert errors(server, {"listen": {"port": "four thousand"}})
    assert errors(server, {"listen": {"port": 70000}})
    assert errors(server, {"colour": "red"})
    assert errors(realm, {"name": "acme", "clients": [{"client_id": "a", "type": "publc"}]})
    assert errors(realm, {"name": "Acme Corp"})
    # a field not marked x-env takes no reference (the loader refuses one there)
    assert errors(realm, {"name": "${REALM}"})
