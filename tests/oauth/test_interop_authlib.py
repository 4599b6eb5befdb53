"""Interop with a real third-party relying-party library (Authlib): discovery, code +
PKCE, ID-token validation (OIDC Core §3.1.3.7 incl. nonce and at_hash), userinfo,
refresh rotation with reuse detection, revocation, client credentials."""

from __future__ import annotations

import warnings
from urllib.parse import urlsplit

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as OAuth2Error
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.oauth.conftest import SPA_REDIRECT, WORKER_SECRET
from tests.oauth.flow import submit_login

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken


@pytest.fixture
async def metadata(idp):
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"{idp.issuer}/.well-known/openid-configuration")
        document = resp.json()
        keys = JsonWebKey.import_key_set((await http.get(document["jwks_uri"])).json())
    assert document["issuer"] == idp.issuer
    return document, keys


async def test_authlib_code_pkce_refresh_userinfo_revoke(idp, metadata):
    document, keys = metadata
    await idp.add_user(name="Alice")
    rp = AsyncOAuth2Client(client_id="spa", redirect_uri=SPA_REDIRECT, scope="openid profile email offline_access",
                           code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = "v" * 20 + "erifier-" + "x" * 30
    url, state = rp.create_authorization_url(document["authorization_endpoint"], code_verifier=verifier,
                                             nonce="nonce-authlib")
    parts = urlsplit(url)
    resp = await idp.client.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    callback = resp.headers["Location"]
    assert callback.startswith(SPA_REDIRECT)

    token = await rp.fetch_token(document["token_endpoint"], authorization_response=callback,
                                 code_verifier=verifier, state=state)
    claims = jwt.decode(token["id_token"], keys, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": document["issuer"]}},
                        claims_params={"nonce": "nonce-authlib", "client_id": "spa",
                                       "access_token": token["access_token"]})
    claims.validate(now=idp.clock.timestamp())
    assert claims["name"] == "Alice" and claims["email"] == "alice@example.com"

    userinfo = (await rp.get(document["userinfo_endpoint"])).json()
    assert userinfo["sub"] == claims["sub"] and userinfo["email"] == "alice@example.com"

    first_refresh = token["refresh_token"]
    renewed = await rp.refresh_token(document["token_endpoint"], refresh_token=first_refresh)
    assert renewed["refresh_token"] != first_refresh
    with pytest.raises(OAuth2Error) as caught:
        await rp.refresh_token(document["token_endpoint"], refresh_token=first_refresh)
    assert caught.value.error == "invalid_grant"
    with pytest.raises(OAuth2Error):  # reuse revoked the family, the successor too
        await rp.refresh_token(document["token_endpoint"], refresh_token=renewed["refresh_token"])
    await rp.aclose()


async def test_authlib_client_credentials_and_revocation(idp, metadata):
    document, _ = metadata
    rp = AsyncOAuth2Client(client_id="worker", client_secret=WORKER_SECRET, scope="videos.read",
                           token_endpoint_auth_method="client_secret_basic")
    token = await rp.fetch_token(document["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "videos.read"
    introspected = await rp.introspect_token(document["introspection_endpoint"], token=token["access_token"])
    assert introspected.json()["active"] is True
    await rp.revoke_token(document["revocation_endpoint"], token=token["access_token"],
                          token_type_hint="access_token")
    introspected = await rp.introspect_token(document["introspection_endpoint"], token=token["access_token"])
    assert introspected.json() == {"active": False}
    await rp.aclose()
