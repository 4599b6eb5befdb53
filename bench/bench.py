"""Tessera's benchmark: every figure measured next to a limit of this machine or a peer.

`bench/run` (or `make bench`) runs it. The servers under test get core 0 (`taskset -c 0`),
the load generator core 1: wrk (keep-alive, one thread, 64 connections, `--latency`) for
single-request cases, `bench/loadgen.py` for the multi-step ones (login, refresh rotation).

Every server is started first (Tessera, node-oidc-provider with JWT and with opaque access
tokens, a bare aiohttp app; each idles on core 0 while another is measured). Then each
comparison is a group of cases measured *in turns*: a warm-up of each, then `--runs`
rounds, each round one run of every case of the group, one after the other (the order
rotated per round). A ratio is the median of the per-round ratios, so a machine whose
speed drifts (a shared VM) slows both sides of a ratio alike. The limits (JWT sign rate
through our JWT code, argon2id verify rate at the realm's default parameters, a bare
aiohttp endpoint) are cases of the groups they bound; the targets are stated against
the chosen stack's own floors (issue 17): a minimal aiohttp server doing a
client_credentials grant (bench/aiohttp_floor.py), the bare aiohttp endpoint, and the
login flow served by a minimal server (bench/floor_server.py). Tessera runs as `idp serve`
starts by default, access log on (to a file). Stores: PostgreSQL (its own
databases, `tessera_bench` and `tessera_bench_many`, dropped and recreated per start) and
Redis (DB 13 and 12, flushed per start).

Results: bench/results/latest.json and latest.md (copied into BENCHMARKS.md by hand).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
IDP = str(VENV_BIN / "idp")
SERVER_CORE, LOAD_CORE = "0", "1"
PG_ADMIN = os.environ.get("BENCH_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB, PG_DB_MANY = "tessera_bench", "tessera_bench_many"
REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_DB_MANY = "127.0.0.1", 6379, 13, 12
TESSERA_PORT, MANY_PORT, NODE_PORT, BARE_PORT, FLOOR_PORT, AIOHTTP_FLOOR_PORT = 4100, 4101, 4200, 4300, 4301, 4302
QUIET_PORT = 4102  # the same deployment, `--no-access-log` (4e: what the access log costs)
# node: 4200 and 4201
CLIENT_SECRET = "bench-" + "9f3c1e7a5b2d4f6081a3c5e7b9d1f3a5"  # high entropy, SHA-256 in the realm file
RESOURCE = "https://api.bench.example"
PASSWORD = "correct horse battery staple"
EMAIL = "user{n}@bench.example"  # one account per login loop (loadgen fills in n)
USERS = 64
REDIRECT_URI = "http://127.0.0.1:9/callback"

SETTLE = 1.0  # seconds between two wrk runs (Wrk.once)

DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"status_errors":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Settings:
    warmup: float
    seconds: float
    runs: int
    connections: int
    realms: int
    quick: bool
    profile: set[str] = field(default_factory=set)


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- wrk


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def post_script(bodies: list[str], authorization: str, delay_ms: int | None = None) -> str:
    """POST form bodies (cycled through when several) with one Authorization header."""
    lines = [
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"',
        f'wrk.headers["Authorization"] = {lua_string(authorization)}',
    ]
    if len(bodies) == 1:
        lines.append(f"wrk.body = {lua_string(bodies[0])}")
    else:
        lines.append("local bodies = {" + ",\n".join(lua_string(b) for b in bodies) + "}")
        lines.append("local i = 0")
        lines.append("request = function() i = i % #bodies + 1; return wrk.format(nil, nil, nil, bodies[i]) end")
    if delay_ms is not None:
        lines.append(f"delay = function() return {delay_ms} end")
    return "\n".join(lines) + "\n"


class Wrk:
    def __init__(self, workdir: Path, settings: Settings):
        self.workdir = workdir
        self.settings = settings
        self.count = 0

    def once(self, url: str, script: str, seconds: float, connections: int) -> dict[str, float]:
        # A wrk run started right after another one on this machine reports phantom
        # latencies for part of its requests (p99 in the hundreds of ms, and a mean latency
        # that 64 connections at the measured rate cannot have, by Little's law; the
        # minimal floor server shows it on every second back-to-back run, never after a
        # pause): the connections of the run before settle first.
        time.sleep(SETTLE)
        self.count += 1
        path = self.workdir / f"wrk-{self.count}.lua"
        path.write_text(script + DONE_LUA)
        command = [
            "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "--latency", "-s", str(path), url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
        for line in done.stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                data = json.loads(line[len("BENCH_JSON "):])
                return {
                    "rps": data["requests"] / (data["duration_us"] / 1e6),
                    "p50_ms": data["p50_us"] / 1000, "p90_ms": data["p90_us"] / 1000,
                    "p99_ms": data["p99_us"] / 1000, "max_ms": data["max_us"] / 1000,
                    "errors": data["status_errors"] + data["socket_errors"], "requests": data["requests"],
                }
        raise RuntimeError(f"wrk gave no result: {done.stdout}\n{done.stderr}")

    def measure(
        self, name: str, url: str, script: str = "", *, connections: int | None = None,
        profile_pid: int | None = None, key: str = "",
    ) -> dict[str, Any]:
        """Warm-up, then `runs` runs; with `--profile KEY`, py-spy records the first run."""
        settings = self.settings
        connections = connections or settings.connections
        self.once(url, script, settings.warmup, connections)
        runs = []
        for index in range(settings.runs):
            profiler = None
            if profile_pid is not None and key in settings.profile and index == 0:
                profiler = start_profiler(key, profile_pid, settings.seconds)
            runs.append(self.once(url, script, settings.seconds, connections))
            if profiler is not None:
                finish_profiler(profiler)
        result = aggregate(runs)
        log(f"{name}: {result['rps']:,.0f}/s (min {result['rps_min']:,.0f}), p50 {result['p50_ms']:.2f} ms,"
            f" p99 {result['p99_ms']:.2f} ms, errors {result['errors']}")
        return result


def aggregate(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "rps_min": min(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "runs": runs,
    }


# --------------------------------------------------------------------------- profiles


def start_profiler(name: str, pid: int, seconds: float) -> tuple[subprocess.Popen[bytes], Path]:
    py_spy = VENV_BIN / "py-spy"
    out = RESULTS / f"profile-{name}.txt"
    command = ["taskset", "-c", LOAD_CORE, str(py_spy), "record", "--native", "--format", "raw",
               "-d", str(max(1, int(seconds))), "-r", "200", "-o", str(out), "--pid", str(pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def finish_profiler(profiler: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, out = profiler
    process.wait(timeout=60)
    if out.exists():
        summary = summarise_profile(out)
        out.with_suffix(".summary.txt").write_text(summary)
        log(f"profile written to {out} (summary {out.with_suffix('.summary.txt').name})")


def summarise_profile(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        if "_queue_SimpleQueue_get" in stack or "select_poll_poll" in stack or "epoll_wait" in stack:
            continue  # idle threads and an idle event loop are not cost
        total += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f
                  for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"{total} samples", "", "self %  function"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / total:5.1f}  {frame}")
    lines += ["", "incl %  function"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top * 2]:
        lines.append(f"{100 * count / total:5.1f}  {frame}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- processes


class Server:
    """A server pinned to the server core; ready when `ready_url` answers 200."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, log_path: Path, port: int | None = None):
        if port is not None and port_in_use(port):
            raise RuntimeError(f"port {port} is already in use: stop whatever listens there first")
        self.name = name
        self.log_path = log_path
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *command], cwd=cwd, env={**os.environ, **(env or {})},
            stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, url: str, timeout: float = 120, method: str = "GET") -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}); log: {self.log_path}")
            try:
                request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; log: {self.log_path}")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def http_json(method: str, url: str, data: dict[str, str] | None = None,
              authorization: str | None = None) -> dict[str, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    if authorization:
        request.add_header("Authorization", authorization)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_json(command: list[str], timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- Tessera setup


def realm_yaml(name: str) -> str:
    secret_sha256 = hashlib.sha256(CLIENT_SECRET.encode()).hexdigest()
    services = "\n".join(
        f"  - {{client_id: svc-{alg.lower()}, type: confidential, secret_sha256: {secret_sha256},"
        f" grant_types: [client_credentials], scopes: [api.read], audience: [\"{RESOURCE}\"],"
        f" access_token_alg: {alg}}}"
        for alg in ("RS256", "ES256", "EdDSA")
    )
    return f"""# generated by bench/bench.py
name: {name}
display_name: Benchmark realm {name}
signing: {{algs: [RS256, ES256, EdDSA], default_alg: RS256}}
scopes:
  api.read: {{description: Read the benchmark API}}
providers:
  - {{id: password, type: password}}
# One load generator on one address: the per-IP limits are raised so that they are
# counted on every request (the Redis round trip is part of the figure) but never trip.
rate_limits:
  authorize_per_ip: {{requests: 100000000}}
  token_per_ip: {{requests: 100000000}}
  login_per_ip: {{requests: 100000000}}
  login_per_account: {{requests: 100000000}}
  introspect_per_client: {{requests: 100000000}}  # 60,000/min by default: introspection passes it
clients:
{services}
  - client_id: webapp
    type: confidential
    secret_sha256: {secret_sha256}
    redirect_uris: ["{REDIRECT_URI}"]
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, offline_access, api.read]
    consent: implicit
"""


def reset_stores(database: str = PG_DB, redis_db: int = REDIS_DB) -> None:
    import asyncpg
    import redis

    async def recreate() -> None:
        connection = await asyncpg.connect(PG_ADMIN)
        try:
            await connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            await connection.execute(f"CREATE DATABASE {database}")
        finally:
            await connection.close()

    asyncio.run(recreate())
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    client.flushdb()
    client.close()


def pg_dsn(database: str = PG_DB) -> str:
    parts = urllib.parse.urlsplit(PG_ADMIN)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + database, "", ""))


