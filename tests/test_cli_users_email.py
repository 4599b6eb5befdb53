"""`idp users add` applies the same address rule as the forms (issue 16 item 6,
engine.accounts.emails): refused with a readable line, normalised before uniqueness."""

from __future__ import annotations

from tests.test_cli import idp, shipped_config


def test_users_add_refuses_and_normalises_addresses(tmp_path):
    cwd = shipped_config(tmp_path)
    refused = idp("users", "add", "--realm", "acme", "--email", "eve@example.com, mallory@example.com", cwd=cwd,
                  stdin="a long enough password\n")
    assert refused.returncode == 2 and "is not an email address Tessera accepts" in refused.stderr
    assert "Traceback" not in refused.stderr
    created = idp("users", "add", "--realm", "acme", "--email", "\u212aate@EXAMPLE.com", cwd=cwd,
                  stdin="a long enough password\n")
    assert created.returncode == 0 and "<Kate@example.com>" in created.stdout, created.stderr
    again = idp("users", "add", "--realm", "acme", "--email", "kate@example.com", cwd=cwd,
                stdin="a long enough password\n")
    assert again.returncode == 1 and "already has an account" in again.stderr
