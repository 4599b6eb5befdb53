"""Per-realm overridable pages: a realm's `templates:` directory wins over the defaults,
for the login page and for the browser error page (RFC 6749 §4.1.2.1 errors that must not
redirect are shown as this page)."""

from __future__ import annotations

import textwrap

from engine.config import load_config
from engine.plugins import Plugins
from engine.reload import reload_config
from engine.web.app import create_app
from engine.web.appkeys import SERVICES


async def test_realm_templates_override_error_and_login_pages(tmp_path, aiohttp_client):
    (tmp_path / "realms").mkdir()
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "error.html").write_text("<p>ACME-BRANDED {{ message }} ({{ code }})</p>")
    (tmp_path / "brand" / "login.html").write_text("<p>ACME-LOGIN for {{ client_name }}</p>")
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent("""\
        name: acme
        templates: brand
        providers: [{id: password, type: password}]
        clients:
          - {client_id: app, type: public, redirect_uris: ["https://app/cb"], scopes: [openid]}
        """))
    (tmp_path / "idp.yaml").write_text("realms: realms/\nroot_realm: acme\n")
    plugins = Plugins()
    client = await aiohttp_client(create_app(load_config(tmp_path / "idp.yaml", plugins.providers.settings_models()),
                                             plugins=plugins))
    resp = await client.get("/authorize", params={"client_id": "app", "redirect_uri": "https://evil/cb"},
                            allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers
    body = await resp.text()
    assert "ACME-BRANDED redirect_uri is not registered for this client (invalid_request)" in body
    assert resp.headers["Cache-Control"] == "no-store"
    resp = await client.get("/authorize", params={"client_id": "app", "redirect_uri": "https://app/cb",
                                                  "response_type": "code", "scope": "openid",
                                                  "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                                                  "code_challenge_method": "S256"}, allow_redirects=False)
    login = await client.get(resp.headers["Location"])
    assert "ACME-LOGIN for app" in await login.text()
    # Read once per configuration (no file check per page): an edit applies with a reload.
    (tmp_path / "brand" / "login.html").write_text("<p>EDITED for {{ client_name }}</p>")
    assert "ACME-LOGIN for app" in await (await client.get(resp.headers["Location"])).text()
    assert await reload_config(client.app[SERVICES])
    assert "EDITED for app" in await (await client.get(resp.headers["Location"])).text()


# ------------------------------------------------- realm templates are input (issue 23 items 6 and 7)

def realm_app(tmp_path, extra: str = ""):
    (tmp_path / "realms").mkdir(exist_ok=True)
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent("""\
        name: acme
        providers: [{id: password, type: password}]
        clients:
          - {client_id: app, type: public, redirect_uris: ["https://app/cb"], scopes: [openid]}
        """) + extra)
    (tmp_path / "idp.yaml").write_text("realms: realms/\nroot_realm: acme\n")
    plugins = Plugins()
    return create_app(load_config(tmp_path / "idp.yaml", plugins.providers.settings_models()), plugins=plugins)


async def error_page(client):
    return await client.get("/authorize", params={"client_id": "app", "redirect_uri": "https://evil/cb"},
                            allow_redirects=False)


async def test_realm_templates_render_sandboxed(tmp_path, aiohttp_client, monkeypatch):
    """Server-side template injection (OWASP WSTG-INPV-18): a realm template cannot reach
    Python internals, so it cannot read the host's environment (Jinja2 SandboxedEnvironment)."""
    monkeypatch.setenv("TESSERA_CANARY", "canary-from-the-environment")
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "error.html").write_text(
        "<p>{{ cycler.__init__.__globals__.os.environ['TESSERA_CANARY'] }}</p>")
    client = await aiohttp_client(realm_app(tmp_path, "templates: brand\n"))
    resp = await error_page(client)
    assert "canary-from-the-environment" not in await resp.text()
    assert resp.status == 400  # the page falls back to the plain error page, not a 500


async def test_a_template_symlinked_out_of_the_configuration_directory_is_not_read(tmp_path, aiohttp_client):
    config_dir, outside = tmp_path / "config", tmp_path / "outside"
    (config_dir / "brand").mkdir(parents=True)
    outside.mkdir()
    (outside / "error.html").write_text("<p>READ FROM OUTSIDE {{ message }}</p>")
    (config_dir / "brand" / "error.html").symlink_to(outside / "error.html")
    (config_dir / "brand" / "login.html").write_text("<p>INSIDE {{ client_name }}</p>")
    client = await aiohttp_client(realm_app(config_dir, "templates: brand\n"))
    resp = await error_page(client)
    body = await resp.text()
    assert resp.status == 400 and "READ FROM OUTSIDE" not in body
    assert "redirect_uri is not registered" in body  # the engine's own error page instead


async def test_the_pages_csp_allows_exactly_the_realm_logos_origin(tmp_path, aiohttp_client):
    """Issue 23 item 6: an allowed `logo_url` also loads under the pages' CSP (CSP3 img-src)."""
    client = await aiohttp_client(realm_app(tmp_path, "logo_url: https://cdn.example.com:8443/acme/logo.png\n"))
    resp = await error_page(client)
    csp = resp.headers["Content-Security-Policy"]
    assert "img-src 'self' https://cdn.example.com:8443" in csp and "frame-ancestors 'none'" in csp
    assert 'src="https://cdn.example.com:8443/acme/logo.png"' in await resp.text()


async def test_a_same_origin_logo_needs_no_csp_change(tmp_path, aiohttp_client):
    client = await aiohttp_client(realm_app(tmp_path, "logo_url: /static/logo.png\n"))
    resp = await error_page(client)
    assert "img-src" not in resp.headers["Content-Security-Policy"]  # default-src 'self' covers it
    assert 'src="/static/logo.png"' in await resp.text()
