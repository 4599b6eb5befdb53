"""The `idp` command: serve, check, schema, plan, reload, migrate, keys, users, audit."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.cli_support import load_or_exit as _load
from engine.cli_support import realm_or_exit as _realm_or_exit
from engine.cli_support import with_stores as _with_stores
from engine.cli_users import add_users_command
from engine.config import Config
from engine.events import ENGINE_TYPES
from engine.failures import explain
from engine.files import private_directory
from engine.logs import default_format, setup_logging
from engine.plugins import Plugins

if TYPE_CHECKING:
    from engine.services import Services

DEFAULT_CONFIG = os.environ.get("IDP_CONFIG", "idp.yaml")





def cmd_check(args: argparse.Namespace) -> int:
    plugins = Plugins()
    config = _load(args.config, plugins)
    for name, realm in sorted(config.realms.items()):
        providers = ", ".join(f"{p.id}:{p.type}" for p in getattr(realm, "providers", [])) or "none"
        print(
            f"realm {name}: issuer {config.issuer(name)}, {len(realm.clients)} client(s),"
            f" providers {providers}, algs {'/'.join(realm.signing.algs)}"
        )
    warning = port_warning(config, config.server.listen.host, config.server.listen.port)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"ok: {len(config.realms)} realm(s) in {config.path}")
    return 0


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def port_warning(config: Config, host: str, port: int) -> str | None:
    """On loopback, a `base_url` naming another port than the one served is a mistake
    (`--port` changed, the issuer did not): every issuer and redirect names the old port."""
    parts = urlsplit(config.server.base_url)
    if parts.hostname not in LOOPBACK_HOSTS or host not in LOOPBACK_HOSTS | {"0.0.0.0", "::"}:
        return None
    named = parts.port or (443 if parts.scheme == "https" else 80)
    if named == port:
        return None
    fixed = parts._replace(netloc=f"{parts.hostname}:{port}").geturl()
    return (f"base_url {config.server.base_url} names port {named}, but the server listens on port {port}:"
            f" every issuer and redirect names the wrong port; set base_url (IDP_BASE_URL={fixed})")


def ready_banner(config: Config, host: str, port: int) -> list[str]:
    """What `idp serve` says once it listens: where, the realms' issuers, where the data
    lives, and what to do next."""
    lines = [f"Tessera is serving on http://{host}:{port}"]
    names = sorted(config.realms, key=lambda n: (n != config.server.root_realm, n))
    for name in names[:10]:
        root = " (root realm)" if name == config.server.root_realm else ""
        lines.append(f"  realm {name}: issuer {config.issuer(name)}{root}")
    if len(names) > 10:
        lines.append(f"  ... and {len(names) - 10} more realm(s)")
    storage = config.server.storage
    if storage.durable.startswith("sqlite:"):
        data = (f"  data: SQLite {storage.durable.removeprefix('sqlite:///')}, keys in {config.server.keys.data_dir}/"
                + (", sessions in memory (lost on restart)" if storage.ephemeral.startswith("memory:") else ""))
        lines.append(data)
    if config.server.root_realm:
        lines.append("  try it: `make demo` (or `idp demo`) in another terminal, then open http://localhost:3000/")
        lines.append(f"  first user: idp users add --realm {config.server.root_realm} --email you@example.com")
    return lines


def cmd_schema(args: argparse.Namespace) -> int:
    from engine.config.schema import config_schema

    schema = config_schema(Plugins().providers.settings_models(), kind=args.kind)
    text = json.dumps(schema, indent=2, sort_keys=False)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def _serve_one(config_path: str, host: str, port: int, reuse_port: bool, log_format: str = "json",
               log_level: str = "INFO", access_log: bool = True,
               preloaded: list[Any] | None = None) -> None:
    from prometheus_client import disable_created_metrics

    from engine.web import server
    from engine.web.app import create_app

    setup_logging(log_format, log_level)
    if not access_log:  # one line per request costs ~25 µs; metrics still count every request
        logging.getLogger("engine.access").setLevel(logging.WARNING)
    disable_created_metrics()  # no `*_created` series next to every counter
    # One worker serves the configuration `idp serve` already loaded (10,000 realms: seconds
    # and hundreds of MB saved); spawned workers load their own. Popped from the list, so
    # that no caller's frame keeps it alive after a reload replaces it.
    if preloaded:
        config, plugins = preloaded.pop(), preloaded.pop()
    else:
        plugins = Plugins()
        config = _load(config_path, plugins)
    idle_timeout = config.server.http.idle_timeout.total_seconds()
    log = logging.getLogger("engine.server")
    if warning := port_warning(config, host, port):
        log.warning(warning)
    banner = ready_banner(config, host, port)
    app = create_app(config, plugins=plugins, serving=True)
    # Perf (issue 7): what start-up loaded lives as long as the process; keep the cyclic
    # collector from rescanning it. No collection first: loading leaves next to no cyclic
    # garbage (10 objects with 10,000 realms), and a full collection costs ~0.5 s there.
    gc.freeze()
    server.run(app, host, port, reuse_port=reuse_port, loop=_new_event_loop(), idle_timeout=idle_timeout,
               on_ready=None if reuse_port else lambda: [log.info(line) for line in banner])


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (a dependency on POSIX: ~20% more requests per core)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_dir() -> tuple[str, bool]:
    """The directory where workers share their metrics (prometheus-client multi-process
    mode): the operator's PROMETHEUS_MULTIPROC_DIR if set, else a new temporary one that
    `idp serve` removes at exit. Returns (path, created here)."""
    if os.environ.get(METRICS_DIR_ENV):
        os.makedirs(os.environ[METRICS_DIR_ENV], exist_ok=True)
        return os.environ[METRICS_DIR_ENV], False
    path = tempfile.mkdtemp(prefix="tessera-metrics-")
    os.environ[METRICS_DIR_ENV] = path  # the spawned workers inherit it before importing prometheus-client
    return path, True


def cmd_serve(args: argparse.Namespace) -> int:
    log_format = args.log_format or default_format(sys.stderr)
    setup_logging(log_format, args.log_level)
    plugins = Plugins()
    config = _load(args.config, plugins)
    host = args.host or config.server.listen.host
    port = args.port if args.port is not None else config.server.listen.port
    if args.workers > 1 and config.server.storage.ephemeral.startswith("memory://"):
        print("--workers > 1 needs a shared ephemeral store (redis://): memory:// is per process",
              file=sys.stderr)
        return 2
    pid_file = _data_dir(config) / PID_FILE
    private_directory(pid_file.parent)  # the data directory: 0700 (it holds the KEK, the snapshot)
    pid_file.write_text(str(os.getpid()))
    try:
        if args.workers <= 1:
            preloaded: list[Any] = [plugins, config]
            del plugins, config
            _serve_one(args.config, host, port, False, log_format, args.log_level, args.access_log, preloaded)
            return 0
        from engine.tokens.keys import load_or_create_kek

        # Without IDP_KEY_ENCRYPTION_KEY the key is generated into the data directory on
        # first start: here, once, rather than by N workers racing to create the file.
        _, origin = load_or_create_kek(os.environ, _data_dir(config))
        try:
            # The stores' start-up once, here (migrations, the key-encryption key check),
            # rather than N workers each refusing a KEK that cannot open the store's keys.
            _with_stores(config, plugins, _nothing)
        except Exception:
            if origin.startswith("generated"):  # made just now, and not the store's KEK
                (_data_dir(config) / "key-encryption-key").unlink(missing_ok=True)
            raise
        return _serve_workers(args, host, port, log_format)
    finally:
        pid_file.unlink(missing_ok=True)


async def _nothing(services: Services) -> int:
    return 0


def _serve_workers(args: argparse.Namespace, host: str, port: int, log_format: str) -> int:
    """N processes on one port (SO_REUSEPORT); this parent forwards SIGHUP/SIGTERM/SIGINT
    to every worker and waits for them."""
    metrics_dir, created = _metrics_dir()
    try:
        context = multiprocessing.get_context("spawn")
        workers = [
            context.Process(target=_serve_one, daemon=False,
                            args=(args.config, host, port, True, log_format, args.log_level, args.access_log))
            for _ in range(args.workers)
        ]

        def forward(signum: int, frame: Any) -> None:  # reload and stop reach every worker
            for worker in workers:
                if worker.pid is not None and worker.is_alive():
                    os.kill(worker.pid, signum)

        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        for worker in workers:
            worker.start()
        logging.getLogger("engine").info("started %d workers (%s); they share metrics in %s", len(workers),
                                         ", ".join(str(w.pid) for w in workers), metrics_dir)
        for worker in workers:
            worker.join()
        return max((w.exitcode or 0) for w in workers)
    finally:
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)


PID_FILE = "idp.pid"


def _data_dir(config: Config) -> Path:
    return config.path.parent / config.server.keys.data_dir


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask the running server (its pid file in the data directory) to reload."""
    plugins = Plugins()
    config = _load(args.config, plugins)  # refuse to signal a server with a broken config
    try:
        pid = int((_data_dir(config) / PID_FILE).read_text())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"no running server found ({exc})", file=sys.stderr)
        return 1
    print(f"sent SIGHUP to {pid}; the server validates and swaps the configuration")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """What deploying `-c` would change against what the server last applied (exit 2 if
    anything changes, for CI gates)."""
    from engine.config.plan import diff, read_snapshot, snapshot

    plugins = Plugins()
    new = _load(args.config, plugins)
    if args.against:
        against = Path(args.against)
        if against.suffix in (".yaml", ".yml"):
            old = snapshot(_load(str(against), plugins))
        else:
            old = read_snapshot(against if against.is_dir() else against.parent)
    else:
        # The running server's record: the data directory of the current idp.yaml.
        current = Path(DEFAULT_CONFIG)
        old = read_snapshot(_data_dir(_load(str(current), plugins)) if current.exists() else _data_dir(new))
    if old is None:
        print("no applied configuration recorded yet (start the server once, or pass --against)",
              file=sys.stderr)
        return 1
    changes = diff(old, snapshot(new))
    for line in changes:
        print(line)
    print(f"{len(changes)} change(s)" if changes else "no changes")
    return 2 if changes else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    plugins = Plugins()
    config = _load(args.config, plugins)

    async def work(services: Services) -> int:
        print("schema is up to date")  # create_app's start-up applied any pending migration
        return 0

    return _with_stores(config, plugins, work)


