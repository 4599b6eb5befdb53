"""`idp check` refuses passkeys that no browser would use (issue 20): WebAuthn Level 3
§5.1.3 makes the relying party id a domain (never an IP address), and browsers offer
WebAuthn only to secure contexts (https, or http://localhost). One `file:line` problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.plugins import Plugins

REALM = """\
name: acme
providers: [{id: password, type: password}]
mfa:
  passkeys: optional
"""


@pytest.fixture(scope="module")
def models():
    return Plugins().providers.settings_models()


def write(tmp_path: Path, base_url: str, realm: str = REALM) -> Path:
    (tmp_path / "realms").mkdir(exist_ok=True)
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent(realm))
    (tmp_path / "idp.yaml").write_text(f"base_url: {base_url}\nrealms: realms/\nroot_realm: null\n")
    return tmp_path / "idp.yaml"


@pytest.mark.parametrize(("base_url", "message"), [
    ("http://127.0.0.1:4000", "browsers refuse the IP address 127.0.0.1"),
    ("https://[::1]:4000", "browsers refuse the IP address ::1"),
    ("https://10.0.0.5", "browsers refuse the IP address 10.0.0.5"),
    ("http://idp.example.com", "browsers offer WebAuthn only to secure contexts"),
])
def test_refused(tmp_path, models, base_url, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, base_url), models)
    [problem] = caught.value.problems
    assert problem.startswith(str(Path("realms") / "acme.yaml") + ":4: ") or ":4: " in problem, problem
    assert message in problem


@pytest.mark.parametrize("base_url", ["https://idp.example.com", "http://localhost:4000", "http://idp.localhost"])
def test_accepted(tmp_path, models, base_url):
    assert "acme" in load_config(write(tmp_path, base_url), models).realms


def test_off_is_not_checked(tmp_path, models):
    realm = REALM.replace("passkeys: optional", "passkeys: \"off\"")
    assert "acme" in load_config(write(tmp_path, "http://127.0.0.1:4000", realm), models).realms
