"""The sending side of a signed webhook: the billing service gets a short-lived access token
from Tessera whose `aud` is the receiver (client credentials, RFC 8707 `resource`), and
POSTs the event with it. The receiver verifies the token against Tessera's JWKS.

    python examples/webhook/sender.py '{"type": "invoice.paid", "invoice": "inv_1"}'

Settings (environment): ISSUER (http://localhost:4000/realms/examples), CLIENT_ID (billing),
BILLING_CLIENT_SECRET (the realm's demo default), RECEIVER_URL
(http://localhost:8085/webhooks/billing), RECEIVER_AUDIENCE (webhooks.shop).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from httpx2 import AsyncClient, HTTPError

ISSUER = os.environ.get("ISSUER", "http://localhost:4000/realms/examples").rstrip("/")
CLIENT_ID = os.environ.get("CLIENT_ID", "billing")
CLIENT_SECRET = os.environ.get("BILLING_CLIENT_SECRET", "change-me-billing-secret-0123456789abcdef")
RECEIVER_URL = os.environ.get("RECEIVER_URL", "http://localhost:8085/webhooks/billing")
RECEIVER_AUDIENCE = os.environ.get("RECEIVER_AUDIENCE", "webhooks.shop")


async def send(event: dict) -> int:
    async with AsyncClient(timeout=10) as http:
        metadata = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).raise_for_status().json()
    async with AsyncOAuth2Client(CLIENT_ID, CLIENT_SECRET, timeout=10) as client:
        try:
            await client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials",
                                     resource=RECEIVER_AUDIENCE)
        except OAuthError as exc:
            print(f"token request refused: {exc.error}: {exc.description}", file=sys.stderr)
            return 1
        response = await client.post(RECEIVER_URL, json=event)
    print(f"the receiver answered {response.status_code}: {response.text}")
    return 0 if response.status_code < 300 else 1


if __name__ == "__main__":
    payload = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"type": "invoice.paid", "invoice": "inv_1"}
    try:
        sys.exit(asyncio.run(send(payload)))
    except HTTPError as exc:
        print(f"cannot reach the IdP or the receiver: {exc}", file=sys.stderr)
        sys.exit(1)
