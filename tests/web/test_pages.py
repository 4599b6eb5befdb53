"""Pages a browser can reach outside the realm pages (issue 18 item 8): `/`, unknown
paths and realms, `/favicon.ico` are styled HTML for a browser (it asks for `text/html`);
API clients keep JSON (RFC 6749 §5.2 errors)."""

from __future__ import annotations

from tests.oauth.flow import authorize

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_the_root_is_a_page_for_browsers_and_json_for_clients(idp):
    resp = await idp.client.get("/", headers=BROWSER)
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "<style>" in text and "ACME" in text  # the root realm's display name
    assert f"{idp.issuer}/.well-known/openid-configuration" in text
    api = await idp.client.get("/")
    assert (await api.json())["openid_configuration"] == f"{idp.issuer}/.well-known/openid-configuration"


async def test_an_unknown_path_or_realm_is_a_styled_page_for_a_browser(idp):
    for path in ("/no/such/page", "/realms/nope/login?flow=x"):
        resp = await idp.client.get(path, headers=BROWSER)
        text = await resp.text()
        assert resp.status == 404 and resp.content_type == "text/html", path
        assert "<style>" in text and "This page does not exist" in text
        assert "X-Request-Id" in resp.headers


async def test_api_clients_keep_json_errors(idp):
    resp = await idp.client.get("/no/such/page")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await idp.client.post("/realms/nope/token", data={"grant_type": "client_credentials"}, headers=BROWSER)
    assert resp.status == 404 and resp.content_type == "application/json"


async def test_the_favicon_is_an_icon_not_a_404(idp):
    resp = await idp.client.get("/favicon.ico")
    assert resp.status == 200 and resp.content_type == "image/svg+xml"


async def test_the_login_page_names_the_organisation_and_the_application(idp):
    """Issue 18 item 7: "Sign in to ACME" and the client's name."""
    resp, _ = await authorize(idp)
    page = await (await idp.client.get(resp.headers["Location"])).text()
    assert "<title>Sign in to spa · ACME</title>" in page  # the client has no name: its id
    assert "<h1>Sign in to ACME</h1>" in page and "to continue to" in page


async def test_the_consent_page_names_the_application_and_the_organisation(idp):
    """Issue 18 item 7: the client's `name` and the realm's display name."""
    from tests.oauth.conftest import WEB_REDIRECT

    await idp.add_user()
    resp, _ = await authorize(idp, client_id="web", redirect_uri=WEB_REDIRECT)
    from tests.oauth.flow import submit_login

    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    page = await (await idp.client.get(resp.headers["Location"])).text()
    assert "<h1>web wants to access your ACME account</h1>" in page
