"""`idp check` on hostile configuration files (issue 23 item 3, issue 16 item 15): exit
status 2, one `file:line: message` per problem, never a traceback, bounded memory."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1024 * 1024 * 1024  # 1 GiB of address space: a bomb that expands cannot fit


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def check(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}  # this tree's engine
    return subprocess.run([sys.executable, "-m", "engine.cli", "check"], capture_output=True, text=True,
                          cwd=cwd, env=environ, timeout=120, preexec_fn=limit_memory)


@pytest.fixture
def shipped(tmp_path) -> Path:
    shutil.copy(ROOT / "idp.yaml", tmp_path / "idp.yaml")
    shutil.copytree(ROOT / "realms", tmp_path / "realms")
    return tmp_path


LAUGHS = "name: bomb\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))

HOSTILE = {
    "billion-laughs": (LAUGHS, "realms/bomb.yaml:2: anchors and aliases are not allowed"),
    "deep": ("name: bomb\nclients: " + "[" * 10_000 + "]" * 10_000 + "\n",
             "realms/bomb.yaml:2: nesting deeper than 20"),
    "oversized-file": ("name: bomb\n" + "# padding\n" * 200_000, "realms/bomb.yaml:1: file larger than 1048576 bytes"),
    "oversized-string": ("name: bomb\ndisplay_name: " + "x" * 1_000_000 + "\n",
                         "realms/bomb.yaml:2: value longer than 8192 characters"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_check_reports_a_hostile_realm_file_as_one_line(shipped, case):
    text, expected = HOSTILE[case]
    (shipped / "realms" / "bomb.yaml").write_text(text)
    result = check(shipped)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert result.stderr.splitlines() == [expected, "1 problem(s) found"]


def test_check_reports_a_hostile_idp_yaml(shipped):
    (shipped / "idp.yaml").write_text("base_url: &b http://localhost:4000\nrealms: *b\n")
    result = check(shipped)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == ["idp.yaml:1: anchors and aliases are not allowed", "1 problem(s) found"]


def test_check_refuses_dangerous_realm_settings_one_line_each(shipped):
    """Issue 16 item 15 and issue 23 items 5-6 through the operator's command."""
    (shipped / "realms" / "evil.yaml").write_text(
        "name: evil\n"
        "display_name: ${IDP_KEY_ENCRYPTION_KEY}\n"
        "mail: {sender: \"Evil <a@example.com>\\r\\nBcc: all@example.com\"}\n"
        "providers: [{id: password, type: password}]\n"
        "clients:\n"
        "  - {client_id: app, type: public, redirect_uris: ['javascript:alert(1)']}\n"
        "  - {client_id: worker, type: confidential, secret: written-in-clear-0123456789,"
        " grant_types: [client_credentials]}\n"
        "lifetimes: {access_token: 0}\n")
    result = check(shipped, env={"IDP_KEY_ENCRYPTION_KEY": "kek-must-not-leak"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == "5 problem(s) found", lines
    for expected in ["realms/evil.yaml:2: display_name: ${...} is not allowed here",
                     "realms/evil.yaml:3: mail.sender: a mail address must not contain control characters",
                     "realms/evil.yaml:6: clients.0.redirect_uris: ",
                     "realms/evil.yaml:7: clients.1.secret: a secret must be a ${ENV} reference",
                     "realms/evil.yaml:8: lifetimes.access_token: must be longer than zero"]:
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert lines[:-1] == sorted(lines[:-1], key=lambda line: int(line.split(":")[1]))  # in file order
    assert "kek-must-not-leak" not in result.stderr + result.stdout


def test_the_shipped_configuration_passes_on_loopback_and_not_in_public(shipped):
    """The demo secret in realms/acme.yaml is for a loopback base_url only."""
    assert check(shipped, env={"IDP_BASE_URL": "http://localhost:4000"}).returncode == 0
    public = check(shipped, env={"IDP_BASE_URL": "https://idp.example.com"})
    assert public.returncode == 2
    secret_line = next(n for n, line in enumerate((ROOT / "realms" / "acme.yaml").read_text().splitlines(), 1)
                       if line.strip().startswith("secret:"))
    assert public.stderr.splitlines()[0].startswith(
        f"realms/acme.yaml:{secret_line}: clients.1.secret: the variable is not set")
    real = check(shipped, env={"IDP_BASE_URL": "https://idp.example.com", "VIDEOS_WORKER_SECRET": "v" * 40})
    assert real.returncode == 0, real.stderr
