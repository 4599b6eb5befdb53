"""The realm's `mfa:` policy and the client's `require_mfa` (issue 20) as configuration:
YAML's bare `off` is the policy `off`; a problem is one `file:line: message`."""

from __future__ import annotations

import pytest

from engine.config import load_config
from tests.config.test_dangerous import ENVIRON, PASSWORD, models, problems, write  # noqa: F401

CLIENT = ("clients:\n  - client_id: app\n    type: public\n    redirect_uris: ['https://app.example.com/cb']\n"
          "    require_mfa: true\n")


def test_policy_parses_with_yaml_off_and_durations(tmp_path, models):  # noqa: F811
    path = write(tmp_path, f"name: acme\n{PASSWORD}mfa: {{totp: required, passkeys: off, remember_device: 30d,"
                           f" recovery_codes: 8}}\n")
    realm = load_config(path, models, environ=ENVIRON).realms["acme"]
    assert (realm.mfa.totp, realm.mfa.passkeys) == ("required", "off")
    assert realm.mfa.remember_device.days == 30 and realm.mfa.recovery_codes == 8
    assert realm.mfa.required and realm.mfa.available


def test_strong_sign_in_is_off_by_default(tmp_path, models):  # noqa: F811
    realm = load_config(write(tmp_path, f"name: acme\n{PASSWORD}"), models, environ=ENVIRON).realms["acme"]
    assert not realm.mfa.available and realm.mfa.remember_device.total_seconds() == 0


def test_require_mfa_in_a_realm_without_a_second_factor_is_a_problem(tmp_path, models):  # noqa: F811
    found = problems(write(tmp_path, f"name: acme\n{PASSWORD}{CLIENT}"), models)
    assert len(found) == 1 and found[0].endswith("acme.yaml:7: require_mfa needs a second"
                                                 " factor the realm offers: set mfa.totp or mfa.passkeys to optional"
                                                 " or required"), found


@pytest.mark.parametrize("value", ["sometimes", "yes"])
def test_an_unknown_policy_is_a_problem(tmp_path, models, value):  # noqa: F811
    found = problems(write(tmp_path, f"name: acme\n{PASSWORD}mfa: {{totp: {value}}}\n"), models)
    assert len(found) == 1 and "acme.yaml:3" in found[0] and "mfa.totp" in found[0], found


def test_remember_device_is_bounded(tmp_path, models):  # noqa: F811
    """A remembered browser outliving what browsers keep a cookie (400 days) is a problem."""
    found = problems(write(tmp_path, f"name: acme\n{PASSWORD}mfa: {{totp: optional, remember_device: 3650d}}\n"),
                     models)
    assert len(found) == 1 and "acme.yaml:3" in found[0] and "at most 400d" in found[0], found
