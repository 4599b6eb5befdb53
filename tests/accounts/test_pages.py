"""The pages (issue 5, rule 7): login, registration, verification, forgot/reset,
consent and error pages are accessible HTML (a language, a title, a main landmark,
labels for every field, one form each, no JavaScript needed), CSRF-protected, and
overridable per realm, with the realm's display name and logo."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.accounts.conftest import ACME, PASSWORD, build_idp, link_in, mail_yaml
from tests.accounts.helpers import flow_id, forgot, register
from tests.oauth.flow import authorize, submit_login


class Page(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.labels: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "label" and "for" in attributes:
            self.labels.add(attributes["for"])

    def all(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag]


def assert_accessible(html: str, *, forms: int = 1, csrf: bool = True) -> Page:
    page = Page(html)
    assert page.all("html")[0].get("lang") == "en"
    assert re.search(r"<title>[^<]+</title>", html)
    assert len(page.all("main")) == 1 and len(page.all("h1")) == 1
    assert not page.all("script"), "pages must work without JavaScript"
    assert len(page.all("form")) == forms
    for form in page.all("form"):
        assert form["method"] == "post"
    for field in page.all("input"):
        if field.get("type") != "hidden":
            assert field.get("id") in page.labels, f"no <label for> for {field}"
    if forms and csrf:
        assert any(f.get("name") == "csrf" and f.get("value") for f in page.all("input"))
    return page


async def test_every_account_page_is_accessible_and_csrf_protected(idp):
    """Rule 7: labels, one form each, no JS, a CSRF token on every form."""
    await idp.add_user(password=PASSWORD)
    resp, _ = await authorize(idp)
    login = resp.headers["Location"]
    flow = flow_id(login)
    assert_accessible(await (await idp.client.get(login)).text())
    for path in (f"/register?flow={flow}", "/register", f"/forgot-password?flow={flow}", "/verify-email/resend"):
        resp = await idp.client.get(path)
        assert resp.status == 200, path
        assert_accessible(await resp.text())
    assert_accessible(await (await register(idp, "p@example.com")).text())  # check your email (resend form)
    verify_link = link_in(await idp.last_mail("p@example.com"), "/verify-email")
    assert_accessible(await (await idp.client.get(verify_link)).text())
    assert_accessible(await (await forgot(idp, "alice@example.com")).text(), forms=0)
    reset_link = link_in(await idp.last_mail("alice@example.com"), "/reset-password")
    assert_accessible(await (await idp.client.get(reset_link)).text())
    invalid = await idp.client.get("/reset-password?token=" + "x" * 43)
    assert invalid.status == 400
    assert_accessible(await invalid.text(), forms=0)


async def test_consent_and_error_pages_are_html(idp):
    """Rule 7: the consent page (one form, two buttons) and a browser error are HTML."""
    await idp.add_user(password=PASSWORD)
    resp, _ = await authorize(idp, client_id="web", redirect_uri="https://web.example.com/cb", challenge=None)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)
    consent = await idp.client.get(resp.headers["Location"])
    assert_accessible(await consent.text())
    error = await idp.client.get("/authorize?client_id=nobody")
    assert error.status == 400 and error.content_type == "text/html"
    assert "<h1>" in await error.text()


async def test_locked_sign_in_shows_the_login_page_with_a_way_out(idp):
    """Rule 6 + 7: a lockout is explained on the sign-in page itself, with the reset link."""
    await idp.add_user(password=PASSWORD)
    resp, _ = await authorize(idp)
    for _ in range(20):
        await submit_login(idp, resp.headers["Location"], "alice@example.com", "wrong password")
    locked = await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)
    html = await locked.text()
    assert locked.status == 429 and 'role="alert"' in html
    assert_accessible(html)


async def test_pages_show_the_realm_display_name_and_logo(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Rule 7: `display_name` and `logo_url` realm settings appear on pages (logo with alt text)."""
    realm = ACME.replace("display_name: ACME\n", "display_name: ACME Rockets\nlogo_url: https://cdn.acme.test/logo.png\n")
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(tmp_path / "outbox"), outbox=tmp_path / "outbox", realms={"acme": realm})
    html = await (await idp.client.get("/register")).text()
    assert "Create your ACME Rockets account" in html
    assert '<img class="logo" src="https://cdn.acme.test/logo.png" alt="ACME Rockets">' in html


async def test_pages_are_overridable_per_realm(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Rule 7: a realm's `templates:` directory overrides any page; the rest stay default."""
    custom = tmp_path / "acme-templates"
    custom.mkdir()
    (custom / "register.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1>Join the ACME guild</h1>'
        '<form method="post" action="{{ base }}/register"><input type="hidden" name="csrf" value="{{ csrf }}">'
        '<label for="email">Guild email</label><input id="email" name="email" type="email">'
        '<label for="name">Name</label><input id="name" name="name">'
        '<label for="password">Secret</label><input id="password" name="password" type="password">'
        '<button>Join</button></form>{% endblock %}')
    realm = ACME.replace("display_name: ACME\n", "display_name: ACME\ntemplates: acme-templates\n")
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(tmp_path / "outbox"), outbox=tmp_path / "outbox", realms={"acme": realm})
    html = await (await idp.client.get("/register")).text()
    assert "Join the ACME guild" in html
    assert_accessible(html)
    resp = await register(idp, "guild@example.com")
    assert resp.status == 200 and "Check your email" in await resp.text()  # the default page
    assert "Reset your password" in await (await idp.client.get("/forgot-password")).text()


async def test_csrf_cookie_is_httponly_and_samesite(idp):
    """Rule 7: the CSRF cookie cannot be read by scripts nor sent by cross-site POSTs."""
    resp = await idp.client.get("/register")
    cookie = resp.cookies["tessera_csrf_acme"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"


async def test_pages_forbid_framing_and_caching(idp):
    """Rule 7: account pages are not cached and cannot be framed (clickjacking)."""
    resp = await idp.client.get("/register")
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
