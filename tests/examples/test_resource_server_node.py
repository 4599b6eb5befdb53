"""examples/resource-server-node (issue 21 §4): the videos API in Node verifies Tessera's
access tokens with jose's createRemoteJWKSet + jwtVerify (RFC 9068 §4: typ at+jwt, the
signature, iss, aud, exp; RFC 6750 §3 challenges), keeps verifying across `idp keys rotate`
(a refetch on an unknown kid), and lets only the SPA's origin read its answers (CORS)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from tests.examples.conftest import ExamplesIdp, jwt_header
from tests.examples.node_examples import node_api_fixture, start_node_api  # noqa: F401 (fixture node_api)

CLOCK_AHEAD = Path(__file__).parent / "clock_ahead.mjs"
OTHER_REALM_SECRET = "change-me-other-reports-secret-0123456789"  # tests/examples/other-realm.yaml


def get(url: str, token: str | None, **headers: str) -> httpx.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(url, headers=headers, timeout=10)


def challenge(response: httpx.Response) -> str:
    return response.headers.get("WWW-Authenticate", "")


def test_a_token_for_the_api_reads_videos(examples_idp: ExamplesIdp, node_api: str):
    response = get(f"{node_api}/videos", examples_idp.client_token("reports"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [v["id"] for v in body["videos"]][:2] == ["v1", "v2"]
    assert body["client_id"] == "reports" and body["sub"] == "reports" and "videos.read" in body["scope"].split()


def test_missing_wrong_audience_wrong_realm_and_forged_tokens_are_refused(examples_idp: ExamplesIdp, node_api: str):
    missing = get(f"{node_api}/videos", None)
    assert missing.status_code == 401
    assert challenge(missing) == 'Bearer realm="videos-api"'  # RFC 6750 §3.1: no error code without a token

    wrong_audience = get(f"{node_api}/videos", examples_idp.client_token("billing"))  # aud webhooks.shop
    assert wrong_audience.status_code == 401, wrong_audience.text
    assert 'error="invalid_token"' in challenge(wrong_audience)
    assert "aud" in wrong_audience.json()["error_description"]

    other = examples_idp.client_token("reports", issuer=examples_idp.other_issuer, secret=OTHER_REALM_SECRET)
    assert jwt_header(other)["typ"] == "at+jwt"  # a real access token, only of another realm
    wrong_realm = get(f"{node_api}/videos", other)
    assert wrong_realm.status_code == 401 and wrong_realm.json()["error"] == "invalid_token"

    head, payload, signature = examples_idp.client_token("reports").split(".")
    forged = get(f"{node_api}/videos", f"{head}.{payload}.{signature[:-6]}AAAAAA")
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    none = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).decode().rstrip("=")
    unsigned = get(f"{node_api}/videos", f"{none}.{payload}.")  # RFC 8725 §3.1: never alg none
    assert unsigned.status_code == 401


def test_a_missing_scope_is_403_insufficient_scope(examples_idp: ExamplesIdp, node_api: str):
    """RFC 6750 §3.1: `reports` may read (videos.read) but not upload (videos.write)."""
    token = examples_idp.client_token("reports")
    upload = httpx.post(f"{node_api}/videos", json={"title": "x"}, headers={"Authorization": f"Bearer {token}"})
    assert upload.status_code == 403, upload.text
    assert 'error="insufficient_scope"' in challenge(upload) and 'scope="videos.write"' in challenge(upload)


def test_an_expired_token_is_refused(examples_idp: ExamplesIdp, start_example, node_api: str):
    """RFC 7519 §4.1.4: the same token, accepted now, is refused by the same server whose
    clock runs an hour ahead (the realm's access tokens live 10 minutes)."""
    token = examples_idp.client_token("reports")
    assert get(f"{node_api}/videos", token).status_code == 200
    later = start_node_api(examples_idp, start_example, name="resource-server-node-later",
                           port=examples_idp.port(8084),  # free in this test: no gateway runs
                           env={"NODE_OPTIONS": f"--import={CLOCK_AHEAD.as_uri()}", "CLOCK_OFFSET_SECONDS": "3600"})
    expired = get(f"{later}/videos", token)
    assert expired.status_code == 401, expired.text
    assert 'error="invalid_token"' in challenge(expired) and "expired" in expired.json()["error_description"]


def test_it_keeps_verifying_across_a_key_rotation(examples_idp: ExamplesIdp, start_example):
    """`idp keys rotate` twice (a `next` key, then active once published for
    verifier_cache_ttl, 1 s on the test server): the running API verifies tokens of the new
    key (jose refetches the JWKS for an unknown kid, at most once a second here) and still
    those of the retiring key."""
    api = start_node_api(examples_idp, start_example, env={"JWKS_COOLDOWN_SECONDS": "1"})
    before = examples_idp.client_token("reports")
    assert get(f"{api}/me", before).json()["kid"] == jwt_header(before)["kid"]  # the JWKS is cached now
    after = examples_idp.client_token_after_rotation("reports")
    response = get(f"{api}/me", after)
    assert response.status_code == 200, response.text
    assert response.json()["kid"] == jwt_header(after)["kid"]
    assert get(f"{api}/videos", before).status_code == 200  # the retiring key still verifies


def test_only_the_spa_origin_may_read_its_answers(examples_idp: ExamplesIdp, node_api: str):
    """Fetch standard CORS: a preflight from the SPA's origin is allowed, another origin is not."""
    spa = examples_idp.url(5173)
    preflight = httpx.options(f"{node_api}/videos", headers={
        "Origin": spa, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == spa
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    answer = get(f"{node_api}/videos", examples_idp.client_token("reports"), Origin=spa)
    assert answer.headers["Access-Control-Allow-Origin"] == spa

    evil = "http://evil.example"
    refused = httpx.options(f"{node_api}/videos", headers={"Origin": evil, "Access-Control-Request-Method": "GET"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Origin" not in get(f"{node_api}/videos", None, Origin=evil).headers
