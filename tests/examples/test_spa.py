"""examples/spa (issue 21 §2): a Vite-built TypeScript app with oidc-client-ts, in real
Chromium against `idp serve`: sign-in by authorization code + PKCE (RFC 7636) as a public
client, a call to the Node videos API with the access token, silent renew with the refresh
token, rotated on every use (OAuth 2.0 Security BCP §4.14.2), and logout (token revocation,
RFC 7009, then OIDC RP-Initiated Logout 1.0). /token and /revoke answer the app's origin
through Tessera's CORS (the client's web_origins)."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.examples.conftest import ExamplesIdp, sign_in
from tests.examples.node_examples import SPA, installed, node, start_node_api

USER = "Object.entries(sessionStorage).find(([key]) => key.startsWith('oidc.user:'))?.[1] ?? null"


@pytest.fixture(scope="session")
def spa_build() -> None:
    """`npm run build` (tsc, then vite build) once per session: the tests serve what ships."""
    result = subprocess.run(["npm", "run", "build"], cwd=installed(SPA), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"npm run build failed:\n{result.stdout}{result.stderr}"


@pytest.fixture
def spa(examples_idp: ExamplesIdp, start_example, spa_build) -> str:
    """The Node API and the built SPA (`vite preview`) on the ports the realm registered."""
    api = start_node_api(examples_idp, start_example)
    port = examples_idp.port(5173)
    start_example("spa", [node(), "node_modules/vite/bin/vite.js", "preview", "--bypass-lock"], cwd=SPA, port=port,
                  env={"ISSUER": examples_idp.issuer, "API_URL": api, "PORT": str(port)})
    return examples_idp.url(5173)  # http://localhost:<port>, the registered origin


def stored_user(page) -> dict:
    raw = page.evaluate(USER)
    assert raw is not None, "oidc-client-ts stored no user"
    return json.loads(raw)


def refresh(idp: ExamplesIdp, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{idp.issuer}/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "spa"}, timeout=10)


def test_sign_in_call_the_api_renew_and_log_out(examples_idp: ExamplesIdp, spa: str, page):
    page.clock.install()  # the page's timers and Date, so the automatic renewal can be fast-forwarded
    seen: list[tuple[str, str]] = []  # (method, URL) of every request the page makes to Tessera
    page.on("request", lambda r: seen.append((r.method, r.url)) if r.url.startswith(examples_idp.issuer) else None)

    # Sign in: the app redirects to Tessera with PKCE, the user signs in, the code comes back.
    page.goto(spa)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{examples_idp.issuer}/**")
    sign_in(page, examples_idp)
    page.wait_for_url(f"{spa}/")
    page.get_by_text(f"Signed in as {examples_idp.user}").wait_for()
    query = parse_qs(urlsplit(next(url for _, url in seen if "/authorize?" in url)).query)
    assert query["client_id"] == ["spa"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{spa}/callback"] and "offline_access" in query["scope"][0].split()
    first = stored_user(page)
    assert first["refresh_token"].startswith("rt_") and first["token_type"].lower() == "bearer"

    # The API call with the access token, across origins (the API's CORS).
    page.get_by_role("button", name="Load my videos").click()
    page.wait_for_selector("#result[data-status='200']")
    assert "PKCE in five minutes" in page.text_content("#result")

    # Silent renew on the button: a refresh_token grant at /token; the refresh token rotates.
    page.get_by_role("button", name="Renew the access token").click()
    page.get_by_text("(renewed)").wait_for()
    second = stored_user(page)
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["profile"]["sub"] == first["profile"]["sub"]

    # Automatic renewal: oidc-client-ts renews a minute before the access token expires (10 min).
    page.evaluate("document.getElementById('status').textContent = 'waiting'")
    page.clock.fast_forward("09:10")
    page.get_by_text("(renewed)").wait_for()
    third = stored_user(page)
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])

    page.get_by_role("button", name="Load my videos").click()
    page.wait_for_function("document.getElementById('result').dataset.status === '200'")

    # Logout: revoke, then RP-initiated logout back to the app's post-logout URI.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{spa}/")
    page.get_by_text("Signed out").wait_for()
    assert page.evaluate(USER) is None
    assert ("POST", f"{examples_idp.issuer}/revoke") in seen  # revokeTokensOnSignout
    logout = parse_qs(urlsplit(next(url for _, url in seen if "/logout?" in url)).query)
    assert logout["id_token_hint"] == [third["id_token"]] and logout["post_logout_redirect_uri"] == [f"{spa}/"]

    # The rotated-away refresh tokens and the last one are all dead now (RFC 6749 §6: invalid_grant).
    for token in (first["refresh_token"], second["refresh_token"], third["refresh_token"]):
        answer = refresh(examples_idp, token)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
    # And Tessera's session is over: signing in again asks for the password.
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{examples_idp.issuer}/**")
    page.wait_for_selector("input[name=password]")


def test_a_refused_token_shows_as_a_refusal(examples_idp: ExamplesIdp, spa: str, page):
    """The API's 401 reaches the page (the API exposes its answer to the SPA's origin)."""
    page.goto(spa)
    page.get_by_role("button", name="Sign in").click()
    sign_in(page, examples_idp)
    page.get_by_text(f"Signed in as {examples_idp.user}").wait_for()
    user_key = page.evaluate("Object.keys(sessionStorage).find((key) => key.startsWith('oidc.user:'))")
    page.evaluate("""key => {
        const user = JSON.parse(sessionStorage.getItem(key));
        user.access_token = user.access_token.slice(0, -8) + 'AAAAAAAA';
        sessionStorage.setItem(key, JSON.stringify(user));
    }""", user_key)
    page.get_by_role("button", name="Load my videos").click()
    page.wait_for_selector("#result[data-status='401']")
    assert "invalid_token" in page.text_content("#result")
