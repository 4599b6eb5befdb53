"""Config as code on a running server (issue 6, item 2): `idp plan` against what the
server applied, `idp reload` / SIGHUP swapping the configuration in without a restart,
a broken configuration refused while the old one keeps serving, and a login started
before a reload finishing after it."""

from __future__ import annotations

import json
import logging
import signal

import httpx
import pytest

from tests.ops.browser import Browser, exchange, query_of
from tests.ops.conftest import add_user
from tests.ops.servers import APP_REDIRECT, OPS_REALM, free_port, idp_command, start_idp, wait_for, write_deployment

NEW_REDIRECT = "http://localhost:4444/cb"


def authorize_status(base: str, redirect_uri: str) -> int:
    response = httpx.get(f"{base}/authorize", params={
        "response_type": "code", "client_id": "app", "redirect_uri": redirect_uri, "scope": "openid",
        "state": "s", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})
    return response.status_code


def with_redirect(realm: str, uri: str) -> str:
    return realm.replace(f'redirect_uris: ["{APP_REDIRECT}"]\n    post_logout',
                         f'redirect_uris: ["{APP_REDIRECT}", "{uri}"]\n    post_logout', 1)


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    port = free_port()
    config = write_deployment(tmp_path, base_url=f"http://127.0.0.1:{port}",
                              durable="sqlite:///var/idp.sqlite3", ephemeral="memory://")
    add_user(config, "alice@example.com", monkeypatch)
    server = start_idp(tmp_path, port=port).wait_ready()
    yield tmp_path, server
    assert server.stop() == 0, server.output()[-3000:]


def test_reload_plan_and_refused_config(deployment):
    cwd, server = deployment
    base = server.url + "/realms/acme"
    realm_file = cwd / "realms" / "acme.yaml"
    browser = Browser()

    # A login begins before the reload...
    response, verifier = browser.authorize(base)
    assert response.status_code == 303 and "/login?" in response.headers["location"]
    login_location = response.headers["location"]
    assert authorize_status(base, NEW_REDIRECT) == 400  # not registered (yet): an error page, no redirect

    # `idp plan` shows the change against what the server applied; exit 2 for CI gates.
    assert idp_command("plan", cwd=cwd).returncode == 0
    realm_file.write_text(with_redirect(OPS_REALM, NEW_REDIRECT))
    plan = idp_command("plan", "-c", "idp.yaml", cwd=cwd)
    assert plan.returncode == 2, plan.stderr
    assert plan.stdout.splitlines() == [f"+ realms.acme.clients.app.redirect_uris: {NEW_REDIRECT}", "1 change(s)"]

    reload = idp_command("reload", cwd=cwd)
    assert reload.returncode == 0, reload.stderr
    wait_for(lambda: authorize_status(base, NEW_REDIRECT) == 303, 10, "the reloaded redirect URI")
    assert "configuration reloaded: 1 change(s)" in server.output()
    after = idp_command("plan", cwd=cwd)
    assert after.returncode == 0 and after.stdout.strip() == "no changes"

    # ...and finishes after it, on the same flow.
    login = browser.submit_login(base, login_location, "alice@example.com", "correct horse battery staple")
    assert login.status_code == 303 and login.headers["location"].startswith(APP_REDIRECT)
    code = query_of(login.headers["location"])["code"]
    assert exchange(base, code, verifier).status_code == 200

    # The reload is in the audit log.
    audit = idp_command("audit", "--realm", "acme", "--type", "config_reloaded", cwd=cwd)
    assert audit.returncode == 0, audit.stderr
    events = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [e["type"] for e in events] == ["config_reloaded"] and events[0]["realm"] == "acme"

    # A broken file: `idp reload` refuses to signal, and a SIGHUP sent anyway changes nothing.
    realm_file.write_text(with_redirect(OPS_REALM, NEW_REDIRECT) + "colour: red\n")
    refused = idp_command("reload", cwd=cwd)
    assert refused.returncode == 2 and "realms/acme.yaml:" in refused.stderr and "colour" in refused.stderr
    server.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in server.output(), 10, "the refusal in the log")
    refusals = [r for r in server.json_logs() if r["message"].startswith("reload refused")]
    assert refusals and all(r["level"] == "error" for r in refusals)
    assert any("colour" in r["message"] for r in refusals)
    assert authorize_status(base, NEW_REDIRECT) == 303  # the last good configuration keeps serving
    assert server.proc.poll() is None
    browser.close()


