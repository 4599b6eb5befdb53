"""Instructions per request, counted by valgrind's callgrind: the benchmark's ratios that a
shared machine cannot disturb (issue 17).

`bench/run` measures requests per second, and on a machine whose other core (or both) is
busy with someone else's work those figures swing by a factor of two within minutes. An
instruction count does not: callgrind counts what the server's process executes in user
space, the same for the same code and inputs whatever else runs. It does not see the
kernel (the loopback send and receive, epoll) nor cache misses, so it states the cost of
*our* code next to the floor's, not the wall-clock ratio; the two together say whether a
missed target is ours or the machine's.

Cases (each server started under callgrind, warmed up, counters zeroed, then `--requests`
requests over 8 keep-alive connections, counters dumped):

- `discovery` / `discovery-no-log`: Tessera as `idp serve` starts by default (access log on)
  and with `--no-access-log` (target 4e: the log costs <= 10 %);
- `bare`: the bare aiohttp JSON endpoint (bench/bare_server.py; 4c: Tessera's discovery
  costs <= 1/0.70 of it);
- `jwks`: the realm's key set (4d, against `bare` too);
- `cc-rs256` / `floor-cc`: client_credentials with an RS256 access token from Tessera and
  from the minimal aiohttp server (bench/aiohttp_floor.py; 1a);
- `cc-es256`: Tessera's client_credentials with an ES256 token, whose signature is small
  next to the rest (2a: Tessera's own work per request is most of it);
- `introspect`: RFC 7662 introspection of one of Tessera's RS256 access tokens by its
  client (3: the token's signature verified, its revocation looked up as the endpoint does).

Usage: bench/instructions.py [--requests 2000] [--cases discovery,discovery-no-log,...].
Needs valgrind (Debian: valgrind) and PostgreSQL and Redis as for bench/run.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402
    BENCH,
    CLIENT_SECRET,
    PYTHON,
    ROOT,
    basic,
    http_json,
    reset_stores,
    tessera_env,
    write_deployment,
)

PORT = 4400
CONNECTIONS = 8
# Its own database and Redis DB: `bench/run` drops the benchmark's at its start, and a count
# must not drop the stores under a `bench/run` in progress (nor the other way round).
PG_DB = "tessera_bench_instructions"
REDIS_DB = 11


def drive(port: int, path: str, requests: int, *, post: str | None = None, auth: str | None = None) -> None:
    """`requests` requests over CONNECTIONS keep-alive connections; every answer must be 200."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if post is not None else {}
    if auth:
        headers["Authorization"] = auth
    failures: list[str] = []

    def run(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for _ in range(count):
            connection.request("POST" if post is not None else "GET", path, post, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(f"{path}: {response.status}")
                return

    threads = [threading.Thread(target=run, args=(requests // CONNECTIONS,)) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(failures[0])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"not ready: {url}")


def count(name: str, command: list[str], ready: str, path: str, requests: int, workdir: Path, *,
          post: str | Callable[[], str] | None = None, auth: str | None = None,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    out = workdir / f"callgrind.{name}"
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", *command],
        cwd=cwd, env=env, stdout=(workdir / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_ready(ready, process)
        if callable(post):  # a body that needs the server (a token to introspect)
            post = post()
        drive(PORT, path, max(requests // 5, CONNECTIONS), post=post, auth=auth)  # warm-up
        subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True)
        drive(PORT, path, requests, post=post, auth=auth)
        subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
    finally:
        process.terminate()
        process.wait(timeout=120)
    dump = Path(f"{out}.{process.pid}.1")
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            per_request = int(line.split()[1]) / (requests // CONNECTIONS * CONNECTIONS)
            print(f"{name}: {per_request:,.0f} instructions per request", file=sys.stderr)
            return per_request
    raise RuntimeError(f"no totals in {dump}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--cases", default="discovery,discovery-no-log,jwks,bare,cc-rs256,cc-es256,introspect,floor-cc")
    parser.add_argument("--keep", type=Path, help="copy the callgrind dumps here (for callgrind_annotate)")
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    results: dict[str, float] = {}
    auth = basic("svc-rs256", CLIENT_SECRET)
    with tempfile.TemporaryDirectory(prefix="tessera-instructions-") as temp:
        workdir = args.keep or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        directory = workdir / "deployment"
        write_deployment(directory, ["bench"], PORT, database=PG_DB, redis_db=REDIS_DB)
        env = {**os.environ, **tessera_env()}
        reset_stores(PG_DB, REDIS_DB)
        idp = [PYTHON, "-m", "engine.cli", "serve", "-c", str(directory / "idp.yaml")]
        issuer = f"http://127.0.0.1:{PORT}/realms/bench"
        discovery = "/realms/bench/.well-known/openid-configuration"
        for name, extra in (("discovery", []), ("discovery-no-log", ["--no-access-log"])):
            if name in cases:
                results[name] = count(name, idp + extra, issuer + "/.well-known/openid-configuration", discovery,
                                      args.requests, workdir, env=env, cwd=directory)
        if "jwks" in cases:  # 4d: the key set, as verifiers fetch it
            results["jwks"] = count("jwks", idp, issuer + "/.well-known/openid-configuration",
                                    "/realms/bench/.well-known/jwks.json", args.requests, workdir,
                                    env=env, cwd=directory)
        if "bare" in cases:
            results["bare"] = count("bare", [PYTHON, str(BENCH / "bare_server.py"), str(PORT)],
                                    f"http://127.0.0.1:{PORT}/", "/", args.requests, workdir)
        if "cc-rs256" in cases:
            results["cc-rs256"] = count("cc-rs256", idp, issuer + "/.well-known/openid-configuration",
                                        "/realms/bench/token", args.requests // 4, workdir,
                                        post="grant_type=client_credentials", auth=auth, env=env, cwd=directory)
        if "cc-es256" in cases:  # the same grant with a cheap signature: Tessera's own work shows
            results["cc-es256"] = count("cc-es256", idp, issuer + "/.well-known/openid-configuration",
                                        "/realms/bench/token", args.requests // 4, workdir,
                                        post="grant_type=client_credentials", auth=basic("svc-es256", CLIENT_SECRET),
                                        env=env, cwd=directory)
        if "introspect" in cases:
            def token_form() -> str:
                token = http_json("POST", issuer + "/token", {"grant_type": "client_credentials"}, auth)
                return "token=" + token["access_token"]

            results["introspect"] = count("introspect", idp, issuer + "/.well-known/openid-configuration",
                                          "/realms/bench/introspect", args.requests // 2, workdir,
                                          post=token_form, auth=auth, env=env, cwd=directory)
        if "floor-cc" in cases:
            results["floor-cc"] = count("floor-cc", [PYTHON, str(BENCH / "aiohttp_floor.py"), str(PORT),
                                                     CLIENT_SECRET],
                                        f"http://127.0.0.1:{PORT}/", "/token", args.requests // 4, workdir,
                                        post="grant_type=client_credentials", auth=auth)

    def share(a: str, b: str, label: str) -> None:
        if a in results and b in results:
            print(f"{label}: {results[a]:,.0f} / {results[b]:,.0f} = {results[a] / results[b]:.2f}")

    print(f"Instructions per request (callgrind, user space), {args.requests:,} requests, "
          f"{CONNECTIONS} connections; {ROOT.name} at {git_head()}")
    share("discovery", "discovery-no-log", "4e access log: discovery / discovery --no-access-log")
    share("discovery", "bare", "4c discovery / bare aiohttp JSON endpoint")
    share("jwks", "bare", "4d JWKS / bare aiohttp JSON endpoint")
    share("cc-rs256", "floor-cc", "1a client_credentials RS256 / minimal aiohttp server")
    return 0


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    raise SystemExit(main())
