"""Discovery (OIDC Discovery 1.0 §3/§4, RFC 8414) and JWKS (RFC 7517), realm routing,
health probes, the error middleware (RFC 6749 §5.2)."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import KeySet


async def test_discovery_issuer_is_exact_and_endpoints_are_under_it(idp):
    """Discovery §4.3: the issuer in the document equals the URL it was fetched from."""
    for prefix, issuer in (("", idp.issuer), ("/realms/other", f"{idp.issuer}/realms/other")):
        resp = await idp.client.get(f"{prefix}/.well-known/openid-configuration")
        assert resp.status == 200
        doc = await resp.json()
        assert doc["issuer"] == issuer
        for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                    "introspection_endpoint", "revocation_endpoint", "end_session_endpoint"):
            assert doc[key].startswith(issuer + "/"), key
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["response_types_supported"] == ["code"]
        assert doc["authorization_response_iss_parameter_supported"] is True
        assert "RS256" in doc["id_token_signing_alg_values_supported"]


async def test_the_root_realm_has_one_issuer_and_is_not_served_under_realms(idp):
    """OIDC Discovery §4.3: the issuer is the URL the document is fetched under, so the root
    realm (issuer = base URL) is not also answered at /realms/<root> (issue 18 item 13);
    the 404 names where it is."""
    doc = await (await idp.client.get("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == idp.issuer
    for method, path in (("GET", "/.well-known/openid-configuration"), ("POST", "/token"), ("GET", "/authorize")):
        resp = await idp.client.request(method, "/realms/acme" + path)
        assert resp.status == 404
        body = await resp.text()
        assert "root realm" in body and idp.issuer in body
    other = await (await idp.client.get("/realms/other/.well-known/openid-configuration")).json()
    assert other["issuer"] == f"{idp.issuer}/realms/other"


async def test_discovery_and_jwks_are_cacheable_with_etag(idp):
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
        resp = await idp.client.get(path)
        etag = resp.headers["ETag"]
        assert "max-age=" in resp.headers["Cache-Control"]
        again = await idp.client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304


async def test_jwks_publishes_public_members_only_with_kid_alg_use(idp):
    """RFC 7517 §4: kid, alg, use; never a private member (d, p, q, dp, dq, qi)."""
    keys = (await (await idp.client.get("/jwks.json")).json())["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "EdDSA"}
    for key in keys:
        assert key["kid"] and key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)


async def test_tokens_verify_against_published_jwks(idp):
    """Every signing key the realm uses is in its JWKS."""
    minted = await idp.services.tokens.access_token(idp.realm(), idp.realm().clients["worker"],
                                                    subject="worker", scope="videos.read")
    keys = KeySet.import_key_set(await (await idp.client.get("/.well-known/jwks.json")).json())
    assert jwt.decode(minted.token, keys, algorithms=["RS256"]).claims["sub"] == "worker"


async def test_realms_have_distinct_keys(idp):
    acme = await (await idp.client.get("/jwks.json")).json()
    other = await (await idp.client.get("/realms/other/jwks.json")).json()
    assert not {k["kid"] for k in acme["keys"]} & {k["kid"] for k in other["keys"]}


async def test_unknown_realm_and_path_are_404_json(idp):
    resp = await idp.client.get("/realms/nope/.well-known/openid-configuration")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await idp.client.get("/no/such/path")
    assert resp.status == 404 and resp.content_type == "application/json"


async def test_health_and_readiness(idp):
    assert (await idp.client.get("/healthz")).status == 200
    resp = await idp.client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"


async def test_error_shape_is_rfc6749_json_no_store(idp):
    """RFC 6749 §5.2: JSON error with Cache-Control: no-store."""
    resp = await idp.client.post("/token", data={})
    assert resp.status == 400 and resp.headers["Cache-Control"] == "no-store"
    assert await resp.json() == {"error": "invalid_request", "error_description": "grant_type is required"}