def write_deployment(directory: Path, realm_names: list[str], port: int, *, database: str = PG_DB,
                     redis_db: int = REDIS_DB) -> Path:
    realms = directory / "realms"
    realms.mkdir(parents=True, exist_ok=True)
    for name in realm_names:
        (realms / f"{name}.yaml").write_text(realm_yaml(name))
    config = directory / "idp.yaml"
    config.write_text(
        f"base_url: http://127.0.0.1:{port}\n"
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"storage: {{durable: \"{pg_dsn(database)}\", ephemeral: \"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}\"}}\n"
        "realms: realms/\nroot_realm: null\nkeys: {data_dir: var}\n"
    )
    return config


def tessera_env() -> dict[str, str]:
    return {"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")}


def start_tessera(directory: Path, env: dict[str, str], port: int, name: str = "tessera",
                  *extra: str) -> tuple[Server, float]:
    # As `idp serve` starts by default (issue 17): with the access log, one line per
    # request, written to a file (the server's stdout and stderr), not to a pipe nobody reads.
    command = [IDP, "serve", "-c", str(directory / "idp.yaml"), *(("--port", str(port)) if extra else ()), *extra]
    server = Server(name, command, env=env, cwd=directory,
                    log_path=directory / f"{name}.log", port=port)
    ready = server.wait_ready(f"http://127.0.0.1:{port}/readyz")
    return server, ready


# --------------------------------------------------------------------------- cases
#
# This machine's speed drifts by a factor of two or more within minutes (a shared VM).
# So nothing is compared across time: every comparison is a group of cases measured in
# turns, run i of every case of the group one after the other (the order rotated per
# run), and each ratio is the median over runs of the ratio within run i.


class Case:
    """One measurable thing; `once(seconds)` -> {"rps", "p50_ms", "p99_ms", "errors", ...}."""

    name = ""

    def warm(self, seconds: float) -> None:
        self.once(seconds)

    def once(self, seconds: float) -> dict[str, Any]:
        raise NotImplementedError


class WrkCase(Case):
    def __init__(self, name: str, wrk: Wrk, url: str, script: str = "", connections: int | None = None,
                 profile: tuple[str, int] | None = None):
        self.name, self.wrk, self.url, self.script = name, wrk, url, script
        self.connections = connections or wrk.settings.connections
        self.profile = profile  # (key, pid): py-spy records the first measured run

    def once(self, seconds: float) -> dict[str, Any]:
        profiler = None
        if self.profile is not None and self.profile[0] in self.wrk.settings.profile:
            profiler = start_profiler(self.profile[0], self.profile[1], seconds)
            self.profile = None
        try:
            return self.wrk.once(self.url, self.script, seconds, self.connections)
        finally:
            if profiler is not None:
                finish_profiler(profiler)


class LimitCase(Case):
    """A limit of the machine, measured on the server core by bench/limits.py."""

    def __init__(self, name: str, *what: str):
        self.name, self.what = name, what

    def warm(self, seconds: float) -> None:
        pass

    def once(self, seconds: float) -> dict[str, Any]:
        result = run_json(["taskset", "-c", SERVER_CORE, PYTHON, str(BENCH / "limits.py"), *self.what,
                           "--seconds", str(seconds), "--runs", "1"])
        return {"rps": result["rate"], "p50_ms": 0.0, "p99_ms": 0.0, "errors": 0}


