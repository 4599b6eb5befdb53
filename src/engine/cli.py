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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config import Config, ConfigError, load_config
from engine.logs import default_format, setup_logging
from engine.plugins import Plugins

DEFAULT_CONFIG = os.environ.get("IDP_CONFIG", "idp.yaml")


def _load(path: str, plugins: Plugins) -> Config:
    try:
        return load_config(path, plugins.providers.settings_models())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:  # noqa: BLE001 - a configuration never gets a traceback (issue 23 item 3)
        print(f"{path}:1: cannot load the configuration: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("1 problem(s) found", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check(args: argparse.Namespace) -> int:
    plugins = Plugins()
    config = _load(args.config, plugins)
    for name, realm in sorted(config.realms.items()):
        providers = ", ".join(f"{p.id}:{p.type}" for p in getattr(realm, "providers", [])) or "none"
        print(
            f"realm {name}: issuer {config.issuer(name)}, {len(realm.clients)} client(s),"
            f" providers {providers}, algs {'/'.join(realm.signing.algs)}"
        )
    print(f"ok: {len(config.realms)} realm(s) in {config.path}")
    return 0


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

    from engine.web import fastpath
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
    app = create_app(config, plugins=plugins, serving=True)
    # Perf (issue 7): what start-up loaded lives as long as the process; keep the cyclic
    # collector from rescanning it. No collection first: loading leaves next to no cyclic
    # garbage (10 objects with 10,000 realms), and a full collection costs ~0.5 s there.
    gc.freeze()
    fastpath.run(app, host, port, reuse_port=reuse_port, loop=_new_event_loop())


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
    pid_file.parent.mkdir(parents=True, exist_ok=True)
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
        load_or_create_kek(os.environ, _data_dir(config))
        return _serve_workers(args, host, port, log_format)
    finally:
        pid_file.unlink(missing_ok=True)


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


def _with_stores(config: Config, plugins: Plugins, work: Callable[[Any], Awaitable[int]]) -> int:
    """Run `work(services)` with the stores open, as the server would have them."""
    from engine.web.app import create_app
    from engine.web.appkeys import SERVICES

    async def main() -> int:
        app = create_app(config, plugins=plugins)
        contexts = [ctx(app) for ctx in app.cleanup_ctx]
        for ctx in contexts:
            await ctx.__anext__()
        try:
            return await work(app[SERVICES])
        finally:
            for ctx in reversed(contexts):
                try:
                    await ctx.__anext__()
                except StopAsyncIteration:
                    pass

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace) -> int:
    plugins = Plugins()
    config = _load(args.config, plugins)

    async def work(services: Any) -> int:
        print("schema is up to date")  # create_app's start-up applied any pending migration
        return 0

    return _with_stores(config, plugins, work)


def _realm_or_exit(config: Config, name: str) -> Any:
    if name not in config.realms:
        print(f"no realm named {name!r}; realms: {', '.join(sorted(config.realms))}", file=sys.stderr)
        raise SystemExit(2)
    return config.realms[name]


def cmd_keys(args: argparse.Namespace) -> int:
    plugins = Plugins()
    config = _load(args.config, plugins)
    names = [args.realm] if args.realm else sorted(config.realms)
    for name in names:
        _realm_or_exit(config, name)

    async def work(services: Any) -> int:
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


def _read_password(prompt: str = "Password: ") -> str:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(prompt)
        if getpass.getpass("Repeat password: ") != first:
            print("passwords do not match", file=sys.stderr)
            raise SystemExit(2)
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users(args: argparse.Namespace) -> int:
    from engine.accounts.users import create_user
    from engine.store.protocols import AlreadyExists

    plugins = Plugins()
    config = _load(args.config, plugins)
    _realm_or_exit(config, args.realm)
    password = _read_password()
    if len(password) < 8:
        print("the password must have at least 8 characters", file=sys.stderr)
        return 2

    async def work(services: Any) -> int:
        realm = services.runtime.realms[args.realm]
        profile = {"name": args.name} if args.name else {}
        try:
            user = await create_user(services, realm, email=args.email, password=password,
                                     email_verified=not args.unverified, profile=profile)
        except AlreadyExists:
            print(f"{args.email} already has an account in realm {args.realm}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(f"created {user.id} <{user.email}> in realm {args.realm}")
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

    async def work(services: Any) -> int:
        async for event in read_events(services.durable, args.realm, since):
            if not types or event.type in types:
                sys.stdout.write(json.dumps(record(event), default=str) + "\n")
        sys.stdout.flush()
        return 0

    return _with_stores(config, plugins, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idp", description="Tessera identity provider")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="path to idp.yaml")
        p.set_defaults(handler=handler)
        return p

    serve = command("serve", cmd_serve, "serve the IdP")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    serve.add_argument("--log-format", choices=["json", "text"],
                       help="json (one object per line) or text; default json unless stderr is a terminal")
    serve.add_argument("--log-level", default=os.environ.get("IDP_LOG_LEVEL", "INFO"),
                       type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--no-access-log", dest="access_log", action="store_false",
                       help="no log line per request (errors are still logged)")
    command("check", cmd_check, "validate the configuration")
    schema = command("schema", cmd_schema, "print the JSON Schema of the configuration")
    schema.add_argument("--kind", choices=["all", "server", "realm"], default="all")
    schema.add_argument("-o", "--output")
    command("migrate", cmd_migrate, "apply pending database migrations")
    plan = command("plan", cmd_plan, "show what a configuration change would change (exit 2 if any)")
    plan.add_argument("--against", help="an idp.yaml, or a data directory with applied-config.json")
    command("reload", cmd_reload, "make the running server reload its configuration (SIGHUP)")
    keys = command("keys", cmd_keys, "list or rotate signing keys")
    keys.add_argument("action", choices=["list", "rotate"])
    keys.add_argument("--realm")
    users = command("users", cmd_users, "manage users (password read from a prompt or stdin)")
    users.add_argument("action", choices=["add"])
    users.add_argument("--realm", required=True)
    users.add_argument("--email", required=True)
    users.add_argument("--name")
    users.add_argument("--unverified", action="store_true", help="leave the email unverified")
    audit = command("audit", cmd_audit, "print a realm's audit events, one JSON object per line")
    audit.add_argument("--realm", required=True)
    audit.add_argument("--since", help="ISO 8601 time, or a duration back from now (1h, 2d)")
    audit.add_argument("--type", action="append", help="only events of this type (repeat, or comma-separate)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
