"""The examples harness (issue 21): the runnable examples in examples/ driven end to end
against a real `idp serve`, on both store pairs, in one real Chromium.

- `examples_idp` (package scope: once per store pair, `embedded` / `production`):
  `idp serve --config examples/idp.yaml` as a subprocess on a free port, with the shipped examples realm whose
  fixed developer ports (3000, 5173, 8081-8085) are rewritten to free ones. Stores: SQLite +
  memory, or a fresh PostgreSQL database + Redis under a unique key prefix. The shipped
  idp.yaml is copied with one change, `keys.verifier_cache_ttl: 1s`, so two `idp keys rotate`
  a second apart activate a new signing key (the server reads its keys every 30 s). A second
  realm, `other` (tests/examples/other-realm.yaml), serves tokens of another issuer. A user
  (`examples_idp.user`) is created with `idp users add`. `examples_idp.port(8081)` is the
  port a test gives the example that defaults to 8081; `examples_idp.cli(...)` runs any
  other `idp` command (`keys rotate`, `users add`) against the same stores.
- `browser` (package): one Playwright (sync API) Chromium for every example test, Debian's
  /usr/bin/chromium (TESSERA_CHROMIUM moves it); skipped locally, a failure in CI
  (TESSERA_REQUIRE_PRODUCTION_STORES=1) when missing. `page`: a fresh context (own cookies)
  and page per test, screenshotted to test-artifacts/examples/ on the way out.
- `start_example` (per test): starts an example's command with extra environment, waits for
  its port (or returns at once), stops it (its own process group) after the test.

Example tests are plain (sync) functions: Playwright's sync API cannot run inside an
event loop, and while it runs its own loop counts as running in this thread, so the
browser (and the IdP) are package-scoped: they end with the last test of tests/examples,
before any asyncio test of the rest of the suite. For async helpers use
tests.conftest.run_in_thread. Every test in this folder
is marked `examples` (`make examples-test`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.conftest import (
    REDIS_URL,
    create_database,
    delete_redis_prefix,
    drop_database,
    production_unavailable,
    run_in_thread,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
IDP_CONFIG = EXAMPLES / "idp.yaml"
REALM_FILE = EXAMPLES / "realms" / "examples.yaml"
REALM = "examples"
OTHER_REALM_FILE = Path(__file__).parent / "other-realm.yaml"
SHIPPED_KEYS_LINE = 'keys: {data_dir: "${IDP_DATA_DIR:-var}"}'
# The fixed developer ports of the examples (examples/README.md), rewritten per session.
DEVELOPER_PORTS = (3000, 5173, 8081, 8082, 8083, 8084, 8085)
ARTIFACTS = REPO / "test-artifacts" / "examples"
CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REQUIRE = os.environ.get("TESSERA_REQUIRE_PRODUCTION_STORES") == "1"
USER_PASSWORD = "velvet lantern orchard 42"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.examples)


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail in CI (TESSERA_REQUIRE_PRODUCTION_STORES=1), where the tool must be there."""
    if REQUIRE:
        pytest.fail(f"{reason}; CI requires it", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- processes


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 60.0,
                  log: Path | None = None) -> None:
    """Until 127.0.0.1:port accepts a connection; fails early when `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode} before listening on {port}"
                                 + (f"\n{tail(log)}" if log else ""))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout:.0f} s" + (f"\n{tail(log)}" if log else ""))


def tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()
    return f"--- last lines of {log}:\n" + "\n".join(text[-lines:])


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM to the process group we started (start_new_session), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)


@dataclass
class ExampleProcess:
    name: str
    process: subprocess.Popen
    log: Path
    port: int | None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 60.0) -> int:
        """Its exit status (for commands that finish: the CLI, a job); fails on a timeout."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs after {timeout:.0f} s\n{tail(self.log)}") from None

    def stop(self) -> None:
        stop(self.process)


# --------------------------------------------------------------------------- the IdP