class LoginCase(Case):
    """Password login flows (authorize → login page → login POST → code → token), 8 in flight,
    against Tessera or (`base`) the floor server's flow."""

    def __init__(self, settings: Settings, pid: int | None, base: str | None = None,
                 name: str = "tessera login flows"):
        self.settings, self.pid, self.profiled, self.base, self.name = settings, pid, False, base, name

    def once(self, seconds: float) -> dict[str, Any]:
        profiler = None
        if "login" in self.settings.profile and self.pid is not None and not self.profiled:
            profiler, self.profiled = start_profiler("login", self.pid, seconds), True
        try:
            r = loadgen("login", "--duration", str(seconds), "--concurrency", "8",
                        *(("--base", self.base) if self.base else ()))
        finally:
            if profiler is not None:
                finish_profiler(profiler)
        return {"rps": r["rate"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "errors": r["errors"],
                "first_errors": r["first_errors"]}


def in_turns(cases: dict[str, Case], settings: Settings, seconds: float | None = None) -> dict[str, dict[str, Any]]:
    """Warm every case up, then `runs` rounds of one run of each (order rotated per round)."""
    seconds = seconds or settings.seconds
    keys = list(cases)
    for key in keys:
        cases[key].warm(settings.warmup)
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for index in range(settings.runs):
        for key in keys[index % len(keys):] + keys[:index % len(keys)]:
            runs[key].append(cases[key].once(seconds))
    out = {}
    for key in keys:
        out[key] = aggregate(runs[key])
        r = out[key]
        log(f"{cases[key].name}: {r['rps']:,.1f}/s (min {r['rps_min']:,.1f}), p50 {r['p50_ms']:.2f} ms,"
            f" p99 {r['p99_ms']:.2f} ms, errors {r['errors']}")
    return out


def paired(a: dict[str, Any] | None, b: dict[str, Any] | None, field: str = "rps") -> dict[str, Any] | None:
    """b / a within each round, and the median of those (None if either was not measured)."""
    if not a or not b:
        return None
    ratios = [rb[field] / ra[field] for ra, rb in zip(a["runs"], b["runs"], strict=True) if ra[field]]
    return {"ratio": statistics.median(ratios), "runs": ratios} if ratios else None


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install_node() -> None:
    if not (BENCH / "node" / "node_modules" / "oidc-provider").exists():
        log("installing oidc-provider into bench/node (npm)")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH / "node",
                       check=True, stdout=subprocess.DEVNULL)


