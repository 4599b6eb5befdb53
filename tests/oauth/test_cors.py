"""CORS (the Fetch standard, §3.2 "CORS protocol") on the endpoints a browser application
calls itself: discovery and JWKS for anyone; /token, /userinfo and /revoke for the
origins of the realm's clients (their redirect URIs' origins and `web_origins`). The
seed's SPA guide exchanges its code with `fetch()` from http://localhost:3000: without
these headers the browser would hide every answer from the page."""

from __future__ import annotations

import pytest

from tests.oauth.conftest import WORKER_SECRET, basic_auth

SPA_ORIGIN = "http://localhost:3000"  # the origin of the spa client's redirect URI
EVIL_ORIGIN = "https://evil.example"


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/jwks.json",
                                  "/realms/other/.well-known/jwks.json"])
async def test_public_documents_are_readable_from_any_origin(idp, path):
    response = await idp.client.get(path, headers={"Origin": EVIL_ORIGIN})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_same_origin_requests_get_no_cors_headers(idp):
    response = await idp.client.get("/.well-known/openid-configuration")
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_token_preflight_from_a_client_origin(idp):
    """Fetch §3.2.3: the preflight answer names the origin, the method and the headers."""
    response = await idp.client.options("/token", headers={
        "Origin": SPA_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "authorization"} <= allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers.getall("Vary")
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_token_answers_and_errors_are_readable_by_a_client_origin(idp):
    """The JSON error of RFC 6749 §5.2 must reach the page too, or it cannot show why."""
    response = await idp.client.post("/token", data={"grant_type": "authorization_code", "code": "nope",
                                                     "client_id": "spa", "redirect_uri": "x"},
                                     headers={"Origin": SPA_ORIGIN})
    assert response.status == 400
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "Origin" in response.headers.getall("Vary")
    assert (await response.json())["error"] == "invalid_grant"


async def test_other_origins_get_no_cors_headers_and_a_refused_preflight(idp):
    response = await idp.client.post("/token", data={"grant_type": "client_credentials"},
                                     headers={**basic_auth("worker", WORKER_SECRET), "Origin": EVIL_ORIGIN})
    assert response.status == 200  # CORS is not authorisation: the browser withholds the answer
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await idp.client.options("/token", headers={"Origin": EVIL_ORIGIN,
                                                            "Access-Control-Request-Method": "POST"})
    assert preflight.status == 403 and "Access-Control-Allow-Origin" not in preflight.headers
    assert EVIL_ORIGIN in (await preflight.json())["error_description"]


async def test_origins_are_per_realm(idp):
    """`other` has its own clients: an origin allowed there is not allowed elsewhere by it."""
    response = await idp.client.options("/realms/other/userinfo", headers={
        "Origin": SPA_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "GET" in response.headers["Access-Control-Allow-Methods"]


async def test_userinfo_and_revoke_allow_client_origins(idp):
    userinfo = await idp.client.get("/userinfo", headers={"Origin": SPA_ORIGIN})
    assert userinfo.status == 401 and userinfo.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "WWW-Authenticate" in userinfo.headers["Access-Control-Expose-Headers"]
    revoke = await idp.client.post("/revoke", data={"token": "x", "client_id": "spa"}, headers={"Origin": SPA_ORIGIN})
    assert revoke.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN


async def test_introspection_is_not_for_browsers(idp):
    response = await idp.client.options("/introspect", headers={"Origin": SPA_ORIGIN,
                                                                "Access-Control-Request-Method": "POST"})
    assert response.status == 405 and "Access-Control-Allow-Origin" not in response.headers


def test_allowed_origins_are_redirect_uri_origins_and_web_origins():
    """RFC 6454 §6.2 serialisation: lower case, default ports left out; app-claimed
    schemes (mobile redirect URIs) have no web origin."""
    from engine.config.models import Client
    from engine.web.cors import allowed_origins

    class Config:
        clients = [
            Client(client_id="a", type="public", web_origins=["http://localhost:5173"],
                   redirect_uris=["https://App.Example.com:443/cb", "com.example.app:/cb"]),
            Client(client_id="b", type="public", redirect_uris=["http://127.0.0.1:8080/cb"]),
        ]

    class Realm:
        config = Config()

    assert allowed_origins(Realm()) == {"https://app.example.com", "http://localhost:5173", "http://127.0.0.1:8080"}
