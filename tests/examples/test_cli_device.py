"""examples/cli-device (issue 21 §7): RFC 8628 — the CLI prints the URL and the code, the
user approves in a real browser, the CLI polls and keeps only the refresh token, in a 0600
file; later commands refresh (rotation saved) and `logout` revokes it (RFC 7009)."""

from __future__ import annotations

import json
import re
import stat
import sys
import time

import httpx

from tests.examples.conftest import EXAMPLES, ExamplesIdp, sign_in

CLI = EXAMPLES / "cli-device" / "videos_cli.py"


def test_device_login_in_the_browser_then_videos_then_logout(examples_idp: ExamplesIdp, start_example,
                                                              python_videos_api, page, tmp_path):
    credentials = tmp_path / "config" / "videos-cli" / "credentials.json"
    env = {"ISSUER": examples_idp.issuer, "API_URL": f"http://127.0.0.1:{python_videos_api.port}",
           "VIDEOS_CLI_CREDENTIALS": str(credentials)}
    login = start_example("cli-login", [sys.executable, str(CLI), "login"], env=env)
    deadline = time.monotonic() + 30
    while not (match := re.search(r"open (\S+) and enter the code (\S+)", login.output())):
        assert time.monotonic() < deadline and login.process.poll() is None, login.output()
        time.sleep(0.2)
    url, code = match.groups()
    assert url == f"{examples_idp.issuer}/device"

    page.goto(url)
    page.fill("input[name=user_code]", code)
    page.click("button[type=submit]")
    sign_in(page, examples_idp)
    page.wait_for_selector("button[value=approve]")
    assert code in page.inner_text(".user-code")
    page.click("button[value=approve]")

    assert login.wait(60) == 0, login.output()
    assert "Signed in as Alice Example" in login.output()
    mode = stat.S_IMODE(credentials.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    saved = json.loads(credentials.read_text())
    assert set(saved) == {"issuer", "client_id", "refresh_token"}  # no access token kept
    first_refresh = saved["refresh_token"]

    videos = start_example("cli-videos", [sys.executable, str(CLI), "videos"], env=env)
    assert videos.wait() == 0, videos.output()
    assert "- Welcome to Tessera" in videos.output()
    assert json.loads(credentials.read_text())["refresh_token"] != first_refresh  # rotated and saved

    latest = json.loads(credentials.read_text())["refresh_token"]
    logout = start_example("cli-logout", [sys.executable, str(CLI), "logout"], env=env)
    assert logout.wait() == 0, logout.output()
    assert not credentials.exists()
    refused = httpx.post(f"{examples_idp.issuer}/token", data={
        "grant_type": "refresh_token", "refresh_token": latest, "client_id": "cli"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_a_denied_device_gets_no_token(examples_idp: ExamplesIdp, start_example, python_videos_api, page, tmp_path):
    """RFC 8628 §3.5: after the user denies, polling answers access_denied and nothing is saved."""
    credentials = tmp_path / "credentials.json"
    env = {"ISSUER": examples_idp.issuer, "VIDEOS_CLI_CREDENTIALS": str(credentials)}
    login = start_example("cli-login", [sys.executable, str(CLI), "login"], env=env)
    deadline = time.monotonic() + 30
    while not (match := re.search(r"\(or open (\S+)\)", login.output())):
        assert time.monotonic() < deadline and login.process.poll() is None, login.output()
        time.sleep(0.2)
    page.goto(match.group(1))  # verification_uri_complete: the code is filled in
    if page.locator("input[name=user_code]").count():
        page.click("button[type=submit]")
    if page.locator("input[name=password]").count():
        sign_in(page, examples_idp)
    page.click("button[value=deny]")
    assert login.wait(60) == 1, login.output()
    assert "sign-in failed: access_denied" in login.output()
    assert not credentials.exists()