def start_node(workdir: Path, port: int, token_format: str) -> Server:
    env = {"PORT": str(port), "CLIENT_SECRET": CLIENT_SECRET, "RESOURCE": RESOURCE, "NODE_ENV": "production",
           "ACCESS_TOKEN_FORMAT": token_format}
    server = Server(f"node-{token_format}", ["node", str(BENCH / "node" / "server.mjs")], env=env,
                    log_path=workdir / f"node-{token_format}.log", port=port)
    server.wait_ready(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
    return server


def add_users(directory: Path, env: dict[str, str]) -> None:
    """USERS verified accounts: logins come from many users, not 8 loops on one account
    (which the account lockout would rightly slow down as a burst of parallel attempts)."""
    emails = [EMAIL.format(n=n) for n in range(USERS)]
    done = subprocess.run(
        [PYTHON, str(BENCH / "users.py"), str(directory / "idp.yaml"), "bench", PASSWORD, *emails],
        capture_output=True, text=True, cwd=directory, env={**os.environ, **env}, timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"creating the benchmark users failed: {done.stderr[-2000:]}")


def loadgen(mode: str, *extra: str, timeout: float = 900) -> dict[str, Any]:
    return run_json(["taskset", "-c", LOAD_CORE, PYTHON, str(BENCH / "loadgen.py"), mode,
                     "--base", f"http://127.0.0.1:{TESSERA_PORT}", "--secret", CLIENT_SECRET,
                     "--email", EMAIL, "--password", PASSWORD, "--redirect-uri", REDIRECT_URI, *extra],
                    timeout=timeout)


def paced_cc_script(auth: str) -> str:
    # 4 connections, 5 ms apart: ~800 requests/s, well under capacity, so p99 is the
    # service time (plus whatever the hasher makes it wait), not wrk's queueing.
    return post_script(["grant_type=client_credentials"], auth, delay_ms=5)


def measure_all(settings: Settings, wrk: Wrk, workdir: Path, only: set[str]) -> dict[str, Any]:
    """Every server up at once (each idle on the server core while another is measured),
    then the comparison groups in turns."""
    results: dict[str, Any] = {"limits": {}, "node": {}, "tessera": {}, "paired": {}}
    servers: list[Server] = []
    try:
        cases: dict[str, Case] = {}
        bare_url = f"http://127.0.0.1:{BARE_PORT}/"
        if "bare" in only:
            servers.append(Server("bare", [PYTHON, str(BENCH / "bare_server.py"), str(BARE_PORT)],
                                  log_path=workdir / "bare.log", port=BARE_PORT))
            servers[-1].wait_ready(bare_url)
        floor_url = f"http://127.0.0.1:{FLOOR_PORT}"
        if "limits" in only:  # the floor under 1a and 6a (bench/floor_server.py)
            servers.append(Server("floor", [PYTHON, str(BENCH / "floor_server.py"), str(FLOOR_PORT)],
                                  log_path=workdir / "floor.log", port=FLOOR_PORT))
            servers[-1].wait_ready(floor_url + "/token", method="POST")
        aiohttp_floor_url = f"http://127.0.0.1:{AIOHTTP_FLOOR_PORT}"
        if "floor" in only:  # the floor of the chosen stack under 1a (bench/aiohttp_floor.py, issue 17)
            servers.append(Server("aiohttp-floor", [PYTHON, str(BENCH / "aiohttp_floor.py"), str(AIOHTTP_FLOOR_PORT),
                                                    CLIENT_SECRET],
                                  log_path=workdir / "aiohttp-floor.log", port=AIOHTTP_FLOOR_PORT))
            servers[-1].wait_ready(aiohttp_floor_url + "/")
        node = "node" in only and node_available()
        if "node" in only and not node:
            log("node/npm not found: node-oidc-provider cases skipped")
        node_base, opaque_base = f"http://127.0.0.1:{NODE_PORT}", f"http://127.0.0.1:{NODE_PORT + 1}"
        node_auth = basic("svc", CLIENT_SECRET)
        if node:
            install_node()
            servers.append(start_node(workdir, NODE_PORT, "jwt"))
            time.sleep(1.0)
            results["node"]["idle_rss_mb"] = servers[-1].rss_mb()
            results["node"]["version"] = json.loads(
                (BENCH / "node/node_modules/oidc-provider/package.json").read_text())["version"]
            # oidc-provider refuses to introspect structured (JWT) access tokens
            # ("unsupported_token_type"): its introspection case uses its opaque tokens.
            servers.append(start_node(workdir, NODE_PORT + 1, "opaque"))
        tessera = "tessera" in only
        issuer = f"http://127.0.0.1:{TESSERA_PORT}/realms/bench"
        if tessera:
            directory = workdir / "one-realm"
            write_deployment(directory, ["bench"], TESSERA_PORT)
            env = tessera_env()
            reset_stores()
            add_users(directory, env)
            server, ready = start_tessera(directory, env, TESSERA_PORT)
            servers.append(server)
            time.sleep(1.0)
            results["tessera"].update(ready_s=ready, idle_rss_mb=server.rss_mb())
            log(f"one realm: ready in {ready:.2f} s, idle RSS {results['tessera']['idle_rss_mb']:.1f} MB")
            pid = server.pid
            quiet, _ = start_tessera(directory, env, QUIET_PORT, "tessera-no-access-log", "--no-access-log")
            servers.append(quiet)

        # Group 1: client_credentials, next to the RS256 sign ceiling and the peer.
        cc = "grant_type=client_credentials"
        if "limits" in only:
            cases["sign_RS256"] = LimitCase("limit: RS256 sign through engine.tokens.jwt.sign", "sign", "RS256")
            cases["floor_cc"] = WrkCase("floor: minimal server, one RS256 sign per POST", wrk, f"{floor_url}/token",
                                        post_script([cc], basic("svc-rs256", CLIENT_SECRET)))
        if "floor" in only:
            token = http_json("POST", f"{aiohttp_floor_url}/token", {"grant_type": "client_credentials"},
                              basic("svc-rs256", CLIENT_SECRET))
            assert token["access_token"].count(".") == 2, token
            cases["aiohttp_floor_cc"] = WrkCase("floor: minimal aiohttp server, Basic auth + one RS256 sign", wrk,
                                                f"{aiohttp_floor_url}/token",
                                                post_script([cc], basic("svc-rs256", CLIENT_SECRET)))
        if node:
            token = http_json("POST", f"{node_base}/token", {"grant_type": cc.split("=")[1], "scope": "api.read"},
                              node_auth)
            assert token["access_token"].count(".") == 2, token
            cases["node_cc_rs256"] = WrkCase("node cc RS256", wrk, f"{node_base}/token",
                                             post_script([cc + "&scope=api.read"], node_auth))
        if tessera:
            for alg in ("RS256", "ES256", "EdDSA"):
                auth = basic(f"svc-{alg.lower()}", CLIENT_SECRET)
                token = http_json("POST", f"{issuer}/token", {"grant_type": "client_credentials"}, auth)
                header = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[0] + "=="))
                assert header["alg"] == alg, header
                cases[f"cc_{alg}"] = WrkCase(f"tessera cc {alg}", wrk, f"{issuer}/token", post_script([cc], auth),
                                             profile=(f"cc_{alg}", pid))
        group = in_turns(cases, settings)
        results["limits"]["sign_RS256"] = group.get("sign_RS256", {}).get("rps")
        results["floor"] = {"cc": group.get("floor_cc"), "aiohttp_cc": group.get("aiohttp_floor_cc")}
        results["node"]["cc_rs256"] = group.get("node_cc_rs256")
        for alg in ("RS256", "ES256", "EdDSA"):
            results["tessera"][f"cc_{alg}"] = group.get(f"cc_{alg}")
        results["paired"].update({
            "1a": paired(group.get("aiohttp_floor_cc"), group.get("cc_RS256")),
            "1a_ceiling": paired(group.get("sign_RS256"), group.get("cc_RS256")),
            "1a_aiohttp_floor": paired(group.get("sign_RS256"), group.get("aiohttp_floor_cc")),
            "1b": paired(group.get("node_cc_rs256"), group.get("cc_RS256")),
            "2a": paired(group.get("cc_RS256"), group.get("cc_ES256")),
            "2b": paired(group.get("cc_RS256"), group.get("cc_EdDSA")),
            "1a_floor": paired(group.get("sign_RS256"), group.get("floor_cc")),
            "1a_of_floor": paired(group.get("floor_cc"), group.get("cc_RS256")),
        })

        # Group 2: introspection.
        cases = {}
        if node:
            tokens = [http_json("POST", f"{opaque_base}/token", {"grant_type": "client_credentials",
                                                                  "scope": "api.read"}, node_auth)["access_token"]
                      for _ in range(200)]
            check = http_json("POST", f"{opaque_base}/token/introspection", {"token": tokens[0]}, node_auth)
            assert check.get("active") is True, check
            cases["node_introspect"] = WrkCase("node introspect (opaque)", wrk, f"{opaque_base}/token/introspection",
                                               post_script(["token=" + urllib.parse.quote(t) for t in tokens],
                                                           node_auth))
        if tessera:
            auth = basic("svc-rs256", CLIENT_SECRET)
            tokens = [http_json("POST", f"{issuer}/token", {"grant_type": "client_credentials"}, auth)["access_token"]
                      for _ in range(200)]
            check = http_json("POST", f"{issuer}/introspect", {"token": tokens[0]}, auth)
            assert check.get("active") is True, check
            cases["introspect"] = WrkCase("tessera introspect (JWT)", wrk, f"{issuer}/introspect",
                                          post_script(["token=" + t for t in tokens], auth),
                                          profile=("introspect", pid))
        group = in_turns(cases, settings) if cases else {}
        results["node"]["introspect"] = group.get("node_introspect")
        results["tessera"]["introspect"] = group.get("introspect")
        results["paired"]["3"] = paired(group.get("node_introspect"), group.get("introspect"))

        # Group 3: the documents verifiers fetch, and the web stack's floor.
        cases = {}
        if "bare" in only:
            cases["bare_get"] = WrkCase("limit: bare aiohttp JSON GET", wrk, bare_url)
        if node:
            cases["node_discovery"] = WrkCase("node discovery", wrk, f"{node_base}/.well-known/openid-configuration")
            cases["node_jwks"] = WrkCase("node jwks", wrk, f"{node_base}/jwks")
        if tessera:
            cases["discovery"] = WrkCase("tessera discovery", wrk, f"{issuer}/.well-known/openid-configuration",
                                         profile=("discovery", pid))
            cases["jwks"] = WrkCase("tessera jwks", wrk, f"{issuer}/.well-known/jwks.json", profile=("jwks", pid))
            cases["discovery_quiet"] = WrkCase("tessera discovery, --no-access-log", wrk,
                                               f"http://127.0.0.1:{QUIET_PORT}/realms/bench/.well-known/openid-configuration")
        group = in_turns(cases, settings) if cases else {}
        results["bare"] = {"get": group.get("bare_get")}
        for key in ("discovery", "jwks"):
            results["node"][key] = group.get(f"node_{key}")
            results["tessera"][key] = group.get(key)
        results["paired"]["4a"] = paired(group.get("node_discovery"), group.get("discovery"))
        results["paired"]["4b"] = paired(group.get("node_jwks"), group.get("jwks"))
        results["paired"]["4c"] = paired(group.get("bare_get"), group.get("discovery"))
        results["paired"]["4d"] = paired(group.get("bare_get"), group.get("jwks"))
        results["tessera"]["discovery_quiet"] = group.get("discovery_quiet")
        results["paired"]["4e"] = paired(group.get("discovery_quiet"), group.get("discovery"))

        if tessera:
            # Group 4: password logins next to the raw argon2id verify rate.
            cases = {"login": LoginCase(settings, pid)}
            if "limits" in only:
                cases["argon2"] = LimitCase("limit: argon2id verify (m=19456, t=2, p=1), one core", "argon2")
                cases["floor_login"] = WrkCase(
                    "floor: minimal server, one argon2id verify + two RS256 signs per POST", wrk, f"{floor_url}/login",
                    post_script(["password=x"], basic("webapp", CLIENT_SECRET)), connections=8)
                cases["floor_flow"] = LoginCase(settings, None, base=floor_url,
                                                name="floor: minimal server, the login flow's four requests")
            group = in_turns(cases, settings)
            results["tessera"]["login"] = group["login"]
            results["limits"]["argon2_verify"] = group.get("argon2", {}).get("rps")
            results["paired"]["6a"] = paired(group.get("floor_flow"), group["login"])
            results["paired"]["6a_argon2"] = paired(group.get("argon2"), group["login"])
            results.setdefault("floor", {})["login"] = group.get("floor_login")
            results["paired"]["6a_floor"] = paired(group.get("argon2"), group.get("floor_login"))
            results["floor"]["flow"] = group.get("floor_flow")
            results["paired"]["6a_flow_floor"] = paired(group.get("argon2"), group.get("floor_flow"))
            results["tessera"].update(cc_under_login(settings, wrk, issuer, pid))
            results["paired"]["6b"] = paired(results["tessera"]["cc_paced_unloaded"],
                                             results["tessera"]["cc_paced_under_login"], "p99_ms")
            results["tessera"].update(refresh_case(settings, pid))
            results["tessera"]["rss_after_load_mb"] = server.rss_mb()
        if "many" in only:
            results["many"] = many_realms(settings, wrk, workdir, issuer if tessera else None, results["paired"])
    finally:
        for server in reversed(servers):
            server.stop()
    if "limits" in only:
        for alg in ("ES256", "EdDSA"):  # for the record: what the fast algorithms cost
            rate = LimitCase("", "sign", alg).once(2.0)["rps"]
            results["limits"][f"sign_{alg}"] = rate
            log(f"limit: {alg} sign through engine.tokens.jwt.sign: {rate:,.0f}/s")
    return results


