"""examples/mobile (issue 21 §8): the sample configuration for AppAuth passes `idp check`,
and the examples realm's `mobile` client (public, RFC 8252 §7.1 private-use scheme) gets
its code only with PKCE (RFC 7636; RFC 9700 §2.1.1)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.examples.conftest import EXAMPLES, REPO, ExamplesIdp, sign_in

REDIRECT = "com.example.videos:/oauth2redirect"


def test_the_sample_configuration_passes_idp_check():
    result = subprocess.run([sys.executable, "-m", "engine.cli", "check", "--config",
                             str(EXAMPLES / "mobile" / "idp.yaml")], capture_output=True, text=True, timeout=60,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "realm videos: issuer https://idp.example.com, 1 client(s)" in result.stdout


def test_the_app_gets_a_code_on_its_own_scheme_with_pkce(examples_idp: ExamplesIdp, page):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = {"response_type": "code", "client_id": "mobile", "redirect_uri": REDIRECT, "scope": "openid videos.read",
             "state": state}

    # Without PKCE the public client is refused (the error comes back to the app).
    without = httpx.get(f"{examples_idp.issuer}/authorize?{urlencode(query)}")
    assert without.status_code in (302, 303), without.text
    assert without.headers["Location"].startswith(REDIRECT + "?")
    assert parse_qs(urlsplit(without.headers["Location"]).query)["error"] == ["invalid_request"]

    # With PKCE: sign in, and the browser is sent to the app's scheme with a code.
    locations: list[str] = []
    page.on("response", lambda r: locations.append(r.headers.get("location", "")) if r.status in (302, 303) else None)
    page.goto(f"{examples_idp.issuer}/authorize?"
              + urlencode({**query, "code_challenge": challenge, "code_challenge_method": "S256"}))
    sign_in(page, examples_idp)
    page.click("button[value=allow]")  # a mobile app is asked for consent (its client has the default)
    deadline = 50
    while not any(loc.startswith(REDIRECT) for loc in locations) and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    to_app = [loc for loc in locations if loc.startswith(REDIRECT + "?")]
    assert to_app, locations
    params = parse_qs(urlsplit(to_app[-1]).query)
    assert params["state"] == [state]
    token = httpx.post(f"{examples_idp.issuer}/token", data={
        "grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": REDIRECT,
        "client_id": "mobile", "code_verifier": verifier})
    assert token.status_code == 200, token.text
    assert token.json()["token_type"].lower() == "bearer"