@dataclass
class ExamplesIdp:
    """One running `idp serve` with the examples realm, on one store pair."""

    backend: str
    base_url: str
    ports: dict[int, int]
    env: dict[str, str]  # IDP_* variables every `idp` command of this IdP needs
    workdir: Path
    config: Path  # the idp.yaml it serves (the shipped one, keys.verifier_cache_ttl shortened)
    log: Path
    user: str = "alice@example.com"
    password: str = USER_PASSWORD
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{REALM}"

    @property
    def other_issuer(self) -> str:
        """A second realm of the same server (wrong-realm tokens)."""
        return f"{self.base_url}/realms/other"

    def port(self, developer_port: int) -> int:
        """The free port standing in for an example's fixed developer port."""
        return self.ports[developer_port]

    def url(self, developer_port: int, path: str = "") -> str:
        return f"http://localhost:{self.ports[developer_port]}{path}"

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """`idp <args> --config <its idp.yaml>` against this IdP's stores."""
        command = [sys.executable, "-m", "engine.cli", *args, "--config", str(self.config)]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=120,
                                env={**os.environ, **self.env}, cwd=REPO)
        if check and result.returncode != 0:
            raise AssertionError(f"idp {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def secret(self, client_id: str) -> str:
        """The demo secret of a confidential client of the examples realm (its `${VAR:-default}`)."""
        return DEMO_SECRETS[client_id]

    def client_token(self, client_id: str, issuer: str | None = None, secret: str | None = None,
                     **params: str) -> str:
        """An access token by client credentials (RFC 6749 §4.4), e.g. resource="videos-api"."""
        response = httpx.post(f"{issuer or self.issuer}/token", auth=(client_id, secret or self.secret(client_id)),
                              data={"grant_type": "client_credentials", **params}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def rotate_keys(self, signed_kid: Callable[[], str]) -> str:
        """`idp keys rotate` twice (a `next` key, then active once published for
        verifier_cache_ttl, 1 s here), then wait until `signed_kid()` (the kid of a token
        made now) names a new key: the server re-reads its keys every 30 s. Returns that kid."""
        old_kid = signed_kid()
        self.cli("keys", "rotate", "--realm", REALM)
        time.sleep(1.5)
        self.cli("keys", "rotate", "--realm", REALM)
        deadline = time.monotonic() + 45
        kid = old_kid
        while kid == old_kid and time.monotonic() < deadline:
            time.sleep(1)
            kid = signed_kid()
        assert kid != old_kid, "the server never signed with the rotated key"
        return kid

    def client_token_after_rotation(self, client_id: str) -> str:
        """`rotate_keys`, then an access token of `client_id` signed by the new key."""
        tokens: list[str] = []

        def signed_kid() -> str:
            tokens.append(self.client_token(client_id))
            return jwt_header(tokens[-1])["kid"]

        self.rotate_keys(signed_kid)
        return tokens[-1]

    def add_user(self, email: str, name: str = "Example User", password: str = USER_PASSWORD) -> None:
        self.cli("users", "add", "--realm", REALM, "--email", email, "--name", name, input=password + "\n")

    def log_tail(self) -> str:
        return tail(self.log)


def _demo_secrets() -> dict[str, str]:
    found: dict[str, str] = {}
    client = None
    for line in REALM_FILE.read_text().splitlines():
        if match := re.match(r"\s*- client_id: (\S+)", line):
            client = match.group(1)
        elif (match := re.match(r"\s*secret: \$\{\w+:-([^}]+)\}", line)) and client:
            found[client] = match.group(1)
    return found


DEMO_SECRETS = _demo_secrets()


def _realm_text(ports: Mapping[int, int]) -> str:
    text = REALM_FILE.read_text()
    for developer, port in ports.items():
        text = text.replace(f"localhost:{developer}", f"localhost:{port}")
    return text


@pytest.fixture(scope="package", params=[
    pytest.param("embedded", id="embedded"),
    pytest.param("production", id="production", marks=pytest.mark.production),
])
def examples_idp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 unused_tcp_port_factory: Callable[[], int]) -> Iterator[ExamplesIdp]:
    backend: str = request.param
    workdir = tmp_path_factory.mktemp(f"examples-idp-{backend}")
    port = unused_tcp_port_factory()
    ports = {developer: unused_tcp_port_factory() for developer in DEVELOPER_PORTS}
    realms = workdir / "realms"
    realms.mkdir()
    (realms / "examples.yaml").write_text(_realm_text(ports))
    (realms / "other.yaml").write_text(OTHER_REALM_FILE.read_text())
    shipped = IDP_CONFIG.read_text()
    assert SHIPPED_KEYS_LINE in shipped, "examples/idp.yaml changed: update SHIPPED_KEYS_LINE"
    config = workdir / "idp.yaml"  # every path in it comes from the IDP_* variables below
    config.write_text(shipped.replace(SHIPPED_KEYS_LINE, SHIPPED_KEYS_LINE[:-1] + ", verifier_cache_ttl: 1s}"))
    base_url = f"http://localhost:{port}"
    env = {"IDP_BASE_URL": base_url, "IDP_REALMS_DIR": str(realms), "IDP_DATA_DIR": str(workdir / "var"),
           "IDP_OUTBOX_DIR": str(workdir / "var" / "outbox")}
    database = prefix = None
    if backend == "embedded":
        env |= {"IDP_DURABLE_URL": f"sqlite:///{workdir}/idp.sqlite3", "IDP_EPHEMERAL_URL": "memory://"}
    else:
        redis_url = request.getfixturevalue("redis_url")
        try:
            database = run_in_thread(lambda: create_database("tessera_examples_"))
        except OSError as exc:
            production_unavailable("PostgreSQL", exc)
        prefix = f"tessera-examples-{secrets.token_hex(6)}:"
        env |= {"IDP_DURABLE_URL": database, "IDP_EPHEMERAL_URL": redis_url, "IDP_EPHEMERAL_PREFIX": prefix}
    log = workdir / "idp.log"
    idp = ExamplesIdp(backend, base_url, ports, env, workdir, config, log)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--config", str(config), "--port", str(port),
             "--log-format", "text"],
            env={**os.environ, **env}, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    idp.process = process
    try:
        wait_for_port(port, process, log=log)
        _wait_ready(idp)
        idp.add_user(idp.user, "Alice Example")
        yield idp
    finally:
        stop(process)
        if database is not None:
            run_in_thread(lambda: drop_database(database))
        if prefix is not None:
            run_in_thread(lambda: delete_redis_prefix(REDIS_URL, prefix))


