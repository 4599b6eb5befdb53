"""Where a request's time goes: the same Tessera app served with parts of the web stack
removed, measured one after the other (the "Where the time goes" table in BENCHMARKS.md).

    .venv/bin/python bench/stack_ab.py full noreq bare full+fastform

Variants (a diagnostic only, never a way to run Tessera): `full` is the app as `idp serve`
builds it; `noreq` drops the request middleware (request id, metrics, log context) and its
response hook; `bare` drops every middleware; `+fastform` parses form bodies with
`urllib.parse.parse_qsl` instead of `request.post()`. Server on core 0 (uvloop), wrk on
core 1, PostgreSQL + Redis, as in bench/bench.py.
"""

from __future__ import annotations

import gc
import logging
import shutil
import sys
from pathlib import Path

import bench as b


def serve(config: str, mode: str, extras: list[str]) -> None:
    import uvloop
    from aiohttp import web
    from frozenlist import FrozenList

    from engine.config import load_config
    from engine.plugins import Plugins
    from engine.web import middleware
    from engine.web.app import create_app

    logging.basicConfig(level=logging.WARNING)
    plugins = Plugins()
    app = create_app(load_config(config, plugins.providers.settings_models()), plugins=plugins)
    if mode in ("noreq", "bare"):
        app._middlewares = FrozenList([m for m in app._middlewares if m is not middleware.request_middleware])
        app.on_response_prepare.clear()
    if mode == "bare":
        app._middlewares = FrozenList([])
    if "fastform" in extras:
        _fast_forms()
    gc.collect()
    gc.freeze()
    web.run_app(app, host="127.0.0.1", port=b.TESSERA_PORT, access_log=None, print=None,
                loop=uvloop.new_event_loop())


def _fast_forms() -> None:
    from urllib.parse import parse_qsl

    import engine.oauth.introspect
    import engine.oauth.token
    from engine.errors import InvalidRequest
    from engine.oauth import params

    original = params.form_params

    async def form_params(request, *, allow_json=False, query=False):  # type: ignore[no-untyped-def]
        # `request` is an engine.exchange.Call (the core reads parameters from one)
        if request.method == "POST" and request.headers.get("Content-Type") == "application/x-www-form-urlencoded":
            found: dict[str, str] = {}
            for key, value in parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True):
                if key in found:
                    raise InvalidRequest(f"parameter {key} was sent more than once")
                found[key] = value
            return found
        return await original(request, allow_json=allow_json, query=query)

    engine.oauth.introspect.form_params = form_params  # type: ignore[attr-defined]
    engine.oauth.token.form_params = form_params  # type: ignore[attr-defined]


def main(specs: list[str]) -> None:
    directory = Path("/tmp/tessera-stack-ab")
    shutil.rmtree(directory, ignore_errors=True)
    b.write_deployment(directory, ["bench"], b.TESSERA_PORT)
    env = b.tessera_env()
    b.reset_stores()
    settings = b.Settings(warmup=1, seconds=3, runs=2, connections=64, realms=1, quick=False)
    wrk = b.Wrk(directory, settings)
    issuer = f"http://127.0.0.1:{b.TESSERA_PORT}/realms/bench"
    for spec in specs:
        mode, *extras = spec.split("+")
        server = b.Server(spec, [b.PYTHON, __file__, "--serve", str(directory / "idp.yaml"), mode, *extras],
                          env=env, cwd=directory, log_path=directory / "server.log", port=b.TESSERA_PORT)
        try:
            server.wait_ready(f"http://127.0.0.1:{b.TESSERA_PORT}/healthz")
            wrk.measure(f"{spec} discovery", f"{issuer}/.well-known/openid-configuration")
            auth = b.basic("svc-rs256", b.CLIENT_SECRET)
            tokens = [b.http_json("POST", f"{issuer}/token", {"grant_type": "client_credentials"}, auth)["access_token"]
                      for _ in range(200)]
            bodies = ["token=" + t for t in tokens]
            wrk.measure(f"{spec} introspect", f"{issuer}/introspect", b.post_script(bodies, auth))
            auth = b.basic("svc-es256", b.CLIENT_SECRET)
            wrk.measure(f"{spec} cc ES256", f"{issuer}/token", b.post_script(["grant_type=client_credentials"], auth))
        finally:
            server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main(sys.argv[1:] or ["full", "noreq", "bare"])
