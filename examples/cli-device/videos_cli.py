"""A command-line client that signs in with the device flow (RFC 8628): it prints a URL
and a code, the user approves on any browser, the CLI polls Tessera's token endpoint, and
keeps the refresh token in a file only its owner can read (0600). Later commands trade it
for a fresh access token (refresh tokens rotate: the file gets the new one).

    python examples/cli-device/videos_cli.py login      # prints the URL and the code, waits
    python examples/cli-device/videos_cli.py videos     # lists your videos
    python examples/cli-device/videos_cli.py logout     # revokes the refresh token, deletes the file

Settings (environment): ISSUER (http://localhost:4000/realms/examples), CLIENT_ID (cli),
API_URL (http://localhost:8082), VIDEOS_CLI_CREDENTIALS (~/.config/videos-cli/credentials.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from httpx2 import AsyncClient, HTTPError

ISSUER = os.environ.get("ISSUER", "http://localhost:4000/realms/examples").rstrip("/")
CLIENT_ID = os.environ.get("CLIENT_ID", "cli")
API_URL = os.environ.get("API_URL", "http://localhost:8082").rstrip("/")
CREDENTIALS = Path(os.environ.get("VIDEOS_CLI_CREDENTIALS", "~/.config/videos-cli/credentials.json")).expanduser()
SCOPE = "openid profile offline_access videos.read videos.write"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


async def metadata() -> dict:
    async with AsyncClient(timeout=10) as http:
        return (await http.get(f"{ISSUER}/.well-known/openid-configuration")).raise_for_status().json()


def oauth() -> AsyncOAuth2Client:
    # A public client: it authenticates with its client_id alone (RFC 6749 §2.3, RFC 8628 §3.4).
    return AsyncOAuth2Client(CLIENT_ID, token_endpoint_auth_method="none", scope=SCOPE, timeout=10)


def save(token: dict) -> None:
    """Only the refresh token is kept, in a file of mode 0600 in a directory of mode 0700."""
    CREDENTIALS.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(CREDENTIALS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file existed with a wider mode
    with os.fdopen(descriptor, "w") as file:
        json.dump({"issuer": ISSUER, "client_id": CLIENT_ID, "refresh_token": token["refresh_token"]}, file)


async def login() -> int:
    meta = await metadata()
    async with AsyncClient(timeout=10) as http:  # RFC 8628 §3.1: the device authorization request
        response = await http.post(meta["device_authorization_endpoint"], data={"client_id": CLIENT_ID, "scope": SCOPE})
    if response.status_code != 200:
        print(f"the device authorization request was refused: {response.text}", file=sys.stderr)
        return 1
    device = response.json()
    print(f"To sign in, open {device['verification_uri']} and enter the code {device['user_code']}", flush=True)
    if "verification_uri_complete" in device:
        print(f"(or open {device['verification_uri_complete']})", flush=True)
    interval, deadline = device.get("interval", 5), time.monotonic() + device["expires_in"]
    async with oauth() as client:
        while time.monotonic() < deadline:  # RFC 8628 §3.4-3.5: poll until the user decides
            await asyncio.sleep(interval)
            try:
                token = await client.fetch_token(meta["token_endpoint"], grant_type=DEVICE_CODE,
                                                 device_code=device["device_code"])
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 5
                    continue
                print(f"sign-in failed: {exc.error}", file=sys.stderr)  # access_denied, expired_token
                return 1
            save(token)
            userinfo = (await client.get(meta["userinfo_endpoint"])).json()
            print(f"Signed in as {userinfo.get('name') or userinfo['sub']}; credentials in {CREDENTIALS}")
            return 0
    print("sign-in failed: the code expired", file=sys.stderr)
    return 1


async def videos() -> int:
    if not CREDENTIALS.exists():
        print("not signed in: run `login` first", file=sys.stderr)
        return 1
    meta = await metadata()
    saved = json.loads(CREDENTIALS.read_text())
    async with oauth() as client:
        try:
            token = await client.refresh_token(meta["token_endpoint"], refresh_token=saved["refresh_token"])
        except OAuthError as exc:
            print(f"the session ended ({exc.error}): run `login` again", file=sys.stderr)
            return 1
        save({**saved, **token})  # the rotated refresh token replaces the used one
        response = await client.get(f"{API_URL}/videos")
    if response.status_code != 200:
        print(f"the videos API answered {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    for video in response.json()["videos"]:
        print(f"- {video['title']}")
    return 0


async def logout() -> int:
    if CREDENTIALS.exists():
        meta = await metadata()
        saved = json.loads(CREDENTIALS.read_text())
        async with oauth() as client:  # RFC 7009
            await client.revoke_token(meta["revocation_endpoint"], saved["refresh_token"],
                                      token_type_hint="refresh_token")
        CREDENTIALS.unlink()
    print("Signed out")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="the videos CLI (device flow sign-in)")
    parser.add_argument("command", choices=["login", "videos", "logout"])
    command = parser.parse_args().command
    try:
        return asyncio.run({"login": login, "videos": videos, "logout": logout}[command]())
    except HTTPError as exc:
        print(f"cannot reach the IdP or the API: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