def test_sighup_reload_without_the_cli(deployment):
    """`kill -HUP` is enough: a realm added to realms/ is served after the signal."""
    cwd, server = deployment
    (cwd / "realms" / "beta.yaml").write_text("name: beta\nproviders: [{id: password, type: password}]\n")
    assert authorize_status(server.url + "/realms/beta", APP_REDIRECT) == 404
    server.signal(signal.SIGHUP)

    def beta_served() -> bool:
        return httpx.get(f"{server.url}/realms/beta/.well-known/openid-configuration").status_code == 200

    wait_for(beta_served, 10, "realm beta after SIGHUP")
    plan = idp_command("plan", cwd=cwd)
    assert plan.returncode == 0, plan.stdout + plan.stderr


# ------------------------------------------- any failure is a refusal (issue 23 item 4), in process

IN_PROCESS_REALM = """\
name: acme
display_name: {name}
providers: [{{id: password, type: password}}]
clients:
  - {{client_id: app, type: public, redirect_uris: ["https://app.example.com/cb"], scopes: [openid]}}
"""


@pytest.fixture
async def served(tmp_path, aiohttp_client):
    from engine.config import load_config
    from engine.plugins import Plugins
    from engine.web.app import create_app
    from engine.web.appkeys import SERVICES

    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(IN_PROCESS_REALM.format(name="Before"))
    (tmp_path / "idp.yaml").write_text("realms: realms/\nroot_realm: acme\n")
    plugins = Plugins()
    config = load_config(tmp_path / "idp.yaml", plugins.providers.settings_models())
    client = await aiohttp_client(create_app(config, plugins=plugins))
    return tmp_path, client, client.app[SERVICES]


def refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "engine.reload" and r.getMessage().startswith("reload refused")]


def reloads_counted(services, result: str) -> float:
    return services.metrics.registry.get_sample_value("config_reloads_total", {"result": result}) or 0.0


@pytest.mark.parametrize(("where", "error"), [
    ("load_config", RecursionError("maximum recursion depth exceeded")),
    ("build_runtime", RuntimeError("plugin exploded")),
    ("snapshot_text", MemoryError()),
], ids=["while-loading", "while-building", "while-comparing"])
async def test_an_unexpected_failure_is_refused_logged_counted_and_the_old_configuration_serves(
        served, caplog, monkeypatch, where, error):
    """Whatever goes wrong in a reload (here an exception nobody expected, injected where the
    configuration is loaded, built or compared) is one `reload refused: <reason>` line and one
    refused reload in the metric; nothing is swapped and the old configuration serves."""
    import engine.reload
    from engine.reload import reload_config

    cwd, client, services = served
    before = services.runtime

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine.reload, where, fail)
    (cwd / "realms" / "acme.yaml").write_text(IN_PROCESS_REALM.format(name="After"))
    caplog.set_level(logging.INFO, logger="engine.reload")
    assert await reload_config(services) is False
    [line] = refusals(caplog)
    assert line.levelno == logging.ERROR and type(error).__name__ in line.getMessage()
    assert "\n" not in line.getMessage() and line.exc_info is None  # one line, no traceback
    assert reloads_counted(services, "refused") == 1 and reloads_counted(services, "applied") == 0
    assert services.runtime is before
    page = await client.get("/login?client_id=app")  # the old configuration still answers
    assert page.status < 500
    response = await client.get("/.well-known/openid-configuration")
    assert response.status == 200


async def test_a_refused_configuration_is_one_line_and_a_good_one_is_counted(served, caplog):
    from engine.reload import reload_config

    cwd, client, services = served
    realm_file = cwd / "realms" / "acme.yaml"
    caplog.set_level(logging.INFO, logger="engine.reload")
    realm_file.write_text(IN_PROCESS_REALM.format(name="After") + "colour: red\nshade: blue\n")
    assert await reload_config(services) is False
    [line] = refusals(caplog)
    assert "2 problem(s)" in line.getMessage() and "colour" in line.getMessage() and "shade" in line.getMessage()
    assert services.runtime.realms["acme"].config.display_name == "Before"
    realm_file.write_text(IN_PROCESS_REALM.format(name="After"))
    assert await reload_config(services) is True
    assert services.runtime.realms["acme"].config.display_name == "After"
    assert reloads_counted(services, "refused") == 1 and reloads_counted(services, "applied") == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'config_reloads_total{result="refused"} 1.0' in metrics


async def test_a_reload_of_a_yaml_bomb_is_refused_in_one_line(served, caplog):
    """Issue 23 item 3 on a running server: a billion-laughs realm file is refused without
    expanding it, and the old configuration serves."""
    from engine.reload import reload_config

    cwd, client, services = served
    (cwd / "realms" / "acme.yaml").write_text("name: acme\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)))
    caplog.set_level(logging.INFO, logger="engine.reload")
    assert await reload_config(services) is False
    [line] = refusals(caplog)
    assert "acme.yaml:2: anchors and aliases are not allowed" in line.getMessage()
    assert services.runtime.realms["acme"].config.display_name == "Before"
