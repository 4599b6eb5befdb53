"""Where the client secret and users' tokens may go (issue 16, item 13).

An upstream's discovery document is input: the token, userinfo and JWKS endpoints it
names must be HTTPS (plain HTTP only on loopback, RFC 8252 §8.3) and on the issuer's
origin, unless the operator listed another origin in `allowed_endpoint_origins` (the
Google preset lists Google's own); OIDC Discovery §4.3 only pins the issuer, and RFC 6749
§2.3.1 sends the secret to "the token endpoint" the client trusts, so the trust is ours
to configure. Redirects are never followed when a secret or a token is sent (a 307 replays
a POST with its body and Authorization header elsewhere). Each refusal is the generic
upstream-failure page and a log line naming the refused endpoint; a second fake server
records that nothing reached it.

Fakes run on loopback over plain HTTP (allowed there); a different port is a different
origin (RFC 6454 §4)."""

from __future__ import annotations

import base64
import logging
import re
from html import unescape
from typing import Any

import pytest
from aiohttp import web

import tests.federation.conftest as federation
from engine.config import ConfigError, load_config
from engine.http import check_endpoint
from engine.plugins import Plugins
from engine.providers import UpstreamError
from tests.federation.browser import login_and_userinfo, open_callback, through_upstream
from tests.federation.fakes import GITHUB_SECRET, GOOGLE_SECRET, FakeGoogle
from tests.oauth.flow import authorize


class Recorder:
    """A foreign server: answers everything like a token endpoint and keeps what it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.record)
        return app

    async def record(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "headers": dict(request.headers),
                              "body": (await request.read()).decode(errors="replace")})
        return web.json_response({"access_token": "stolen", "token_type": "Bearer", "id_token": "x.y.z",
                                  "keys": []})


class SteeringGoogle(FakeGoogle):
    """A fake Google whose discovery document names other endpoints, or whose token
    endpoint redirects (knobs set by the test)."""

    endpoints: dict[str, str]
    token_redirect: str | None

    async def discovery(self, request: web.Request) -> web.Response:
        response = await super().discovery(request)
        document = __import__("json").loads(response.body)
        document.update(getattr(self, "endpoints", {}))
        return web.json_response(document)

    async def token(self, request: web.Request) -> web.Response:
        if getattr(self, "token_redirect", None):
            await request.read()
            return web.Response(status=307, headers={"Location": self.token_redirect})
        return await super().token(request)


@pytest.fixture
async def recorder(aiohttp_server) -> Recorder:
    recorder = Recorder()
    server = await aiohttp_server(recorder.app())
    recorder.url = f"http://{server.host}:{server.port}"
    return recorder


@pytest.fixture
async def steered(make_fed, monkeypatch):
    """A federation whose Google is a SteeringGoogle."""
    monkeypatch.setattr(federation, "FakeGoogle", SteeringGoogle)

    async def make(**options: str):
        return await make_fed(**options)

    return make


async def click_google(fed):
    """/authorize, then "Continue with Google": the response to the click."""
    fed.idp.client.session.cookie_jar.clear()
    resp, _ = await authorize(fed.idp)
    assert resp.status == 303, await resp.text()
    html = await (await fed.idp.client.get(resp.headers["Location"], allow_redirects=False)).text()
    button = re.search(r'href="([^"]*/login/google\?flow=[^"]+)"', html)
    assert button, html
    return await fed.idp.client.get(unescape(button.group(1)), allow_redirects=False)


def refusals(caplog, endpoint: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and endpoint in r.getMessage()]


async def assert_upstream_failure_page(response) -> None:
    html = await response.text()
    assert response.status == 502, (response.status, html[:500])
    assert "sign-in is not working right now" in html
    assert GOOGLE_SECRET not in html


@pytest.mark.parametrize("endpoint", ["token_endpoint", "jwks_uri"])
async def test_foreign_endpoint_in_discovery_is_refused_and_gets_nothing(steered, recorder, caplog, endpoint):
    fed = await steered()
    fed.google.endpoints = {endpoint: recorder.url + "/steal"}
    caplog.set_level(logging.WARNING)
    await assert_upstream_failure_page(await click_google(fed))
    assert refusals(caplog, recorder.url + "/steal"), [r.getMessage() for r in caplog.records]
    assert recorder.requests == []
    assert fed.google.authorize_requests == []  # the user was never sent upstream


async def test_foreign_userinfo_endpoint_is_refused_when_userinfo_is_read(steered, recorder, caplog):
    fed = await steered(google_extra="userinfo: true\n")
    fed.google.endpoints = {"userinfo_endpoint": recorder.url + "/userinfo"}
    caplog.set_level(logging.WARNING)
    await assert_upstream_failure_page(await click_google(fed))
    assert refusals(caplog, recorder.url + "/userinfo")
    assert recorder.requests == []


async def test_listed_origin_is_allowed(steered, recorder):
    """The operator's `allowed_endpoint_origins` extends the trust: the JWKS may live there."""
    fed = await steered(google_extra=f"allowed_endpoint_origins: ['{recorder.url}']\n")
    fed.google.endpoints = {"userinfo_endpoint": recorder.url + "/userinfo"}  # not read: userinfo off
    _, info = await login_and_userinfo(fed)
    assert info["email"] == "gail@example.com"
    assert recorder.requests == []