def cmd_keys(args: argparse.Namespace) -> int:
    plugins = Plugins()
    config = _load(args.config, plugins)
    names = [args.realm] if args.realm else sorted(config.realms)
    for name in names:
        _realm_or_exit(config, name)

    async def work(services: Services) -> int:
        for name in names:
            realm = config.realms[name]
            if args.action == "rotate":
                lifetimes = realm.lifetimes
                changes = await services.keys.rotate(
                    name, realm.signing.algs,
                    max_token_lifetime=max(lifetimes.access_token, lifetimes.id_token),
                )
                for change in changes or ["nothing to do"]:
                    print(f"{name}: {change}")
            else:
                await services.keys.realm_keys(name, realm.signing.algs)
                for key in await services.durable.list_signing_keys(name):
                    print(f"{name}\t{key.kid}\t{key.alg}\t{key.status}\tcreated {key.created_at:%Y-%m-%d %H:%M}")
        return 0

    return _with_stores(config, plugins, work)


def cmd_audit(args: argparse.Namespace) -> int:
    """The realm's audit events, one JSON object per line, oldest first."""
    from engine.audit import parse_since, read_events, record

    plugins = Plugins()
    config = _load(args.config, plugins)
    _realm_or_exit(config, args.realm)
    try:
        since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    types = {t.strip() for value in args.type or [] for t in value.split(",") if t.strip()}

    async def work(services: Services) -> int:
        seen: set[str] = set()
        async for event in read_events(services.durable, args.realm, since):
            seen.add(event.type)
            if not types or event.type in types:
                sys.stdout.write(json.dumps(record(event), default=str) + "\n")
        sys.stdout.flush()
        # A misspelt type would quietly match nothing: name it (a plugin's own types are
        # known once recorded).
        unknown = sorted(types - ENGINE_TYPES - seen)
        if unknown:
            print(f"unknown event type(s): {', '.join(unknown)}; the engine records:"
                  f" {', '.join(sorted(ENGINE_TYPES))}", file=sys.stderr)
            return 2
        return 0

    return _with_stores(config, plugins, work)


