"""What targets 4c/4d measure, taken apart (issue 17): Tessera's discovery document and key
set against the bare aiohttp JSON endpoint, with the middleware layer in three states, in
turns on the server core (wrk on the other). Usage: bench/middleware_cost.py [--runs 5]
[--seconds 3]. It replaces the issue-7 `bench/stack_ab.py` (which changed the app through
private attributes and ran its variants one after the other).

- `idp serve` as it starts by default: the one middleware (`engine.web.middleware`: the
  request id, error rendering, CORS, the metrics and the access-log line) on every request;
- the same application with that middleware replaced by one that only awaits the handler:
  what aiohttp's middleware mechanism itself costs (it wraps the handler and adds its own
  `_fix_request_current_app` layer to an application that has any middleware);
- the same application with no middleware: Tessera's routing, realm lookup and cached,
  ETagged document through the protocol core and the adapter, and nothing else.

The two variants are built from `create_app` like `idp serve` builds it; only the
application's middleware list (public: `Application.middlewares`, before it is frozen)
differs. Not a configuration anyone should run: without the middleware, errors are aiohttp's
plain pages and no request is counted or logged.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402
    BENCH,
    PYTHON,
    Server,
    Settings,
    Wrk,
    WrkCase,
    in_turns,
    log,
    paired,
    reset_stores,
    start_tessera,
    tessera_env,
    write_deployment,
)

PORT, EMPTY_PORT, NONE_PORT, BARE = 4410, 4411, 4412, 4413
PG_DB, REDIS_DB = "tessera_bench_middleware", 10
DOCUMENTS = {"discovery": "/realms/bench/.well-known/openid-configuration",  # 4c
             "jwks": "/realms/bench/.well-known/jwks.json"}  # 4d
VARIANTS = {"default": (PORT, "idp serve (default)"), "empty": (EMPTY_PORT, "an empty middleware"),
            "none": (NONE_PORT, "no middleware")}


def serve_variant(config_path: str, port: int, variant: str) -> None:
    """Serve `create_app`'s application on `port`, its middleware list changed (`variant`)."""
    import uvloop
    from aiohttp import web

    from engine.cli_support import load_or_exit
    from engine.plugins import Plugins
    from engine.web import server
    from engine.web.app import create_app

    plugins = Plugins()
    app = create_app(load_or_exit(config_path, plugins), plugins=plugins, serving=True)

    @web.middleware
    async def passthrough(request: web.Request, handler):  # noqa: ANN001, ANN202
        return await handler(request)

    app.middlewares.clear()
    if variant == "empty":
        app.middlewares.append(passthrough)
    server.run(app, "127.0.0.1", port, loop=uvloop.new_event_loop())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--serve", nargs=3, metavar=("CONFIG", "PORT", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_variant(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    settings = Settings(warmup=2.0, seconds=args.seconds, runs=args.runs, connections=64, realms=1, quick=False)
    with tempfile.TemporaryDirectory(prefix="tessera-middleware-") as temp:
        workdir = Path(temp)
        directory = workdir / "deployment"
        write_deployment(directory, ["bench"], PORT, database=PG_DB, redis_db=REDIS_DB)
        reset_stores(PG_DB, REDIS_DB)
        env = tessera_env()
        servers: list[Server] = []
        try:
            default, _ready = start_tessera(directory, env, PORT)
            servers.append(default)
            for port, variant in ((EMPTY_PORT, "empty"), (NONE_PORT, "none")):
                variant_server = Server(variant, [PYTHON, __file__, "--serve", str(directory / "idp.yaml"),
                                                  str(port), variant],
                                        env=env, cwd=directory, log_path=workdir / f"{variant}.log", port=port)
                servers.append(variant_server)
                variant_server.wait_ready(f"http://127.0.0.1:{port}{DOCUMENTS['discovery']}")
            bare = Server("bare", [PYTHON, str(BENCH / "bare_server.py"), str(BARE)],
                          log_path=workdir / "bare.log", port=BARE)
            servers.append(bare)
            bare.wait_ready(f"http://127.0.0.1:{BARE}/")
            wrk = Wrk(workdir, settings)
            cases = {"bare": WrkCase("bare aiohttp JSON endpoint", wrk, f"http://127.0.0.1:{BARE}/")}
            for document, path in DOCUMENTS.items():
                for variant, (port, label) in VARIANTS.items():
                    cases[f"{document} {variant}"] = WrkCase(f"{document}, {label}", wrk,
                                                             f"http://127.0.0.1:{port}{path}")
            group = in_turns(cases, settings)
        finally:
            for each in servers:
                each.stop()
    for key, case in cases.items():
        if key != "bare":
            ratio = paired(group["bare"], group[key])
            rounds = " / ".join(f"{r:.2f}" for r in ratio["runs"])
            log(f"{case.name} / bare: {ratio['ratio']:.2f} (rounds {rounds}),"
                f" {statistics.median(r['rps'] for r in group[key]['runs']):,.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