async def test_token_endpoint_redirect_is_not_followed_with_the_secret(steered, recorder, caplog):
    """Before: aiohttp followed the 307 and re-sent the POST, client secret included."""
    fed = await steered()
    fed.google.token_redirect = recorder.url + "/token"
    caplog.set_level(logging.WARNING)
    fed.idp.client.session.cookie_jar.clear()
    response = await click_google(fed)
    assert response.status == 303
    callback = await open_callback(fed, await through_upstream(fed, response.headers["Location"]))
    await assert_upstream_failure_page(callback)
    assert recorder.requests == [], "the client secret was replayed to the redirect target"
    assert any("307" in message for message in refusals(caplog, "token"))
    secret_b64 = base64.b64encode(GOOGLE_SECRET.encode()).decode()[:16]
    assert not any(secret_b64 in r.getMessage() or GOOGLE_SECRET in r.getMessage() for r in caplog.records)


def test_google_preset_allows_googles_real_endpoints():
    """Google's discovery document (accounts.google.com) names oauth2.googleapis.com,
    openidconnect.googleapis.com and www.googleapis.com: allowed by default, others not."""
    from plugins.google import GOOGLE_ISSUER, GoogleSettings
    from plugins.google.provider import OidcProvider

    settings = GoogleSettings(id="google", type="google", client_id="c", client_secret="s")
    allowed = OidcProvider(settings, None).allowed_origins  # type: ignore[arg-type]
    for url in ("https://oauth2.googleapis.com/token", "https://openidconnect.googleapis.com/v1/userinfo",
                "https://www.googleapis.com/oauth2/v3/certs"):
        assert check_endpoint("token_endpoint", url, issuer=GOOGLE_ISSUER, allowed_origins=allowed) == url
    with pytest.raises(UpstreamError, match="evil.example"):
        check_endpoint("token_endpoint", "https://evil.example/token", issuer=GOOGLE_ISSUER, allowed_origins=allowed)
    # Another issuer on the same plugin gets no Google origins unless it lists them.
    okta = GoogleSettings(id="okta", type="google", client_id="c", client_secret="s", issuer="https://x.okta.com")
    assert OidcProvider(okta, None).allowed_origins == ()  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "ok"), [
    ("https://idp.example.com/token", True),
    ("https://IDP.example.com:443/token", True),  # the same origin, written differently
    ("http://idp.example.com/token", False),  # plain HTTP off loopback
    ("https://idp.example.com:8443/token", False),  # another port: another origin
    ("https://idp.example.com.evil.example/token", False),
    ("https://user:pw@idp.example.com/token", False),
    ("javascript:alert(1)", False),
])
def test_endpoint_rules(url, ok):
    if ok:
        assert check_endpoint("token_endpoint", url, issuer="https://idp.example.com") == url
    else:
        with pytest.raises(UpstreamError, match="refused token_endpoint"):
            check_endpoint("token_endpoint", url, issuer="https://idp.example.com")
    # Loopback may use plain HTTP (development upstreams, these tests' fakes).
    for host in ("127.0.0.1", "localhost", "[::1]"):
        check_endpoint("jwks_uri", f"http://{host}:9000/certs", issuer=f"http://{host}:9000")


@pytest.mark.parametrize(("provider", "setting", "value"), [
    ("google", "issuer", "http://accounts.example.com"),
    ("google", "allowed_endpoint_origins", "['http://oauth2.example.com']"),
    ("google", "allowed_endpoint_origins", "['https://oauth2.example.com/token']"),
    ("github", "base_url", "http://ghe.example.com"),
    ("github", "api_url", "http://ghe.example.com/api/v3"),
])
def test_insecure_upstream_urls_are_config_errors(tmp_path, provider, setting, value):
    extra = {"google": "client_id: c\n    client_secret: ${GOOGLE_SECRET}",
             "github": "client_id: c\n    client_secret: ${GITHUB_SECRET}"}[provider]
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(
        f"name: acme\nproviders:\n  - id: up\n    type: {provider}\n    {extra}\n    {setting}: {value}\n")
    (tmp_path / "idp.yaml").write_text("base_url: http://127.0.0.1:8080\nrealms: realms/\nroot_realm: acme\n")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(),
                    environ={"GOOGLE_SECRET": GOOGLE_SECRET, "GITHUB_SECRET": GITHUB_SECRET})
    problems = "\n".join(map(str, refused.value.problems))
    assert "acme.yaml:" in problems and setting in problems, problems
