"""A worker acting for a user (RFC 8693 token exchange): a job carries the user's access
token (issued to the app that queued the job); the worker, a confidential client of its
own, trades it for a token for the videos API that names the user (`sub`) and the worker
(`act`), with only the scope the job needs, then does the job. It never sees the user's
refresh token, and the exchanged token dies with the user's session or grant.

    echo '{"title": "holiday.mp4 (720p)", "subject_token": "<the user's access token>"}' \\
      | python examples/worker/worker.py

Settings (environment): ISSUER (http://localhost:4000/realms/examples), CLIENT_ID (worker),
WORKER_CLIENT_SECRET (the realm's demo default), API_URL (http://localhost:8082).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from httpx2 import AsyncClient, HTTPError

ISSUER = os.environ.get("ISSUER", "http://localhost:4000/realms/examples").rstrip("/")
CLIENT_ID = os.environ.get("CLIENT_ID", "worker")
CLIENT_SECRET = os.environ.get("WORKER_CLIENT_SECRET", "change-me-worker-secret-0123456789abcdef")
API_URL = os.environ.get("API_URL", "http://localhost:8082").rstrip("/")
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


async def run_job(job: dict) -> int:
    async with AsyncClient(timeout=10) as http:
        metadata = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).raise_for_status().json()
    async with AsyncOAuth2Client(CLIENT_ID, CLIENT_SECRET, timeout=10) as client:
        try:
            token = await client.fetch_token(
                metadata["token_endpoint"], grant_type=TOKEN_EXCHANGE,  # RFC 8693 §2.1
                subject_token=job["subject_token"], subject_token_type=ACCESS_TOKEN,
                requested_token_type=ACCESS_TOKEN, audience="videos-api", scope="videos.write")
        except OAuthError as exc:
            print(f"token exchange refused: {exc.error}: {exc.description}", file=sys.stderr)
            return 1
        print(f"acting for the user with a token for videos-api, scope {token.get('scope')}")
        response = await client.post(f"{API_URL}/videos", json={"title": job["title"]})
    if response.status_code != 201:
        print(f"the videos API answered {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    print(json.dumps(response.json()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(run_job(json.loads(sys.stdin.read()))))
    except HTTPError as exc:
        print(f"cannot reach the IdP or the API: {exc}", file=sys.stderr)
        sys.exit(1)