def cc_under_login(settings: Settings, wrk: Wrk, issuer: str, pid: int) -> dict[str, Any]:
    """client_credentials p99 at a paced load, alone and while 8 login loops keep the
    hasher busy, in turns."""
    auth = basic("svc-rs256", CLIENT_SECRET)
    url, script = f"{issuer}/token", paced_cc_script(auth)
    wrk.once(url, script, settings.warmup, 4)
    unloaded, loaded, logins = [], [], []
    for _ in range(settings.runs):
        unloaded.append(wrk.once(url, script, settings.seconds, 4))
        background = subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, PYTHON, str(BENCH / "loadgen.py"), "login",
             "--base", f"http://127.0.0.1:{TESSERA_PORT}", "--secret", CLIENT_SECRET, "--email", EMAIL,
             "--password", PASSWORD, "--redirect-uri", REDIRECT_URI,
             "--duration", str(settings.seconds + 1.5), "--concurrency", "8"],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        time.sleep(1.0)  # logins under way before the measurement starts
        profiler = None
        if "cc_under_login" in settings.profile and not loaded:
            profiler = start_profiler("cc_under_login", pid, settings.seconds)
        loaded.append(wrk.once(url, script, settings.seconds, 4))
        if profiler is not None:
            finish_profiler(profiler)
        stdout, _ = background.communicate(timeout=120)
        logins.append(json.loads(stdout.strip().splitlines()[-1]))
    out = {"cc_paced_unloaded": aggregate(unloaded), "cc_paced_under_login": aggregate(loaded),
           "login_during_cc": statistics.median(r["rate"] for r in logins)}
    log(f"cc RS256 paced p99: unloaded {out['cc_paced_unloaded']['p99_ms']:.2f} ms,"
        f" under login load {out['cc_paced_under_login']['p99_ms']:.2f} ms"
        f" (logins meanwhile {out['login_during_cc']:.1f}/s)")
    return out


def many_realms(settings: Settings, wrk: Wrk, workdir: Path, one_realm_issuer: str | None,
                paired_out: dict[str, Any]) -> dict[str, Any]:
    """`settings.realms` realm files, a server of its own (its own database and Redis DB),
    and the last realm measured in turns with the one-realm deployment."""
    count = settings.realms
    directory = workdir / "many-realms"
    names = [f"r{index:05d}" for index in range(count)]
    started = time.perf_counter()
    write_deployment(directory, names, MANY_PORT, database=PG_DB_MANY, redis_db=REDIS_DB_MANY)
    log(f"{count} realm files written in {time.perf_counter() - started:.1f} s")
    env = tessera_env()
    reset_stores(PG_DB_MANY, REDIS_DB_MANY)
    server, ready = start_tessera(directory, env, MANY_PORT, name="tessera-many")
    out: dict[str, Any] = {"realms": count, "ready_s": ready, "target_realm": names[-1]}
    try:
        time.sleep(1.0)
        out["rss_ready_mb"] = server.rss_mb()
        log(f"{count} realms: ready in {ready:.2f} s, RSS {out['rss_ready_mb']:.1f} MB")
        issuer = f"http://127.0.0.1:{MANY_PORT}/realms/{names[-1]}"
        auth = basic("svc-rs256", CLIENT_SECRET)
        http_json("POST", f"{issuer}/token", {"grant_type": "client_credentials"}, auth)  # keys made on first use
        cc = post_script(["grant_type=client_credentials"], auth)
        cases: dict[str, Case] = {
            "discovery": WrkCase(f"{count} realms: discovery of {names[-1]}", wrk,
                                 f"{issuer}/.well-known/openid-configuration"),
            "cc_RS256": WrkCase(f"{count} realms: cc RS256 of {names[-1]}", wrk, f"{issuer}/token", cc,
                                profile=("many_cc_RS256", server.pid)),
        }
        if one_realm_issuer is not None:
            cases["one_discovery"] = WrkCase("one realm: discovery", wrk,
                                             f"{one_realm_issuer}/.well-known/openid-configuration")
            cases["one_cc_RS256"] = WrkCase("one realm: cc RS256", wrk, f"{one_realm_issuer}/token", cc)
        group = in_turns(cases, settings)
        out.update(group)
        paired_out["7c"] = paired(group.get("one_discovery"), group["discovery"], "p50_ms")
        paired_out["7d"] = paired(group.get("one_cc_RS256"), group["cc_RS256"], "p50_ms")
        out["rss_after_load_mb"] = server.rss_mb()
    finally:
        server.stop()
        shutil.rmtree(directory / "realms", ignore_errors=True)
    return out


