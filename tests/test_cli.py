"""The `idp` command as an operator uses it: check, schema, users, keys, serve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def idp(*args: str, cwd: Path, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          cwd=cwd, input=stdin, env={**os.environ, **(env or {})}, timeout=60)


def shipped_config(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "idp.yaml", tmp_path / "idp.yaml")
    shutil.copytree(ROOT / "realms", tmp_path / "realms")
    return tmp_path


def test_check_accepts_the_shipped_configuration(tmp_path):
    result = idp("check", cwd=shipped_config(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "realm default: issuer http://localhost:4000," in result.stdout
    assert "realm acme: issuer http://localhost:4000/realms/acme," in result.stdout


def test_check_reports_every_problem_as_file_line(tmp_path):
    shipped_config(tmp_path)
    (tmp_path / "realms" / "broken.yaml").write_text(
        "name: broken\ncolour: red\nclients:\n  - {client_id: x, type: public, grant_types: [client_credentials],"
        " redirect_uris: [/relative]}\n")
    result = idp("check", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("realms/broken.yaml:2: colour: unknown key") for line in lines), lines
    assert any(line.startswith("realms/broken.yaml:4: ") and "absolute" in line for line in lines), lines


def test_schema_includes_plugin_settings(tmp_path):
    result = idp("schema", "--kind", "realm", cwd=shipped_config(tmp_path))
    schema = json.loads(result.stdout)
    defs = schema["$defs"]
    assert {"GoogleSettings", "GitHubSettings", "PasswordSettings", "Client"} <= set(defs)
    assert defs["GoogleSettings"]["properties"]["client_secret"]["writeOnly"] is True


def test_users_add_and_keys(tmp_path):
    cwd = shipped_config(tmp_path)
    result = idp("users", "add", "--realm", "acme", "--email", "eve@example.com", cwd=cwd,
                 stdin="a long enough password\n")
    assert result.returncode == 0, result.stderr
    again = idp("users", "add", "--realm", "acme", "--email", "EVE@example.com", cwd=cwd,
                stdin="a long enough password\n")
    assert again.returncode == 1 and "already has an account" in again.stderr
    listed = idp("keys", "list", "--realm", "acme", cwd=cwd)
    assert listed.stdout.count("\tactive\t") == 3  # RS256, ES256, EdDSA
    rotated = idp("keys", "rotate", "--realm", "acme", cwd=cwd)
    assert rotated.stdout.count("published next") == 3
    key_file = cwd / "var" / "key-encryption-key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_on_embedded_default_then_sigterm(tmp_path):
    """The README's first command: discovery and JWKS on a bare machine; SIGTERM drains."""
    cwd = shipped_config(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/openid-configuration") as r:
                    document = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        assert document["issuer"] == "http://localhost:4000"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/realms/acme/.well-known/jwks.json") as r:
            assert len(json.load(r)["keys"]) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        output = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    # Issue 18 items 2 and 3: once ready it says where, which issuers, where the data is,
    # what to do next; and that the port it serves is not the one the issuer names.
    assert f"base_url http://localhost:4000 names port 4000, but the server listens on port {port}" in output
    assert "IDP_BASE_URL=http://localhost:" in output
    assert f"Tessera is serving on http://127.0.0.1:{port}" in output
    assert "realm default: issuer http://localhost:4000 (root realm)" in output
    assert "realm acme: issuer http://localhost:4000/realms/acme" in output
    assert "data: SQLite var/idp.sqlite3" in output
    assert "idp demo" in output and "idp users add --realm default" in output


def test_check_warns_when_base_url_names_another_port_than_listen(tmp_path):
    cwd = shipped_config(tmp_path)
    (cwd / "idp.yaml").write_text((cwd / "idp.yaml").read_text().replace("port: 4000", "port: 4100"))
    result = idp("check", cwd=cwd)
    assert result.returncode == 0
    assert "warning: base_url http://localhost:4000 names port 4000, but the server listens on port 4100" \
        in result.stderr
    (tmp_path / "again").mkdir()
    clean = idp("check", cwd=shipped_config(tmp_path / "again"))
    assert "warning" not in clean.stderr


# --------------------------------------------------------------------------- issue 18 item 4
# One line (and a hint), a non-zero exit and no traceback for the failures of the first hour.


def assert_explained(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "hint: " in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_missing_postgresql_database_is_one_line_with_how_to_create_it(tmp_path):
    cwd = shipped_config(tmp_path)
    env = {"IDP_DURABLE_URL": "postgresql://postgres@127.0.0.1:5432/tessera_never_created_x1"}
    for command in (("migrate",), ("serve", "--port", str(free_port()))):
        result = idp(*command, cwd=cwd, env=env)
        assert_explained(result, 'database "tessera_never_created_x1" does not exist',
                         'CREATE DATABASE "tessera_never_created_x1"')
    debug = idp("migrate", "--debug", cwd=cwd, env=env)
    assert "Traceback" in debug.stderr  # --debug shows it


def test_unreachable_stores_at_start_up_are_one_line(tmp_path):
    cwd = shipped_config(tmp_path)
    dead = free_port()  # nothing listens there
    result = idp("serve", "--port", str(free_port()), cwd=cwd,
                 env={"IDP_DURABLE_URL": f"postgresql://postgres@127.0.0.1:{dead}/x"})
    assert_explained(result, "a store does not answer: postgres", "is PostgreSQL running")
    result = idp("serve", "--port", str(free_port()), cwd=cwd, env={"IDP_EPHEMERAL_URL": f"redis://127.0.0.1:{dead}/0"})
    assert_explained(result, "a store does not answer: redis", "is Redis running")


def test_a_port_in_use_and_a_malformed_key_encryption_key_are_one_line(tmp_path):
    cwd = shipped_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = idp("serve", "--port", str(taken.getsockname()[1]), cwd=cwd)
    assert_explained(result, "the port is in use", "--port")
    for env in ({"IDP_KEY_ENCRYPTION_KEY": "c2hvcnQ"}, {"IDP_KEY_ENCRYPTION_KEY": "not a key!"},
                {"IDP_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "missing")}):
        result = idp("serve", "--port", str(free_port()), cwd=cwd, env=env)
        assert_explained(result, "IDP_KEY_ENCRYPTION_KEY")


def test_audit_into_a_closed_pipe_ends_quietly(tmp_path):
    cwd = shipped_config(tmp_path)
    for _ in range(2):
        assert idp("keys", "rotate", "--realm", "acme", cwd=cwd).returncode == 0  # audited: key_created, ...
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "audit", "--realm", "acme"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head` that has read enough
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_every_option_of_every_command_is_described():
    """Issue 18 item 10: `idp <command> --help` explains every option."""
    import argparse

    from engine.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    missing = [f"{name} {action.option_strings or action.dest}" for name, sub in commands.items()
               for action in sub._actions if not action.help and not isinstance(action, argparse._HelpAction)]
    assert missing == []


def test_audit_names_a_misspelt_event_type(tmp_path):
    """Issue 18 item 10: `idp audit --type` checks the names it is given."""
    cwd = shipped_config(tmp_path)
    assert idp("keys", "rotate", "--realm", "acme", cwd=cwd).returncode == 0
    good = idp("audit", "--realm", "acme", "--type", "key_created,login", cwd=cwd)
    assert good.returncode == 0 and good.stdout.count('"key_created"') >= 3
    bad = idp("audit", "--realm", "acme", "--type", "key_created,logn", cwd=cwd)
    assert bad.returncode == 2 and "unknown event type(s): logn" in bad.stderr and "login" in bad.stderr


def test_check_reports_field_and_cross_reference_problems_in_one_pass(tmp_path):
    """Issue 18 item 5: one run of `idp check` lists every problem, sorted by file and line."""
    shipped_config(tmp_path)

    def edit(name: str, old: str, new: str) -> int:
        text = (tmp_path / name).read_text()
        assert old in text
        (tmp_path / name).write_text(text.replace(old, new, 1))
        return text[:text.index(old)].count("\n") + 1

    root = edit("idp.yaml", "root_realm: default", "root_realm: defualt")
    field = edit("realms/acme.yaml", "type: public", "type: publik")  # a field error ...
    cross = edit("realms/acme.yaml", "scopes: [videos.read]", "scopes: [videos.reed]")  # ... and a cross-reference
    result = idp("check", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.endswith("found")]
    assert [line.partition(": ")[0] for line in lines] == [f"idp.yaml:{root}", f"realms/acme.yaml:{field}",
                                                           f"realms/acme.yaml:{cross}"], lines
    assert "root_realm 'defualt' is not a realm (realms: acme, default)" in lines[0]
    assert "'publik' is not one of: public, confidential; did you mean 'public'?" in lines[1]
    assert "scope 'videos.reed' is not declared in the realm's scopes; did you mean 'videos.read'?" in lines[2]
