"""The container (issue 6, item 7): a slim non-root image with a healthcheck that needs no
curl, and compose.yaml with PostgreSQL, Redis (append-only) and Tessera reading idp.yaml
and realms/ mounted read-only. No Docker engine runs here, so nothing is built or started:
the files are checked as data, the container's idp.yaml is validated by `idp check` as
the container would see it, and `docker compose config` (or the older `docker-compose`)
validates compose.yaml when installed, which needs no engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops.servers import idp_command

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_image_is_slim_non_root_with_a_python_healthcheck():
    stage = final_stage()
    assert "slim" in stage[0][1]
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthcheck = next(args for keyword, args in stage if keyword == "HEALTHCHECK")
    assert '"python", "-c"' in healthcheck and "/healthz" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert ("STOPSIGNAL", "SIGTERM") in stage
    assert any(keyword == "ENTRYPOINT" and "idp" in args for keyword, args in stage)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "tests"} <= set(ignored)


def test_compose_runs_postgres_append_only_redis_and_tessera_on_mounted_config():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "tessera"}
    assert services["postgres"]["image"].startswith("postgres:")
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    tessera = services["tessera"]
    assert tessera["build"] == "."
    assert tessera["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                     "redis": {"condition": "service_healthy"}}
    mounts = {volume.split(":")[-2]: volume for volume in tessera["volumes"]}
    assert mounts["/etc/tessera/idp.yaml"].endswith(":ro") and mounts["/etc/tessera/realms"].endswith(":ro")
    assert tessera["environment"]["IDP_CONFIG"] == "/etc/tessera/idp.yaml"
    assert tessera["environment"]["IDP_DURABLE_URL"].startswith("postgresql://")
    assert tessera["environment"]["IDP_EPHEMERAL_URL"].startswith("redis://redis:")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    # Issue 18 item 12: published on loopback unless the operator says otherwise.
    assert tessera["ports"] == ["${TESSERA_BIND:-127.0.0.1}:${TESSERA_PORT:-4000}:4000"]


def test_the_containers_configuration_is_valid(tmp_path, monkeypatch):
    """/etc/tessera as compose mounts it: deploy/idp.yaml and realms/."""
    monkeypatch.delenv("IDP_DURABLE_URL", raising=False)
    shutil.copy(ROOT / "deploy" / "idp.yaml", tmp_path / "idp.yaml")
    shutil.copytree(ROOT / "realms", tmp_path / "realms")
    missing = idp_command("check", cwd=tmp_path)
    assert missing.returncode == 2 and "IDP_DURABLE_URL" in missing.stderr  # no silent SQLite fallback
    result = idp_command("check", cwd=tmp_path, env={
        "IDP_DURABLE_URL": "postgresql://idp:pw@postgres:5432/idp", "IDP_EPHEMERAL_URL": "redis://redis:6379/0"})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((ROOT / "deploy" / "idp.yaml").read_text())
    assert config["listen"]["host"] == "0.0.0.0"
    assert Path(config["keys"]["data_dir"]).is_absolute()  # writable volume, not the read-only mount


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_it():
    command = compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    result = subprocess.run([*command, "-f", str(ROOT / "compose.yaml"), "config"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == {"postgres", "redis", "tessera"}
