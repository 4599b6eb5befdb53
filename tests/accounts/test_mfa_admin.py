"""An operator and a user's second factors (issue 20): `idp users show` lists them,
`idp users reset-mfa` removes them all (audited); both store pairs in-process, and the
commands themselves once."""

from __future__ import annotations

import json

import pyotp
import pytest

from engine.accounts import mfa, recovery_codes, totp
from tests.accounts.mfa_helpers import mfa_idp, password_step


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    return await mfa_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), totp="required")


async def test_reset_removes_every_factor_and_the_user_enrols_again(idp):
    user = await idp.add_user()
    realm = idp.realm()
    secret = totp.new_secret()
    assert await totp.enrol(idp.services, realm, user.id, secret, pyotp.TOTP(secret).at(idp.clock.timestamp()))
    await recovery_codes.regenerate(idp.services, realm, user.id)
    described = await mfa.describe_factors(idp.services, realm, user.id)
    assert described["totp"] is True and described["recovery_codes_left"] == 4 and described["passkeys"] == 0
    removed = await mfa.reset(idp.services, realm, user.id)
    assert removed == {"totp": True, "recovery_codes": 4, "passkeys": 0}
    assert (await mfa.describe_factors(idp.services, realm, user.id))["totp"] is False
    assert "mfa_reset" in {e.type for e in await idp.services.durable.list_events("acme")}
    resp, _ = await password_step(idp)
    assert resp.headers["Location"].endswith("/mfa/enrol")  # required: enrolment again


def test_the_commands_show_and_reset_mfa(tmp_path):
    from tests.test_cli import ROOT, shipped_config
    from tests.test_cli import idp as idp_command

    def run(*args, **kwargs):
        return idp_command("users", *args, cwd=cwd, env={"PYTHONPATH": str(ROOT / "src")}, **kwargs)

    cwd = shipped_config(tmp_path)
    assert run("add", "--realm", "acme", "--email", "ops@example.com", stdin="a long enough password\n").returncode == 0
    shown = json.loads(run("show", "--realm", "acme", "--user", "ops@example.com", "--json").stdout)
    assert shown["second_factors"] == {"totp": False, "totp_enrolled_at": None, "recovery_codes_left": 0,
                                       "passkeys": 0}
    reset = json.loads(run("reset-mfa", "--realm", "acme", "--user", "ops@example.com", "--json").stdout)
    assert reset["removed"] == {"totp": False, "recovery_codes": 0, "passkeys": 0}
    text = run("show", "--realm", "acme", "--user", "ops@example.com").stdout
    assert "second_factors: " in text
