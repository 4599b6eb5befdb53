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
