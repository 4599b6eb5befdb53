"""An administrator's everyday commands (issue 18 item 9; engine.accounts.admin and
`idp users ...`): a disabled, deleted or revoked user's sessions, access tokens and refresh
tokens end at once, on both store pairs; every change is audited; the commands answer in
text or JSON."""

from __future__ import annotations

import json

import pytest

from engine.accounts import admin
from tests.accounts.conftest import PASSWORD
from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange, login_for_code


async def signed_in(idp, email="ada@example.com"):
    """A user with a browser session (the test client's cookies), an access token and a
    refresh token."""
    user = await idp.add_user(email, PASSWORD)
    code, verifier, _ = await login_for_code(idp, email, PASSWORD)
    tokens = await (await exchange(idp, code, verifier)).json()
    assert "refresh_token" in tokens
    return user, tokens


async def assert_everything_ended(idp, tokens):
    resp, _ = await authorize(idp, prompt="none")
    assert query_of(resp.headers["Location"])["error"] == "login_required"  # the session
    resp = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert resp.status == 401  # the access token
    resp = await idp.client.post("/token", data={"grant_type": "refresh_token", "client_id": "spa",
                                                 "refresh_token": tokens["refresh_token"]})
    assert (await resp.json())["error"] == "invalid_grant"  # the refresh family


@pytest.mark.parametrize("action", ["disable", "delete", "revoke-sessions"])
async def test_disable_delete_and_revoke_end_everything_at_once(idp, action):
    user, tokens = await signed_in(idp)
    assert len(await admin.sessions(idp.services, idp.realm(), user)) == 1
    idp.clock.advance(1)
    if action == "disable":
        await admin.set_disabled(idp.services, idp.realm(), user, True)
        assert (await idp.services.durable.get_user("acme", user.id)).disabled
    elif action == "delete":
        await admin.delete(idp.services, idp.realm(), user)
        assert await idp.services.durable.get_user("acme", user.id) is None
    else:
        assert await admin.revoke_sessions(idp.services, idp.realm(), user) == 1
    await assert_everything_ended(idp, tokens)
    assert await admin.sessions(idp.services, idp.realm(), user) == []
    types = {e.type for e in await idp.services.durable.list_events("acme") if e.user_id == user.id}
    assert {"disable": "user_disabled", "delete": "user_deleted", "revoke-sessions": "sessions_revoked"}[action] \
        in types


async def test_an_enabled_user_signs_in_again(idp):
    user, _ = await signed_in(idp)
    await admin.set_disabled(idp.services, idp.realm(), user, True)
    await admin.set_disabled(idp.services, idp.realm(), user, False)
    idp.clock.advance(1)
    code, _, _ = await login_for_code(idp, "ada@example.com", PASSWORD)
    assert code


async def test_a_reset_link_for_the_operator_sets_a_new_password(idp):
    user = await idp.add_user("ada@example.com", PASSWORD)
    link = await admin.reset_link(idp.services, idp.realm(), user)
    assert link.startswith(f"{idp.issuer}/reset-password?token=")
    page = await idp.client.get(link.removeprefix(idp.issuer))
    assert page.status == 200 and "password" in await page.text()


async def test_find_user_by_id_or_any_spelling_of_the_address(idp):
    user = await idp.add_user("ada@example.com", PASSWORD)
    for who in (user.id, "ada@example.com", "ADA@Example.com"):
        assert (await admin.find_user(idp.services, idp.realm(), who)).id == user.id
    assert await admin.find_user(idp.services, idp.realm(), "not an address") is None


def test_the_users_commands_in_text_and_json(tmp_path):
    from tests.test_cli import ROOT, shipped_config
    from tests.test_cli import idp as idp_command

    def run(*args, **kwargs):  # this checkout's sources, whatever the cwd
        return idp_command("users", *args, cwd=cwd, env={"PYTHONPATH": str(ROOT / "src")}, **kwargs)

    cwd = shipped_config(tmp_path)
    assert run("add", "--realm", "acme", "--email", "ops@example.com", "--name", "Ops",
               stdin="a long enough password\n").returncode == 0
    listed = run("list", "--realm", "acme", "--json")
    users = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(u["email"], u["name"], u["disabled"]) for u in users] == [("ops@example.com", "Ops", False)]
    shown = json.loads(run("show", "--realm", "acme", "--user", "ops@example.com", "--json").stdout)
    assert shown["has_password"] is True and shown["identities"] == [] and "password" not in json.dumps(
        {k: v for k, v in shown.items() if k != "has_password"})
    assert json.loads(run("disable", "--realm", "acme", "--user", users[0]["id"], "--json").stdout)["disabled"]
    assert "disabled" in run("list", "--realm", "acme").stdout
    link = json.loads(run("reset-password", "--realm", "acme", "--user", "ops@example.com", "--json").stdout)
    assert link["link"].startswith("http://localhost:4000/realms/acme/reset-password?token=")
    assert run("sessions", "--realm", "acme", "--user", "ops@example.com").stdout.strip() == "no live sessions"
    missing = run("show", "--realm", "acme", "--user", "nobody@example.com")
    assert missing.returncode == 1 and "no user" in missing.stderr
    assert run("delete", "--realm", "acme", "--user", "ops@example.com").returncode == 0
    assert run("list", "--realm", "acme").stdout == ""
    audit = idp_command("audit", "--realm", "acme", cwd=cwd, env={"PYTHONPATH": str(ROOT / "src")}).stdout
    assert {"user_created", "user_disabled", "password_reset_link_issued", "user_deleted"} <= {
        json.loads(line)["type"] for line in audit.splitlines()}