def refresh_case(settings: Settings, pid: int) -> dict[str, Any]:
    tokens = Path(tempfile.mkdtemp(prefix="tessera-bench-rt-")) / "families.json"
    loadgen("families", "--count", "64", "--concurrency", "4", "--out", str(tokens))
    loadgen("refresh", "--tokens", str(tokens), "--duration", str(settings.warmup))
    runs = []
    # A rotation signs two RS256 JWTs (ID token and access token): the sign ceiling, measured
    # next to each run (the machine's speed drifts), halved is what 5a cannot exceed here.
    sign = LimitCase("limit: RS256 sign", "sign", "RS256")
    ceilings = []
    for index in range(settings.runs):
        ceilings.append(sign.once(settings.seconds)["rps"] / 2)
        profiler = None
        if "refresh" in settings.profile and index == 0:
            profiler = start_profiler("refresh", pid, settings.seconds)
        runs.append(loadgen("refresh", "--tokens", str(tokens), "--duration", str(settings.seconds)))
        if profiler is not None:
            finish_profiler(profiler)
    result: dict[str, Any] = {
        "two_signs_ceiling": statistics.median(ceilings),
        "of_ceiling": statistics.median(r["rate"] / c for r, c in zip(runs, ceilings, strict=True) if c),
        "rate": statistics.median(r["rate"] for r in runs), "rate_min": min(r["rate"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs), "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs), "first_errors": [e for r in runs for e in r["first_errors"]][:3],
    }
    result.update(verify_families(json.loads(tokens.read_text())))
    log(f"refresh rotation: {result['rate']:,.0f}/s (min {result['rate_min']:,.0f}; two RS256 signs allow"
        f" {result['two_signs_ceiling']:,.0f}/s), errors {result['errors']}, families ok"
        f" {result['families_ok']}/{result['families']}, lost {result['lost']}, forked {result['forked']}")
    shutil.rmtree(tokens.parent, ignore_errors=True)
    return {"refresh": result}


def verify_families(state: list[dict[str, Any]]) -> dict[str, Any]:
    """From the database: every family has exactly one live token (the one its client
    holds), its chain is linear (each token replaced at most once, by a token of the same
    family, every token but the first is some token's successor), and it holds exactly
    1 + the rotations its client saw succeed (none lost, none extra)."""
    import asyncpg

    async def check() -> dict[str, Any]:
        connection = await asyncpg.connect(pg_dsn())
        try:
            problems: list[str] = []
            lost = forked = ok = 0
            for family in state:
                held = hashlib.sha256(family["token"].encode()).hexdigest()
                row = await connection.fetchrow(
                    "SELECT family_id FROM refresh_tokens WHERE realm = 'bench' AND token_hash = $1", held)
                if row is None:
                    problems.append("a held token is not in the database")
                    lost += 1
                    continue
                family_id = row["family_id"]
                fam = await connection.fetchrow(
                    "SELECT revoked_at FROM refresh_families WHERE realm = 'bench' AND id = $1", family_id)
                rows = await connection.fetch(
                    "SELECT token_hash, replaced_by FROM refresh_tokens WHERE realm = 'bench' AND family_id = $1",
                    family_id)
                hashes = {r["token_hash"] for r in rows}
                live = [r["token_hash"] for r in rows if r["replaced_by"] is None]
                successors = [r["replaced_by"] for r in rows if r["replaced_by"] is not None]
                linear = (
                    len(successors) == len(set(successors))  # nobody is the successor twice
                    and set(successors) <= hashes  # successors are tokens of this family
                    and len(hashes - set(successors)) == 1  # exactly one first token
                )
                if fam is None or fam["revoked_at"] is not None:
                    problems.append(f"family {family_id} revoked")
                if len(live) != 1 or live[0] != held or not linear:
                    forked += 1
                    problems.append(f"family {family_id}: live {len(live)}, linear {linear}")
                    continue
                if len(rows) != family["rotations"] + 1:
                    lost += 1
                    problems.append(f"family {family_id}: {len(rows)} tokens for {family['rotations']} rotations")
                    continue
                ok += 1
            return {"families": len(state), "families_ok": ok, "lost": lost, "forked": forked,
                    "rotations_checked": sum(f["rotations"] for f in state), "problems": problems[:5]}
        finally:
            await connection.close()

    return asyncio.run(check())


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]

    def version(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "n/a"

    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "node": version(["node", "--version"]), "wrk": version(["wrk", "-v"]) or "wrk",
        "postgres": version(["psql", "--version"]), "redis": version(["redis-server", "--version"]),
        "loop": "uvloop" if _has_uvloop() else "asyncio",
    }


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


Check = tuple[str, str, str, float | None, str, Callable[[float], bool]]


