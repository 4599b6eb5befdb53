"""The client credentials grant at the token endpoint (RFC 6749 §4.4, §5, RFC 8707,
RFC 9068 access tokens), through HTTP on both storage backends."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oauth.conftest import WEB_SECRET, WORKER_SECRET, basic_auth, jwt_parts

CC = {"grant_type": "client_credentials"}


async def token_request(idp, data, *, auth=("worker", WORKER_SECRET), path="/token"):
    headers = basic_auth(*auth) if auth else {}
    return await idp.client.post(path, data=data, headers=headers)


async def test_basic_auth_issues_an_access_token(idp):
    """RFC 6749 §4.4.3 and §2.3.1: client_secret_basic; §5.1 response, no refresh token."""
    response = await token_request(idp, CC)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "videos.read"
    assert body["expires_in"] == 600
    assert "refresh_token" not in body  # §4.4.3: a refresh token SHOULD NOT be included
    assert "id_token" not in body
    _header, claims = jwt_parts(body["access_token"])
    assert claims["sub"] == claims["client_id"] == "worker"
    assert claims["iss"] == idp.issuer


async def test_post_auth_issues_an_access_token(idp):
    """RFC 6749 §2.3.1: client_secret_post (credentials in the form body)."""
    response = await token_request(
        idp, {**CC, "client_id": "worker", "client_secret": WORKER_SECRET}, auth=None
    )
    assert response.status == 200
    assert (await response.json())["scope"] == "videos.read"


async def test_realm_path_serves_the_same_endpoint(idp):
    """RFC 6749 §3.2: the realm's token endpoint is also served under /realms/<name>."""
    response = await token_request(idp, CC, path=f"{idp.root}/token")
    assert response.status == 200


async def test_wrong_secret_is_invalid_client_with_challenge(idp):
    """RFC 6749 §5.2: failed client authentication → 401 invalid_client + WWW-Authenticate."""
    for kwargs in (
        {"data": CC, "auth": ("worker", "wrong")},
        {"data": {**CC, "client_id": "worker", "client_secret": "wrong"}, "auth": None},
    ):
        response = await token_request(idp, **kwargs)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert (await response.json())["error"] == "invalid_client"


async def test_missing_client_authentication_is_invalid_client(idp):
    """RFC 6749 §5.2: no client authentication included → invalid_client."""
    response = await token_request(idp, CC, auth=None)
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_client"


async def test_public_client_cannot_use_client_credentials(idp):
    """RFC 6749 §4.4: "MUST only be used by confidential clients": a public client cannot
    authenticate, so the request fails client authentication (§5.2 invalid_client)."""
    response = await token_request(idp, {**CC, "client_id": "spa"}, auth=None)
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_client"


async def test_confidential_client_without_the_grant_is_unauthorized(idp):
    """RFC 6749 §5.2: an authenticated client not allowed this grant → unauthorized_client."""
    response = await token_request(idp, CC, auth=("web", WEB_SECRET))
    assert response.status == 400
    assert (await response.json())["error"] == "unauthorized_client"


async def test_scope_must_be_a_subset_of_the_allowed_scopes(idp):
    """RFC 6749 §3.3 and §5.2: a scope beyond the client's → invalid_scope."""
    response = await token_request(idp, {**CC, "scope": "videos.read"})
    assert response.status == 200
    assert (await response.json())["scope"] == "videos.read"
    for scope in ("videos.read admin", "openid", "profile"):
        response = await token_request(idp, {**CC, "scope": scope})
        assert response.status == 400, scope
        assert (await response.json())["error"] == "invalid_scope"


async def test_audience_defaults_to_the_clients_audiences(idp):
    """RFC 9068 §2.2: `aud` names the resource servers the token is meant for."""
    body = await (await token_request(idp, CC)).json()
    assert jwt_parts(body["access_token"])[1]["aud"] == ["videos-api", "photos-api"]


async def test_resource_narrows_the_audience(idp):
    """RFC 8707 §2: `resource` among the client's audiences → `aud` is exactly it."""
    response = await token_request(idp, {**CC, "resource": "photos-api"})
    assert response.status == 200
    claims = jwt_parts((await response.json())["access_token"])[1]
    assert claims["aud"] == "photos-api"


async def test_unknown_resource_is_invalid_target(idp):
    """RFC 8707 §2: a resource the client may not get tokens for → invalid_target."""
    response = await token_request(idp, {**CC, "resource": "https://evil.example"})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_target"


async def test_access_token_is_an_at_jwt_verifiable_with_the_realm_jwks(idp):
    """RFC 9068 §2.1 (`typ: at+jwt`) and RFC 7517: the token verifies against the published
    JWKS of the realm, with an explicit algorithm list."""
    access_token = (await (await token_request(idp, CC)).json())["access_token"]
    jwks = await (await idp.client.get("/.well-known/jwks.json")).json()
    decoded = jwt.decode(access_token, KeySet.import_key_set(jwks), algorithms=["RS256", "EdDSA"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] in {key["kid"] for key in jwks["keys"]}
    claims = decoded.claims
    assert claims["iss"] == idp.issuer
    assert claims["client_id"] == "worker"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["jti"]


async def test_unsupported_grant_type(idp):
    """RFC 6749 §5.2: a grant type the server does not support → unsupported_grant_type."""
    response = await token_request(idp, {"grant_type": "password", "username": "a", "password": "b"})
    assert response.status == 400
    assert (await response.json())["error"] == "unsupported_grant_type"


async def test_missing_grant_type_is_invalid_request(idp):
    """RFC 6749 §5.2: a missing required parameter → invalid_request."""
    response = await token_request(idp, {"scope": "videos.read"})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_repeated_parameter_is_invalid_request(idp):
    """RFC 6749 §3.2: parameters MUST NOT be included more than once."""
    response = await idp.client.post(
        "/token", data="grant_type=client_credentials&scope=videos.read&scope=videos.read",
        headers={**basic_auth("worker", WORKER_SECRET),
                 "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_form_body_that_is_not_utf8_is_invalid_request(idp):
    """RFC 6749 Appendix B: form parameters are UTF-8; anything else is refused, not
    silently replaced."""
    response = await idp.client.post(
        "/token", data=b"grant_type=client_credentials&scope=videos.read%FF",
        headers={**basic_auth("worker", WORKER_SECRET), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_request" and "UTF-8" in body["error_description"]


async def test_json_body_is_accepted(idp):
    """RFC 6749 §4.4.2 parameters sent as a JSON object (the seed's examples do)."""
    response = await idp.client.post(
        "/token",
        json={"grant_type": "client_credentials", "client_id": "worker", "client_secret": WORKER_SECRET,
              "resource": "videos-api"},
    )
    assert response.status == 200
    claims = jwt_parts((await response.json())["access_token"])[1]
    assert claims["aud"] == "videos-api"


async def test_audience_parameter_names_one_resource_too(idp):
    """RFC 8707 §2: a request naming one target (`audience`, as some libraries spell
    `resource`) gets a token for that one audience; a target outside the client's
    audiences, or `resource` and `audience` naming different ones, is invalid_target."""
    response = await token_request(idp, {**CC, "audience": "photos-api"})
    assert response.status == 200, await response.text()
    assert jwt_parts((await response.json())["access_token"])[1]["aud"] == "photos-api"
    for extra in ({"audience": "https://evil.example"}, {"resource": "photos-api", "audience": "videos-api"}):
        refused = await token_request(idp, {**CC, **extra})
        assert refused.status == 400 and (await refused.json())["error"] == "invalid_target", extra