def cmd_demo(args: argparse.Namespace) -> int:
    """A tiny relying party on :3000 for the shipped `frontend` client (engine.demo)."""
    from engine import demo

    config = _load(args.config, Plugins())
    realm = args.realm or config.server.root_realm
    if realm not in config.realms:
        print(f"no realm {realm!r} in {args.config}", file=sys.stderr)
        return 2
    issuer = config.issuer(realm)
    client = demo.DemoClient(issuer, args.client_id, f"http://localhost:{args.port}")
    print(f"Demo application for client {args.client_id!r} of {issuer}\n"
          f"Open http://localhost:{args.port}/ and sign in (idp serve must be running;"
          f" create a user with: idp users add --realm {realm} --email you@example.com)", flush=True)
    try:
        asyncio.run(demo.serve(client, "127.0.0.1", args.port))
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idp", description="Tessera identity provider")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="path to idp.yaml")
        p.add_argument("--debug", action="store_true", help="show the traceback of a failure")
        p.set_defaults(handler=handler)
        return p

    serve = command("serve", cmd_serve, "serve the IdP")
    serve.add_argument("--host", help="address to listen on (default: listen.host in idp.yaml)")
    serve.add_argument("--port", type=int, help="port to listen on (default: listen.port in idp.yaml;"
                       " base_url, the issuer, does not follow it)")
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    serve.add_argument("--log-format", choices=["json", "text"],
                       help="json (one object per line) or text; default json unless stderr is a terminal")
    serve.add_argument("--log-level", default=os.environ.get("IDP_LOG_LEVEL", "INFO"),
                       type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="least severe level logged (default INFO, or IDP_LOG_LEVEL)")
    serve.add_argument("--no-access-log", dest="access_log", action="store_false",
                       help="no log line per request (errors are still logged)")
    command("check", cmd_check, "validate the configuration")
    schema = command("schema", cmd_schema, "print the JSON Schema of the configuration")
    schema.add_argument("--kind", choices=["all", "server", "realm"], default="all",
                        help="the schema of idp.yaml (server), of a realm file (realm), or both (all)")
    schema.add_argument("-o", "--output", help="write to this file instead of standard output")
    command("migrate", cmd_migrate, "apply pending database migrations")
    plan = command("plan", cmd_plan, "show what a configuration change would change (exit 2 if any)")
    plan.add_argument("--against", help="an idp.yaml, or a data directory with applied-config.json")
    command("reload", cmd_reload, "make the running server reload its configuration (SIGHUP)")
    keys = command("keys", cmd_keys, "list or rotate signing keys")
    keys.add_argument("action", choices=["list", "rotate"],
                      help="list: every key and its state; rotate: one rotation step now")
    keys.add_argument("--realm", help="only this realm (default: every realm)")
    add_users_command(command)
    demo = command("demo", cmd_demo, "serve a tiny relying party that signs in with the shipped public client")
    demo.add_argument("--realm", help="the realm to sign in to (default: the root realm)")
    demo.add_argument("--client-id", default="frontend", help="a public client with redirect URI"
                      " http://localhost:<port>/callback")
    demo.add_argument("--port", type=int, default=3000, help="where the demo listens (default 3000)")
    audit = command("audit", cmd_audit, "print a realm's audit events, one JSON object per line")
    audit.add_argument("--realm", required=True, help="the realm whose events to print")
    audit.add_argument("--since", help="ISO 8601 time, or a duration back from now (1h, 2d)")
    audit.add_argument("--type", action="append", help="only events of this type (repeat, or comma-separate)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except BrokenPipeError:  # `idp audit ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # as a shell reports a process ended by SIGPIPE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        explained = explain(exc)
        if explained is None:
            raise
        message, hint = explained
        print(f"idp {args.command}: {message}\n  hint: {hint} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
