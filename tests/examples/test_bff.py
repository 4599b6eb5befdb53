"""examples/bff (issue 21 §3): sign in through the BFF in Chromium, the browser holding
only an HttpOnly cookie (no token in any cookie, page or script-readable state), API calls
proxied with a refreshed, rotated token, and sign-out through RP-initiated logout."""

from __future__ import annotations

import re
import secrets
import sys

from tests.examples.conftest import EXAMPLES, ExamplesIdp, sign_in

APP = EXAMPLES / "bff" / "app.py"
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def start_bff(examples_idp: ExamplesIdp, start_example, python_videos_api, **env: str):
    port = examples_idp.port(8081)
    return start_example("bff", [sys.executable, str(APP)], port=port, env={
        "ISSUER": examples_idp.issuer, "PORT": str(port), "API_URL": f"http://127.0.0.1:{python_videos_api.port}",
        **env})


def test_sign_in_api_refresh_and_sign_out(examples_idp: ExamplesIdp, start_example, python_videos_api, page):
    # A margin longer than the realm's 10-minute access tokens: every API call refreshes.
    bff = start_bff(examples_idp, start_example, python_videos_api, REFRESH_MARGIN="601")
    home = examples_idp.url(8081, "/")
    page.goto(home)
    page.click("#sign-in")
    page.wait_for_url(f"{examples_idp.issuer}/**")
    sign_in(page, examples_idp)
    page.wait_for_url(home)
    assert "Signed in as Alice Example (alice@example.com)" in page.inner_text("#who")

    # RFC 9700 §2 / the seed's golden rule: no token reaches the browser.
    cookies = [c for c in page.context.cookies() if c["name"] == "bff_session"]
    assert len(cookies) == 1 and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Lax"
    assert "bff_session" not in page.evaluate("document.cookie")
    for cookie in page.context.cookies():
        assert not JWT.search(cookie["value"]), cookie["name"]
    assert not JWT.search(page.content())
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"

    for _ in range(2):  # two refreshes in a row: the rotated refresh token was kept
        page.click("#load")
        page.wait_for_function("document.getElementById('videos').textContent.length > 0")
        text = page.inner_text("#videos")
        assert text.startswith("200 ") and "Welcome to Tessera" in text, text
        assert '"client_id": "bff"' in text and not JWT.search(text)
        page.evaluate("document.getElementById('videos').textContent = ''")
    assert bff.output().count("refreshed the access token (the refresh token rotated: True)") == 2

    page.click("#sign-out")
    page.wait_for_url(home)
    assert page.locator("#sign-in").is_visible()
    assert page.evaluate("fetch('/api/videos').then(r => r.status)") == 401
    # The IdP session ended too: signing in again asks for the password.
    page.click("#sign-in")
    page.wait_for_url(f"{examples_idp.issuer}/**")
    assert page.locator("input[name=password]").is_visible()


def test_a_forged_callback_is_refused(examples_idp: ExamplesIdp, start_example, python_videos_api, page):
    """RFC 6749 §10.12: a callback whose state this browser did not start signs nobody in."""
    start_bff(examples_idp, start_example, python_videos_api)
    page.goto(examples_idp.url(8081, "/callback?code=stolen&state=forged"))
    assert "was not started here" in page.content()
    page.goto(examples_idp.url(8081, "/"))
    assert page.locator("#sign-in").is_visible()


def test_a_session_ended_at_the_idp_signs_the_bff_out(examples_idp: ExamplesIdp, start_example, python_videos_api,
                                                      page):
    """RFC 9700 §4.14: once the user's tokens are revoked at the IdP (`idp users
    revoke-sessions`), the BFF's next refresh fails and it answers 401 instead of serving."""
    email = f"bob-{secrets.token_hex(4)}@example.com"
    examples_idp.add_user(email, "Bob Example")
    start_bff(examples_idp, start_example, python_videos_api, REFRESH_MARGIN="601")
    home = examples_idp.url(8081, "/")
    page.goto(home)
    page.click("#sign-in")
    sign_in(page, examples_idp, email=email)
    page.wait_for_url(home)
    assert page.evaluate("fetch('/api/videos').then(r => r.status)") == 200
    examples_idp.cli("users", "revoke-sessions", "--realm", "examples", "--user", email)
    assert page.evaluate("fetch('/api/videos').then(r => r.status)") == 401
    page.reload()
    assert page.locator("#sign-in").is_visible()
