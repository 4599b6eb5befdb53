"""Real processes for the operations tests: `idp serve`, and throwaway `redis-server` and
PostgreSQL instances that a test may kill, pause and restart.

Everything listens on 127.0.0.1 on a free port; every process is stopped by the fixture
that started it (by its own pid, never by name).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEK = base64.urlsafe_b64encode(b"ops-test-key-encryption-key-32b!").decode()
WORKER_SECRET = "ops-worker-secret-" + "s" * 32
APP_REDIRECT = "http://localhost:3000/callback"
PASSWORD = "correct horse battery staple"

# One realm with what the operations tests need: a strict public client (no reuse grace),
# a public client with a retry grace (what a mobile app on a flaky network wants), a
# service client, and cheap argon2.
OPS_REALM = f"""\
name: acme
providers:
  - id: password
    type: password
    argon2: {{memory_cost: 1024, time_cost: 1, parallelism: 1}}
clients:
  - client_id: app
    type: public
    redirect_uris: ["{APP_REDIRECT}"]
    post_logout_redirect_uris: ["http://localhost:3000/"]
    scopes: [openid, profile, email, offline_access]
    consent: implicit
  - client_id: mobile
    type: public
    redirect_uris: ["{APP_REDIRECT}"]
    scopes: [openid, profile, email, offline_access]
    consent: implicit
    reuse_grace: 30s
  - client_id: worker
    type: confidential
    secret: ${{WORKER_SECRET}}
    grant_types: [client_credentials]
    scopes: [videos.read]
    audience: [videos-api]
scopes:
  videos.read: {{description: Read videos}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def write_deployment(
    directory: Path,
    *,
    base_url: str,
    durable: str,
    ephemeral: str,
    prefix: str = "tessera:",
    realms: dict[str, str] | None = None,
) -> Path:
    """An operator's config directory: idp.yaml and realms/. Returns idp.yaml's path."""
    (directory / "realms").mkdir(parents=True, exist_ok=True)
    for name, text in (realms or {"acme": OPS_REALM}).items():
        (directory / "realms" / f"{name}.yaml").write_text(textwrap.dedent(text))
    config = directory / "idp.yaml"
    config.write_text(
        f"base_url: {base_url}\nrealms: realms/\nroot_realm: null\n"
        f"storage: {{durable: '{durable}', ephemeral: '{ephemeral}', ephemeral_prefix: '{prefix}'}}\n"
    )
    return config


def server_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "IDP_KEY_ENCRYPTION_KEY": KEK, "WORKER_SECRET": WORKER_SECRET}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def idp_command(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          cwd=cwd, input=stdin, env=server_env(**(env or {})), timeout=timeout)


def http(method: str, url: str, *, data: dict[str, str] | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection, no redirects followed: (status, headers, body)."""
    from urllib.parse import urlencode

    body = urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@dataclass
class IdpServer:
    """An `idp serve` process; its output (JSON logs) goes to `log_path`."""

    proc: subprocess.Popen
    port: int
    cwd: Path
    log_path: Path
    _log: Any = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> IdpServer:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"idp serve exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            try:
                return http("GET", self.url + "/readyz", timeout=2)[0] == 200
            except OSError:
                return False

        try:
            wait_for(ready, timeout, f"idp serve on port {self.port}")
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        """`wait_for`, with the end of the server's output in the failure message."""
        try:
            return wait_for(predicate, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; server output:\n{self.output()[-4000:]}") from None

    def json_logs(self) -> list[dict[str, Any]]:
        records = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode


def start_idp(cwd: Path, *args: str, port: int | None = None, config: str = "idp.yaml",
              env: dict[str, str] | None = None, name: str = "idp") -> IdpServer:
    port = port or free_port()
    log_path = cwd / f"{name}-{port}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "-c", config, "--port", str(port), "--log-format", "json",
         *args],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env or server_env(),
    )
    return IdpServer(proc=proc, port=port, cwd=cwd, log_path=log_path, _log=log)


# --------------------------------------------------------------------------- throwaway stores


class RedisServer:
    """A private redis-server on a random port (no persistence) that tests may kill,
    pause (SIGSTOP: a hung server) and restart on the same port."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.kill()


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def postgres_binaries_missing() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN}"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (PostgreSQL refuses to run as root)"
    return None


class PostgresServer:
    """A private PostgreSQL cluster (initdb in a temporary directory, trust auth, random
    port) that tests may stop, crash and restart. As root, it runs as the `postgres` user,
    in a directory that user owns."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="tessera-pg-", dir="/tmp"))
        self.data = self.directory / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        result = self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                           "--no-sync", "-E", "UTF8")
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stdout}{result.stderr}")
        self.start()

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        # fsync=off is safe here: a crash of the server process (not of the machine) keeps
        # what is in the OS cache. synchronous_commit stays on, or a crash loses commits.
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        result = self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                           "-l", str(self.directory / "log"), "-w", "-t", "30", "start")
        if result.returncode != 0:
            log = (self.directory / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n{log}")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: a clean shutdown that ends the sessions; `immediate`: a crash."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def process_ids(self) -> list[int]:
        """The postmaster and its children (backends and helpers), from /proc."""
        root = self.postmaster_pid()
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == root:
                    children.append(int(entry.name))
        return [root, *children]

    def pause(self) -> None:
        """Every process of the cluster stops answering (a hung server)."""
        for pid in self.process_ids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.process_ids():
            os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        try:
            self.resume()
        except (OSError, ValueError):
            pass
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
