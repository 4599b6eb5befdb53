"""A job with no user (a nightly report): it gets its own access token by client
credentials (RFC 6749 §4.4) for the videos API (RFC 8707 `resource`) and calls the API.
Authlib's client fetches the token, attaches it, and fetches a new one when it expires.

    python examples/service-to-service/report.py

Settings (environment): ISSUER (http://localhost:4000/realms/examples), CLIENT_ID
(reports), REPORTS_CLIENT_SECRET (the realm's demo default), API_URL (http://localhost:8082).
"""

from __future__ import annotations

import asyncio
import os
import sys

from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from httpx2 import AsyncClient, HTTPError

ISSUER = os.environ.get("ISSUER", "http://localhost:4000/realms/examples").rstrip("/")
CLIENT_ID = os.environ.get("CLIENT_ID", "reports")
CLIENT_SECRET = os.environ.get("REPORTS_CLIENT_SECRET", "change-me-reports-secret-0123456789abcdef")
API_URL = os.environ.get("API_URL", "http://localhost:8082").rstrip("/")


async def main() -> int:
    async with AsyncClient(timeout=10) as http:
        metadata = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).raise_for_status().json()
    token_endpoint = metadata["token_endpoint"]
    async with AsyncOAuth2Client(CLIENT_ID, CLIENT_SECRET, token_endpoint=token_endpoint,
                                 grant_type="client_credentials", timeout=10) as client:
        try:
            await client.fetch_token(token_endpoint, grant_type="client_credentials", resource="videos-api")
        except OAuthError as exc:
            print(f"token request refused: {exc.error}: {exc.description}", file=sys.stderr)
            return 1
        response = await client.get(f"{API_URL}/videos")  # Authorization: Bearer <access token>
        if response.status_code != 200:
            print(f"the videos API answered {response.status_code}: {response.text}", file=sys.stderr)
            return 1
        videos = response.json()["videos"]
    print(f"{len(videos)} video(s):")
    for video in videos:
        print(f"- {video['title']} (owner {video['owner']})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except HTTPError as exc:
        print(f"cannot reach the IdP or the API: {exc}", file=sys.stderr)
        sys.exit(1)