def _wait_ready(idp: ExamplesIdp, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{idp.base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"idp serve is not ready after {timeout:.0f} s\n{idp.log_tail()}")


# --------------------------------------------------------------------------- examples


@pytest.fixture
def start_example(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ExampleProcess]]:
    """start_example(name, command, env=..., cwd=..., port=...) → ExampleProcess.

    `command` runs with the test's environment plus `env`, in `cwd` (default: the repository
    root), in its own process group, output to a log under the test's tmp_path. With `port`,
    returns once 127.0.0.1:port accepts connections. Every process is stopped after the test."""
    started: list[ExampleProcess] = []

    def start(name: str, command: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | str = REPO, port: int | None = None, timeout: float = 60.0) -> ExampleProcess:
        log = tmp_path / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(list(command), env={**os.environ, **(env or {})}, cwd=cwd,
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        example = ExampleProcess(name, process, log, port)
        started.append(example)
        if port is not None:
            wait_for_port(port, process, timeout=timeout, log=log)
        return example

    yield start
    for example in reversed(started):
        example.stop()
    if getattr(request.node, "rep_call_failed", False):
        for example in started:
            print(tail(example.log))


@pytest.fixture
def python_videos_api(examples_idp: ExamplesIdp, start_example) -> ExampleProcess:
    """examples/resource-server-python on the port standing in for 8082 (`.port`). No pause
    between JWKS refetches on an unknown kid, so a rotation test sees that path taken."""
    port = examples_idp.port(8082)
    server = EXAMPLES / "resource-server-python" / "server.py"
    return start_example("resource-server-python", [sys.executable, str(server)],
                         env={"ISSUER": examples_idp.issuer, "PORT": str(port), "JWKS_REFETCH_INTERVAL": "0"},
                         port=port)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.rep_call_failed = report.failed  # type: ignore[attr-defined]
    return report


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium (Debian's) for every example test."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_or_fail(f"Playwright for Python is not installed ({exc}); pip install -e '.[test]'")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        skip_or_fail(f"Chromium not found at {CHROMIUM}; apt-get install chromium (or set TESSERA_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    """A new browser context (its own cookies) and page; a screenshot when the test ends."""
    context = browser.new_context()
    context.set_default_timeout(20_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception:  # a crashed page has no screenshot; the test's own failure says why
            pass
        context.close()


def jwt_header(token: str) -> dict:
    """The (unverified) JOSE header of a compact JWT."""
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def user_tokens(page, idp: ExamplesIdp, client_id: str = "bff", scope: str = "openid profile videos.read videos.write",
                redirect_port: int = 8081) -> dict:
    """A user's tokens for a confidential client of the realm (the BFF's by default): the
    authorization code flow with PKCE in the browser (nothing needs to listen on the redirect
    URI: the browser's request to it is caught), the code exchanged here."""
    redirect = idp.url(redirect_port, "/callback")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "scope": scope,
                       "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
    caught: list[str] = []
    page.route(f"{redirect}*", lambda route: (caught.append(route.request.url), route.fulfill(body="ok")))
    page.goto(f"{idp.issuer}/authorize?{query}")
    if page.locator("input[name=password]").count():
        sign_in(page, idp)
    page.wait_for_url(f"{redirect}*")
    params = parse_qs(urlsplit(caught[-1]).query)
    assert params.get("state") == [state], caught[-1]
    response = httpx.post(f"{idp.issuer}/token", auth=(client_id, idp.secret(client_id)), timeout=10, data={
        "grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": redirect,
        "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()


def sign_in(page, idp: ExamplesIdp, email: str | None = None, password: str | None = None) -> None:
    """Fill the realm's sign-in form on the current page and submit it."""
    page.fill("input[name=email]", email or idp.user)
    page.fill("input[name=password]", password or idp.password)
    page.click("button[type=submit]")