def targets(r: dict[str, Any]) -> list[Check]:
    """(id, what, measured, ratio, goal, passes) for every target, as issue 17 restates them
    (against the chosen stack's own floor; the raw sign and argon2id limits are reported
    under the table as information)."""
    t, node, many = r.get("tessera", {}), r.get("node", {}), r.get("many", {})
    floor, bare = r.get("floor") or {}, (r.get("bare") or {}).get("get")

    def rps(d: dict[str, Any], key: str) -> float | None:
        return (d.get(key) or {}).get("rps")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def vs(a: float | None, b: float | None) -> str:
        return f"{a or 0:,.0f}/s vs {b or 0:,.0f}/s"

    cc_rs = rps(t, "cc_RS256")
    rows: list[Check] = [
        ("1a", "client_credentials RS256 vs minimal aiohttp server (Basic auth, one RS256 sign)",
         vs(cc_rs, rps(floor, "aiohttp_cc")), ratio(cc_rs, rps(floor, "aiohttp_cc")), ">= 0.90", lambda x: x >= 0.9),
        ("1b", "client_credentials RS256 vs node-oidc-provider", vs(cc_rs, rps(node, "cc_rs256")),
         ratio(cc_rs, rps(node, "cc_rs256")), ">= 1.3x", lambda x: x >= 1.3),
    ]
    for alg in ("ES256", "EdDSA"):
        rows.append((f"2{'a' if alg == 'ES256' else 'b'}", f"client_credentials {alg} vs RS256",
                     vs(rps(t, f"cc_{alg}"), cc_rs),
                     ratio(rps(t, f"cc_{alg}"), cc_rs), ">= 2.5x", lambda x: x >= 2.5))
    rows += [
        ("3", "/introspect (JWT) vs node-oidc-provider introspection",
         vs(rps(t, "introspect"), rps(node, "introspect")),
         ratio(rps(t, "introspect"), rps(node, "introspect")), ">= 1.3x", lambda x: x >= 1.3),
        ("4a", "discovery vs node-oidc-provider", vs(rps(t, "discovery"), rps(node, "discovery")),
         ratio(rps(t, "discovery"), rps(node, "discovery")), ">= 1.3x", lambda x: x >= 1.3),
        ("4b", "JWKS vs node-oidc-provider", vs(rps(t, "jwks"), rps(node, "jwks")),
         ratio(rps(t, "jwks"), rps(node, "jwks")), ">= 1.3x", lambda x: x >= 1.3),
        ("4c", "discovery vs bare aiohttp JSON endpoint", vs(rps(t, "discovery"), (bare or {}).get("rps")),
         ratio(rps(t, "discovery"), (bare or {}).get("rps")), ">= 0.70", lambda x: x >= 0.7),
        ("4d", "JWKS vs bare aiohttp JSON endpoint", vs(rps(t, "jwks"), (bare or {}).get("rps")),
         ratio(rps(t, "jwks"), (bare or {}).get("rps")), ">= 0.70", lambda x: x >= 0.7),
        ("4e", "discovery with the access log (default) vs `--no-access-log`",
         vs(rps(t, "discovery"), rps(t, "discovery_quiet")),
         ratio(rps(t, "discovery"), rps(t, "discovery_quiet")), ">= 0.90", lambda x: x >= 0.9),
    ]
    refresh = t.get("refresh", {})
    rows += [
        ("5a", "refresh_token rotation, 64 concurrent families, one core",
         f"{refresh.get('rate', 0):,.0f}/s" + (
             f" (two RS256 signatures per rotation: {refresh['two_signs_ceiling']:,.0f}/s with nothing else,"
             f" measured next to it; {refresh['of_ceiling']:.2f} of that)"
             if refresh.get("two_signs_ceiling") else ""),
         refresh.get("rate", 0) / 600 if refresh else None, ">= 600/s", lambda x: x >= 1),
        ("5b", "lost or forked rotations (checked in PostgreSQL)",
         f"{refresh.get('lost', '?')} lost, {refresh.get('forked', '?')} forked of"
         f" {refresh.get('rotations_checked', 0):,} rotations; {refresh.get('errors', '?')} errors",
         float(refresh.get("lost", 1) + refresh.get("forked", 1) + refresh.get("errors", 1)) if refresh else None,
         "= 0", lambda x: x == 0),
    ]
    login = t.get("login", {})
    unloaded, loaded = t.get("cc_paced_unloaded", {}), t.get("cc_paced_under_login", {})
    rows += [
        ("6a", "password login flows vs the login-flow floor (minimal server, same four requests)",
         f"{login.get('rps', 0):.1f}/s vs {rps(floor, 'flow') or 0:.1f}/s",
         ratio(login.get("rps"), rps(floor, "flow")), ">= 0.85", lambda x: x >= 0.85),
        ("6b", "client_credentials p99 under login load vs unloaded",
         f"{loaded.get('p99_ms', 0):.2f} ms vs {unloaded.get('p99_ms', 0):.2f} ms",
         ratio(loaded.get("p99_ms"), unloaded.get("p99_ms")), "<= 3x", lambda x: x <= 3),
    ]
    n = many.get("realms", 0)
    rows += [
        ("7a", f"{n:,} realms: `idp serve` ready", f"{many.get('ready_s', 0):.2f} s",
         many.get("ready_s", 0) / 10 if many else None, "<= 10 s", lambda x: x <= 1),
        ("7b", f"{n:,} realms: RSS (ready / after load)",
         f"{many.get('rss_ready_mb', 0):.0f} / {many.get('rss_after_load_mb', 0):.0f} MB",
         max(many.get("rss_ready_mb", 0), many.get("rss_after_load_mb", 0)) / 400 if many else None,
         "<= 400 MB", lambda x: x <= 1),
        ("7c", f"{n:,} realms: discovery p50 of the last realm vs one realm",
         f"{many.get('discovery', {}).get('p50_ms', 0):.2f} ms vs"
         f" {many.get('one_discovery', t.get('discovery', {})).get('p50_ms', 0):.2f} ms",
         ratio(many.get("discovery", {}).get("p50_ms"), t.get("discovery", {}).get("p50_ms")), "<= 1.10",
         lambda x: x <= 1.10),
        ("7d", f"{n:,} realms: /token (cc RS256) p50 of the last realm vs one realm",
         f"{many.get('cc_RS256', {}).get('p50_ms', 0):.2f} ms vs"
         f" {many.get('one_cc_RS256', t.get('cc_RS256', {})).get('p50_ms', 0):.2f} ms",
         ratio(many.get("cc_RS256", {}).get("p50_ms"), t.get("cc_RS256", {}).get("p50_ms")), "<= 1.10",
         lambda x: x <= 1.10),
        ("8", "idle RSS, one worker, one realm", f"{t.get('idle_rss_mb', 0):.0f} MB",
         t.get("idle_rss_mb", 0) / 120 if t else None, "<= 120 MB", lambda x: x <= 1),
    ]
    # Where both sides were measured in turns, the ratio is the median of the per-round
    # ratios (the machine's speed drifts; a round's cases see the same machine).
    in_turns_ = r.get("paired", {})
    return [(ident, what, measured, (in_turns_.get(ident) or {}).get("ratio", value), goal, passes)
            for ident, what, measured, value, goal, passes in rows]


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    lines = [
        f"Run {results['started']} ({'quick smoke mode: not a measurement' if s['quick'] else 'full'}):"
        f" {s['runs']} run(s) of {s['seconds']} s after a {s['warmup']} s warm-up per case,"
        f" wrk -t1 -c{s['connections']} --latency.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Linux {m['kernel']}; Python {m['python']}"
        f" ({m['loop']}); node {m['node']}; {m['postgres']}; {m['redis']}.",
        "",
        "Each comparison's cases were measured in turns (round i of each, one after the other); a ratio is the"
        " median of the per-round ratios, the measured figures are medians of the runs.",
        "",
        "| # | target | measured | ratio | goal | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for ident, what, measured, value, goal, passes in targets(results):
        if value is None:
            lines.append(f"| {ident} | {what} | not measured | | {goal} | n/a |")
            continue
        shown = f"{value:.2f}"
        if ident in ("5a", "7a", "7b", "8"):
            shown = f"{value:.2f} of limit"
        lines.append(f"| {ident} | {what} | {measured} | {shown} | {goal} | {'PASS' if passes(value) else 'FAIL'} |")
    paired_ = results.get("paired", {})
    floors = [(paired_.get(key) or {}).get("ratio")
              for key in ("1a_ceiling", "1a_aiohttp_floor", "1a_floor", "1a_of_floor", "6a_argon2", "6a_floor",
                          "6a_flow_floor")]
    if any(value is not None for value in floors):
        shown = [f"{value:.2f}" if value is not None else "not measured" for value in floors]
        lines += ["", "Raw limits, for information (in turns with the same cases; no longer targets, issue 17):"
                  f" Tessera's client_credentials RS256 reaches {shown[0]} of the RS256 sign ceiling, the minimal"
                  f" aiohttp server {shown[1]} of it, and the raw uvloop protocol server (bench/floor_server.py)"
                  f" {shown[2]} of it (Tessera at {shown[3]} of that server). Tessera's login flows reach"
                  f" {shown[4]} of the raw argon2id verify rate; the minimal server reaches {shown[5]} of it with"
                  f" one verify and two RS256 signatures per POST, and {shown[6]} in the login flow's own four"
                  " requests (the login-flow floor of 6a)."]
    per_round = [f"{ident} " + " / ".join(f"{x:.2f}" for x in paired_[ident]["runs"])
                 for ident, *_ in targets(results) if (paired_.get(ident) or {}).get("runs")]
    if per_round:
        lines += ["", "Per-round ratios (the reported ratio is their median): " + "; ".join(per_round) + "."]
    lines += ["", "Every case (median of runs; min in brackets):", "",
              "| case | throughput | p50 | p99 | errors |", "| --- | --- | --- | --- | --- |"]
    limits_ = results.get("limits", {})
    for key, label in (("sign_RS256", "limit: RS256 sign, engine.tokens.jwt.sign"),
                       ("sign_ES256", "limit: ES256 sign"), ("sign_EdDSA", "limit: EdDSA sign"),
                       ("argon2_verify", "limit: argon2id verify (m=19456,t=2,p=1)")):
        if limits_.get(key):
            lines.append(f"| {label} | {limits_[key]:,.1f}/s | | | |")

    def row(label: str, data: dict[str, Any] | None) -> None:
        if data:
            lines.append(f"| {label} | {data['rps']:,.0f}/s ({data['rps_min']:,.0f}) | {data['p50_ms']:.2f} ms |"
                         f" {data['p99_ms']:.2f} ms | {data['errors']} |")

    row("limit: bare aiohttp JSON GET", results.get("bare", {}).get("get"))
    row("floor: minimal aiohttp server, Basic auth + one RS256 sign per POST",
        results.get("floor", {}).get("aiohttp_cc"))
    row("floor: raw uvloop protocol server, one RS256 sign per POST", results.get("floor", {}).get("cc"))
    row("floor: minimal server, argon2id verify + two RS256 signs per POST (8 connections)",
        results.get("floor", {}).get("login"))
    row("floor: minimal server, the login flow's four requests (flows/s, 8 in flight)",
        results.get("floor", {}).get("flow"))
    node = results.get("node", {})
    for key in ("cc_rs256", "introspect", "discovery", "jwks"):
        row(f"node-oidc-provider {node.get('version', '')} {key}", node.get(key))
    t = results.get("tessera", {})
    for key in ("cc_RS256", "cc_ES256", "cc_EdDSA", "introspect", "discovery", "jwks",
                "cc_paced_unloaded", "cc_paced_under_login"):
        row(f"tessera {key}", t.get(key))
    row("tessera login flows", t.get("login"))
    for key in ("refresh",):
        if key in t:
            d = t[key]
            lines.append(f"| tessera {key} | {d['rate']:,.1f}/s ({d['rate_min']:,.1f}) | {d['p50_ms']:.1f} ms |"
                         f" {d['p99_ms']:.1f} ms | {d['errors']} |")
    many = results.get("many", {})
    row(f"{many.get('realms', 0):,} realms: discovery {many.get('target_realm', '')}", many.get("discovery"))
    row(f"{many.get('realms', 0):,} realms: cc RS256 {many.get('target_realm', '')}", many.get("cc_RS256"))
    row("one realm, in turns with them: discovery", many.get("one_discovery"))
    row("one realm, in turns with them: cc RS256", many.get("one_cc_RS256"))
    if t:
        lines.append(f"\nOne realm: ready in {t.get('ready_s', 0):.2f} s, idle RSS {t.get('idle_rss_mb', 0):.1f} MB,"
                     f" RSS after all cases {t.get('rss_after_load_mb', 0):.1f} MB;"
                     f" node-oidc-provider idle RSS {node.get('idle_rss_mb', 0):.1f} MB.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tessera benchmark (see BENCHMARKS.md)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: every case for about a second")
    # Five short rounds rather than three long ones: this machine's speed drifts by 2x within
    # minutes, and a median of five per-round ratios shrugs off one or two bad rounds.
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--realms", type=int, default=10_000, help="realms in the many-realms case")
    parser.add_argument("--only", default="limits,floor,bare,node,tessera,many",
                        help="comma-separated subset of: limits,floor,bare,node,tessera,many")
    parser.add_argument("--profile", default="", help="comma-separated case names to profile with py-spy")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.warmup = 1, 1.0, 1.0
        if args.realms == 10_000:  # the default: a smaller crowd for the smoke run
            args.realms = 500
    settings = Settings(warmup=args.warmup, seconds=args.seconds, runs=args.runs, connections=args.connections,
                        realms=args.realms, quick=args.quick, profile=set(filter(None, args.profile.split(","))))
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        log("needs two cores (server and load generator)")
        return 2
    for tool in ("taskset", "wrk"):
        if shutil.which(tool) is None:
            log(f"{tool} is not installed (Debian: apt-get install -y {'wrk' if tool == 'wrk' else 'util-linux'})")
            return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
                               "settings": vars(args) | {"profile": sorted(settings.profile)}}
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as temp:
        workdir = Path(temp)
        results.update(measure_all(settings, Wrk(workdir, settings), workdir, only))
    text = report(results)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / "latest.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
