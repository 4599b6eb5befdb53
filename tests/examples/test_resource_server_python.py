"""examples/resource-server-python (issue 21 §4): an aiohttp API that verifies Tessera's
access tokens with joserfc (RFC 9068 §4: typ, signature, iss, aud, exp; RFC 6750 §3
challenges), caching the JWKS and refetching it on an unknown `kid` across `idp keys rotate`."""

from __future__ import annotations

import importlib.util
import time

import aiohttp
import httpx
import pytest

from tests.conftest import run_in_thread
from tests.examples.conftest import EXAMPLES, ExamplesIdp, jwt_header

SERVER = EXAMPLES / "resource-server-python" / "server.py"


@pytest.fixture
def api_process(python_videos_api):
    return python_videos_api


@pytest.fixture
def videos_api(python_videos_api) -> str:
    return f"http://127.0.0.1:{python_videos_api.port}"


def get(url: str, token: str | None) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=10)


def test_a_service_token_for_the_api_reads_videos(examples_idp: ExamplesIdp, videos_api: str):
    token = examples_idp.client_token("reports", resource="videos-api")
    response = get(f"{videos_api}/videos", token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["videos"][0]["title"] == "Welcome to Tessera"
    assert body["caller"]["client_id"] == "reports" and body["caller"]["sub"] == "reports"


def test_refusals_are_bearer_challenges(examples_idp: ExamplesIdp, videos_api: str):
    """RFC 6750 §3: no token → 401 without error; a bad one → 401 invalid_token; too little
    scope → 403 insufficient_scope."""
    missing = get(f"{videos_api}/videos", None)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer ")

    wrong_audience = get(f"{videos_api}/videos", examples_idp.client_token("billing"))  # aud webhooks.shop
    assert wrong_audience.status_code == 401
    assert 'error="invalid_token"' in wrong_audience.headers["WWW-Authenticate"]
    assert "aud" in wrong_audience.json()["error_description"]

    other = examples_idp.client_token("reports", issuer=examples_idp.other_issuer,
                                      secret="change-me-other-reports-secret-0123456789")
    wrong_realm = get(f"{videos_api}/videos", other)
    assert wrong_realm.status_code == 401 and wrong_realm.json()["error"] == "invalid_token"

    token = examples_idp.client_token("reports")
    head, payload, signature = token.split(".")
    tampered = get(f"{videos_api}/videos", f"{head}.{payload}.{signature[:-4]}AAAA")
    assert tampered.status_code == 401

    id_like = get(f"{videos_api}/videos", "eyJhbGciOiJub25lIn0.e30.")  # alg none, no typ
    assert id_like.status_code == 401

    write = httpx.post(f"{videos_api}/videos", json={"title": "x"}, headers={"Authorization": f"Bearer {token}"})
    assert write.status_code == 403 and 'error="insufficient_scope"' in write.headers["WWW-Authenticate"]


def test_an_expired_token_is_refused(examples_idp: ExamplesIdp):
    """RFC 7519 §4.1.4: the example's verifier, with its clock an hour ahead (the realm's
    tokens live 10 minutes), refuses the token it accepts now."""
    spec = importlib.util.spec_from_file_location("rs_verifier", SERVER.parent / "verifier.py")
    verifier = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verifier)
    token = examples_idp.client_token("reports")

    async def verify(offset: int):
        async with aiohttp.ClientSession() as session:
            check = verifier.AccessTokenVerifier(examples_idp.issuer, "videos-api", session,
                                                 now=lambda: int(time.time()) + offset)
            try:
                return await check.verify(token)
            except verifier.InvalidToken as exc:
                return exc

    assert run_in_thread(lambda: verify(0))["client_id"] == "reports"
    expired = run_in_thread(lambda: verify(3600))
    assert isinstance(expired, verifier.InvalidToken) and "exp" in str(expired)


def test_it_keeps_verifying_across_a_key_rotation(examples_idp: ExamplesIdp, videos_api: str, api_process):
    """`idp keys rotate` twice (a `next` key, then active once published for
    verifier_cache_ttl): tokens of the new key verify without restarting the API (refetch on
    an unknown kid), and tokens of the retiring key still do."""
    before = examples_idp.client_token("reports")
    assert get(f"{videos_api}/videos", before).status_code == 200  # the API caches the JWKS now
    after = examples_idp.client_token_after_rotation("reports")
    response = get(f"{videos_api}/videos", after)
    assert response.status_code == 200, response.text
    assert f"JWKS fetched (unknown kid {jwt_header(after)['kid']})" in api_process.output()
    assert get(f"{videos_api}/videos", before).status_code == 200
