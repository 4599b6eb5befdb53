"""The example plugin as Tessera finds it once installed: through its `tessera` entry point
only (no change to `src/engine`, no import of it by Tessera), then a whole login through
a fake OAuth 2 server on loopback, checked at Tessera's /token and /userinfo.

"Installed" without pip: a `.dist-info` (METADATA + entry_points.txt generated from this
example's pyproject.toml) in a temporary directory on sys.path, next to the source
directory, which is all `importlib.metadata` (and so pluggy) looks at. Works offline.
The stores are the embedded ones (SQLite + memory): this tests the plugin, not storage.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import textwrap
import tomllib
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import web

EXAMPLE = Path(__file__).resolve().parents[1]
CLIENT_ID, CLIENT_SECRET = "tessera", "corp-secret-" + "c" * 20
APP_REDIRECT = "http://localhost:3000/callback"


@pytest.fixture
def installed(tmp_path, monkeypatch) -> dict:
    """The example made visible to importlib.metadata, as `pip install` would."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    sections = [f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items())
                for group, entries in project["entry-points"].items()]
    (dist_info / "entry_points.txt").write_text("\n".join(sections))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(site))
    return project


def test_pyproject_declares_one_tessera_entry_point():
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert project["entry-points"] == {"tessera": {"oauth2": "tessera_oauth2"}}


def test_not_installed_means_unknown_type():
    """Control: without the distribution, Tessera has no `oauth2` provider type."""
    from importlib.metadata import PackageNotFoundError, distribution

    from engine.plugins import Plugins

    try:
        distribution("tessera-oauth2-userinfo")
        pytest.skip("the example is really installed in this environment")
    except PackageNotFoundError:
        pass

    assert "oauth2" not in Plugins().providers.names()


def test_entry_point_registers_the_provider_type(installed):
    """DESIGN.md "Plugins": found through the `tessera` entry-point group, like in-tree ones."""
    from engine.plugins import Plugins

    plugins = Plugins()
    assert "oauth2" in plugins.providers.names()
    assert plugins.providers.get("oauth2").plugin == "oauth2"
    assert ("oauth2", installed["version"]) in plugins.names()
    assert {"password", "google", "github"} <= set(plugins.providers.names())


class FakeCorpSso:
    """An OAuth 2 server with non-OIDC member names in its "who am I" answer."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}
        self.tokens: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth/authorize", self.authorize)
        app.router.add_post("/oauth/token", self.token)
        app.router.add_get("/api/me", self.me)
        return app

    async def authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        code = secrets.token_hex(8)
        self.codes[code] = query
        location = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        return web.Response(status=302, headers={"Location": location})

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        query = self.codes.pop(form.get("code", ""), None)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
        if (query is None or form.get("client_secret") != CLIENT_SECRET
                or form.get("redirect_uri") != query["redirect_uri"] or challenge != query["code_challenge"]):
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = secrets.token_hex(12)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "bearer"})

    async def me(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "")[7:] not in self.tokens:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"id": 77, "username": "exa", "mail": "exa@corp.example",
                                  "mail_confirmed": True, "display": "Exa Ample"})


async def test_login_through_the_plugin_end_to_end(installed, tmp_path, aiohttp_client, aiohttp_server,
                                                   unused_tcp_port_factory):
    """A realm using `type: oauth2` logs a user in: login page button → upstream → callback
    → Tessera's code → /token → /userinfo with the mapped claims."""
    from engine.clock import FrozenClock
    from engine.config import load_config
    from engine.plugins import Plugins
    from engine.web.app import create_app

    sso = FakeCorpSso()
    server = await aiohttp_server(sso.app())
    upstream = f"http://{server.host}:{server.port}"
    port = unused_tcp_port_factory()
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent(f"""\
        name: acme
        providers:
          - id: corp
            type: oauth2
            display_name: Corp SSO
            client_id: {CLIENT_ID}
            client_secret: ${{CORP_SECRET}}
            authorization_url: {upstream}/oauth/authorize
            token_url: {upstream}/oauth/token
            userinfo_url: {upstream}/api/me
            scopes: [profile]
            subject_claim: id
            email_claim: mail
            email_verified_claim: mail_confirmed
            claims: {{name: display, nickname: username}}
        clients:
          - client_id: app
            type: public
            redirect_uris: ["{APP_REDIRECT}"]
            scopes: [openid, profile, email]
            consent: implicit
        """))
    (tmp_path / "idp.yaml").write_text(
        f"base_url: http://127.0.0.1:{port}\nrealms: realms/\nroot_realm: acme\n"
        f"storage: {{durable: 'sqlite:///{tmp_path}/idp.sqlite3', ephemeral: 'memory://'}}\n")
    plugins = Plugins()
    config = load_config(tmp_path / "idp.yaml", plugins.providers.settings_models(),
                         environ={"CORP_SECRET": CLIENT_SECRET})
    app = create_app(config, plugins=plugins, clock=FrozenClock(),
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    client = await aiohttp_client(app, server_kwargs={"port": port})

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    resp = await client.get("/authorize", allow_redirects=False, params={
        "response_type": "code", "client_id": "app", "redirect_uri": APP_REDIRECT, "scope": "openid profile email",
        "state": "st", "code_challenge": challenge, "code_challenge_method": "S256"})
    login_page = await (await client.get(resp.headers["Location"])).text()
    assert "Continue with Corp SSO" in login_page
    button = unescape(re.search(r'href="([^"]*/login/corp\?flow=[^"]+)"', login_page).group(1))
    resp = await client.get(button, allow_redirects=False)
    assert resp.headers["Location"].startswith(f"{upstream}/oauth/authorize?")
    resp = await client.session.get(resp.headers["Location"], allow_redirects=False)
    callback = urlsplit(resp.headers["Location"])
    assert callback.path == "/login/corp/callback"
    resp = await client.get(f"{callback.path}?{callback.query}", allow_redirects=False)
    assert resp.status == 303, await resp.text()
    answer = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}
    assert answer["state"] == "st"

    resp = await client.post("/token", data={"grant_type": "authorization_code", "code": answer["code"],
                                             "redirect_uri": APP_REDIRECT, "client_id": "app",
                                             "code_verifier": verifier})
    assert resp.status == 200, await resp.text()
    access_token = (await resp.json())["access_token"]
    info = await (await client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})).json()
    assert info["email"] == "exa@corp.example" and info["email_verified"] is True
    assert info["name"] == "Exa Ample" and info["nickname"] == "exa"
