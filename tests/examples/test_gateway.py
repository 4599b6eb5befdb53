"""examples/gateway-nginx (issue 21 §5): NGINX (Debian's, unprivileged, the shipped
nginx.conf rendered on free ports by `npm start`) in front of the Node videos API lets a
request through only when its `auth_request` to the verifier says yes, and the verifier
asks Tessera (RFC 7662 introspection as the client `gateway`)."""

from __future__ import annotations

import os
import shutil
import time

import httpx
import pytest

from tests.examples.conftest import ExamplesIdp, skip_or_fail
from tests.examples.node_examples import GATEWAY, installed, node, node_api_fixture  # noqa: F401 (fixture node_api)

OTHER_REALM_SECRET = "change-me-other-reports-secret-0123456789"  # tests/examples/other-realm.yaml
NGINX = os.environ.get("TESSERA_NGINX", "/usr/sbin/nginx")


@pytest.fixture
def gateway(examples_idp: ExamplesIdp, start_example, node_api: str, unused_tcp_port_factory) -> str:
    if not (os.path.exists(NGINX) or shutil.which(NGINX)):
        skip_or_fail(f"nginx not found at {NGINX}; apt-get install nginx-light (or set TESSERA_NGINX)")
    port = examples_idp.port(8084)
    start_example("gateway-nginx", [node(), "start.mjs"], cwd=installed(GATEWAY), port=port, env={
        "ISSUER": examples_idp.issuer, "GATEWAY_PORT": str(port), "API_PORT": str(examples_idp.port(8083)),
        "VERIFIER_PORT": str(unused_tcp_port_factory()), "GATEWAY_CLIENT_SECRET": examples_idp.secret("gateway"),
        "NGINX": NGINX})
    return f"http://127.0.0.1:{port}"


def get(url: str, token: str | None) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=10)


def refused_by_the_gateway(response: httpx.Response, status: int = 401) -> bool:
    """NGINX's answer (its error_page JSON), not the API's."""
    return (response.status_code == status and response.headers.get("Server") == "nginx"
            and response.json()["error_description"] == "refused by the gateway")


def test_a_valid_token_goes_through_to_the_api(examples_idp: ExamplesIdp, gateway: str):
    response = get(f"{gateway}/api/videos", examples_idp.client_token("reports"))
    assert response.status_code == 200, response.text
    assert response.headers["Server"] == "nginx"
    body = response.json()
    assert body["client_id"] == "reports" and [v["id"] for v in body["videos"]][:2] == ["v1", "v2"]


def test_missing_and_invalid_tokens_are_refused(examples_idp: ExamplesIdp, gateway: str):
    """RFC 6750 §3: the verifier's challenge reaches the client through NGINX."""
    missing = get(f"{gateway}/api/videos", None)
    assert refused_by_the_gateway(missing), missing.text
    assert missing.headers["WWW-Authenticate"] == "Bearer"

    garbage = get(f"{gateway}/api/videos", "not-a-token")
    assert refused_by_the_gateway(garbage), garbage.text
    assert 'error="invalid_token"' in garbage.headers["WWW-Authenticate"]

    head, payload, signature = examples_idp.client_token("reports").split(".")
    forged = get(f"{gateway}/api/videos", f"{head}.{payload}.{signature[:-6]}AAAAAA")
    assert refused_by_the_gateway(forged), forged.text

    wrong_audience = get(f"{gateway}/api/videos", examples_idp.client_token("billing"))  # aud webhooks.shop
    assert refused_by_the_gateway(wrong_audience), wrong_audience.text
    assert "not for this API" in wrong_audience.headers["WWW-Authenticate"]

    other_realm = examples_idp.client_token("reports", issuer=examples_idp.other_issuer, secret=OTHER_REALM_SECRET)
    wrong_realm = get(f"{gateway}/api/videos", other_realm)  # RFC 7662 §2.2: of another realm, not active
    assert refused_by_the_gateway(wrong_realm), wrong_realm.text

    assert get(f"{gateway}/elsewhere", examples_idp.client_token("reports")).status_code == 404


def test_a_revoked_token_is_refused_at_the_gateway(examples_idp: ExamplesIdp, gateway: str, node_api: str):
    """RFC 7009 + RFC 7662 §2.2: once revoked, introspection says inactive and NGINX refuses,
    while the API alone (local JWT verification) would still accept it until it expires:
    the refusal is the gateway's."""
    token = examples_idp.client_token("reports")
    assert get(f"{gateway}/api/videos", token).status_code == 200
    revoked = httpx.post(f"{examples_idp.issuer}/revoke", auth=("reports", examples_idp.secret("reports")),
                         data={"token": token, "token_type_hint": "access_token"}, timeout=10)
    assert revoked.status_code == 200, revoked.text
    refused = get(f"{gateway}/api/videos", token)
    for _ in range(20):  # revocation reaches every instance within 0.5 s
        if refused.status_code != 200:
            break
        time.sleep(0.1)
        refused = get(f"{gateway}/api/videos", token)
    assert refused_by_the_gateway(refused), refused.text
    assert get(f"{node_api}/videos", token).status_code == 200


def test_the_gateway_enforces_the_scope_of_each_method(examples_idp: ExamplesIdp, gateway: str):
    """RFC 6750 §3.1: `reports` (videos.read) may GET but not POST; the 403 is NGINX's."""
    token = examples_idp.client_token("reports")
    upload = httpx.post(f"{gateway}/api/videos", json={"title": "x"}, headers={"Authorization": f"Bearer {token}"})
    assert refused_by_the_gateway(upload, 403), upload.text
    assert upload.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="videos.write"'
