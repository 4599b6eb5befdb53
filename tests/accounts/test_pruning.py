"""Self-registered accounts never verified are removed after `lifetimes.unverified_account`
(issue 23 item 13), with an audit event; verified accounts and accounts made by an operator
are never touched. Accounts are made through HTTP (/register) on both store pairs; time
moves on the FrozenClock."""

from __future__ import annotations

import pytest

from engine.accounts.pruning import UNVERIFIED_ACCOUNT_REMOVED, prune_all, prune_unverified
from tests.accounts.conftest import PASSWORD, link_in
from tests.accounts.helpers import register, verify
from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, login_for_code

DAY = 86400


async def _by_email(idp, email: str):
    return await idp.services.accounts.by_email("acme", email)


async def test_unverified_self_registered_account_is_removed_after_the_lifetime(idp):
    assert (await register(idp, "squatter@example.com")).status == 200
    assert (await register(idp, "owner@example.com")).status == 200
    await verify(idp, link_in(await idp.last_mail("owner@example.com"), "/verify-email"))
    operator = await idp.add_user("operator-made@example.com", verified=False)  # as `idp users add --unverified`
    squatter = await _by_email(idp, "squatter@example.com")
    assert squatter.self_registered and not operator.self_registered

    idp.clock.advance(7 * DAY - 1)
    assert await prune_unverified(idp.services, idp.realm()) == []  # not yet
    idp.clock.advance(2)
    assert await prune_all(idp.services) == 1

    assert await _by_email(idp, "squatter@example.com") is None
    assert await idp.services.durable.get_credential("acme", squatter.id, "password") is None
    assert (await _by_email(idp, "owner@example.com")).email_verified  # verified: kept
    assert await _by_email(idp, "operator-made@example.com") is not None  # operator-made: kept
    events = [e for e in await idp.services.durable.list_events("acme") if e.type == UNVERIFIED_ACCOUNT_REMOVED]
    assert [e.user_id for e in events] == [squatter.id]
    # The address is free again: its real owner can register it.
    assert (await register(idp, "squatter@example.com")).status == 200
    assert (await _by_email(idp, "squatter@example.com")).id != squatter.id


@pytest.fixture
async def permissive_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """A realm where an unverified account can sign in (require_verified_email: false)."""
    from tests.accounts.conftest import build_idp, mail_yaml
    from tests.accounts.test_proof import PERMISSIVE_ACME

    outbox = tmp_path / "outbox"
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                           mail=mail_yaml(outbox), outbox=outbox, realms={"acme": PERMISSIVE_ACME})


async def test_a_removed_account_loses_its_sessions_and_refresh_tokens(permissive_idp):
    """What the account held ends with it: its browser session and refresh families.
    (An unverified account can sign in where the realm allows it.)"""
    idp = permissive_idp
    await register(idp, "pending@example.com", PASSWORD)
    user = await _by_email(idp, "pending@example.com")
    code, verifier, _ = await login_for_code(idp, "pending@example.com", PASSWORD)
    assert code
    idp.clock.advance(7 * DAY + 1)
    await prune_all(idp.services)
    resp, _ = await authorize(idp, prompt="none")
    assert query_of(resp.headers["Location"]).get("error") == "login_required"
    families = await idp.services.durable.revoke_families("acme", idp.clock.now(), "test", user_id=user.id)
    assert families == 0  # none left to revoke: they were removed with the account


def test_idp_users_prune_runs_the_sweep(tmp_path):
    """`idp users prune --realm R` runs the sweep now; operator-made accounts (`idp users
    add`, verified or not) are never removed by it."""
    from tests.test_cli import ROOT, shipped_config
    from tests.test_cli import idp as idp_command

    def run_idp(*args: str, **kwargs):  # this checkout's sources, whatever the cwd
        return idp_command(*args, env={"PYTHONPATH": str(ROOT / "src")}, **kwargs)

    cwd = shipped_config(tmp_path)
    added = run_idp("users", "add", "--realm", "acme", "--email", "op@example.com", "--unverified", cwd=cwd,
                    stdin="a long enough password\n")
    assert added.returncode == 0, added.stderr
    pruned = run_idp("users", "prune", "--realm", "acme", cwd=cwd)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 0 unverified self-registered account(s) from realm acme" in pruned.stdout
    missing = run_idp("users", "add", "--realm", "acme", cwd=cwd)
    assert missing.returncode == 2 and "--email is required" in missing.stderr
