"""The OpenID Connect provider (`type: google`, issuer overridable) against a fake Google:
OIDC Core §3.1 (code flow upstream, state/nonce/PKCE S256), §3.1.3.7 (ID token
validation), Discovery §4 and the JWKS cache with refetch on unknown `kid`; the end
result is always checked at Tessera's /token and /userinfo (issue 4, items 1 and 3)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from engine import events
from tests.federation.browser import (
    federated_login,
    login_and_userinfo,
    open_callback,
    start_at_login_page,
    through_upstream,
    tokens_and_userinfo,
)
from tests.federation.fakes import GOOGLE_CLIENT_ID, GOOGLE_SECRET, GoogleUser, rsa_key
from tests.oauth.conftest import jwt_parts


async def nothing_stored(fed, email="gail@example.com", sub="google-1001") -> bool:
    durable = fed.services.durable
    return (await durable.get_user_by_email("acme", email) is None
            and await durable.find_identity("acme", fed.google.issuer, sub) is None)


async def failed_callback(fed):
    """Run a login whose callback must fail; return the callback's response."""
    fed.idp.client.session.cookie_jar.clear()
    upstream, _ = await start_at_login_page(fed, "google")
    return await open_callback(fed, await through_upstream(fed, upstream))


async def test_first_login_provisions_a_user(fed):
    """Seed "Federation mapping": no identity yet and no user with the email → provision,
    `email_verified` as Google says; profile claims reach Tessera's ID token and /userinfo."""
    tokens, info = await login_and_userinfo(fed)
    assert info["email"] == "gail@example.com" and info["email_verified"] is True
    assert info["name"] == "Gail Google" and info["picture"] == "https://lh3.example/gail.png"
    _, id_claims = jwt_parts(tokens["id_token"])
    assert id_claims["sub"] == info["sub"] and id_claims["name"] == "Gail Google"
    assert id_claims["iss"] == fed.idp.issuer  # Tessera's own tokens, never Google's
    link = await fed.services.durable.find_identity("acme", fed.google.issuer, "google-1001")
    assert link is not None and link.user_id == info["sub"] and link.provider_id == "google"
    types = [e.type for e in await fed.services.durable.list_events("acme")]
    assert events.USER_PROVISIONED in types and events.IDENTITY_LINKED in types and events.LOGIN in types


async def test_second_login_finds_the_same_user_and_updates_the_profile(fed):
    """(iss, sub) → external identity → the same user; profile claims are refreshed at login."""
    _, first = await login_and_userinfo(fed)
    fed.google.user = GoogleUser(name="Gail G. Renamed", picture="https://lh3.example/new.png")
    _, second = await login_and_userinfo(fed)
    assert second["sub"] == first["sub"]
    assert second["name"] == "Gail G. Renamed" and second["picture"] == "https://lh3.example/new.png"
    provisioned = [e for e in await fed.services.durable.list_events("acme") if e.type == events.USER_PROVISIONED]
    assert len(provisioned) == 1


async def test_upstream_request_carries_state_nonce_pkce_and_own_callback(fed):
    """Issue item 1/3: state is an opaque handle (not the client's state), nonce and PKCE S256
    go upstream, and the redirect URI is Tessera's own `{issuer}/login/google/callback`."""
    upstream, _ = await start_at_login_page(fed, "google", state="client-state-xyz")
    query = {k: v[0] for k, v in parse_qs(urlsplit(upstream).query).items()}
    assert query["redirect_uri"] == f"{fed.idp.issuer}/login/google/callback"
    assert query["state"] != "client-state-xyz" and len(query["state"]) >= 40
    assert query["nonce"] and query["nonce"] != "n-1"  # Tessera's own nonce, not the client's
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert "client-state-xyz" not in upstream and "localhost:3000" not in upstream


async def test_code_exchange_authenticates_with_the_client_secret(fed):
    """The upstream code is exchanged with client_secret_basic when discovery allows it
    (RFC 6749 §2.3.1) and with the PKCE verifier."""
    await login_and_userinfo(fed)
    request = fed.google.token_requests[-1]
    assert request["authorization"].startswith("Basic ")
    assert "client_secret" not in request["form"] and request["form"]["code_verifier"]


async def test_client_secret_post_when_discovery_lists_only_post(fed):
    """Discovery `token_endpoint_auth_methods_supported: [client_secret_post]` → secret in the form."""
    fed.google.auth_methods = ("client_secret_post",)
    await login_and_userinfo(fed)
    form = fed.google.token_requests[-1]["form"]
    assert (form["client_id"], form["client_secret"]) == (GOOGLE_CLIENT_ID, GOOGLE_SECRET)
    assert fed.google.token_requests[-1]["authorization"] is None


@pytest.mark.parametrize("claims, why", [
    ({"nonce": "not-the-nonce-we-sent"}, "wrong nonce (OIDC Core §3.1.3.7 #11)"),
    ({"aud": "someone-else.apps.googleusercontent.com"}, "wrong aud (§3.1.3.7 #3)"),
    ({"aud": ["someone-else", GOOGLE_CLIENT_ID], "azp": "someone-else"}, "azp not us (§3.1.3.7 #4-5)"),
    ({"iss": "https://evil.example"}, "wrong iss (§3.1.3.7 #2)"),
    ({"exp": -1}, "expired (§3.1.3.7 #9)"),
    ({"nonce": None}, "nonce missing"),
])
async def test_invalid_upstream_id_token_is_refused(fed, claims, why):
    """An ID token failing validation gives a readable error page, and nothing is stored."""
    if claims.get("exp") == -1:
        claims = {"exp": fed.clock.timestamp() - 3600, "iat": fed.clock.timestamp() - 7200}
    fed.google.id_token_claims = claims
    resp = await failed_callback(fed)
    assert resp.status == 502, why
    assert resp.content_type == "text/html" and "Google did not answer as expected" in await resp.text()
    assert "Location" not in resp.headers
    assert await nothing_stored(fed)


async def test_badly_signed_id_token_is_refused(fed):
    """§3.1.3.7 #6: the signature must verify with the upstream's published key of that kid."""
    fed.google.signing_key = rsa_key(2)  # a key nobody published…
    fed.google.signing_kid = rsa_key(0).kid  # …passed off under the published kid
    resp = await failed_callback(fed)
    assert resp.status == 502 and "Google did not answer as expected" in await resp.text()
    assert await nothing_stored(fed)


async def test_id_token_signed_with_an_unpublished_key_is_refused(fed):
    """An unknown kid makes Tessera look at the JWKS again; still unknown → refused."""
    fed.google.signing_key = rsa_key(2)
    resp = await failed_callback(fed)
    assert resp.status == 502 and await nothing_stored(fed)


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_alg_outside_the_allow_list_is_refused(fed, alg):
    """Only allow-listed algorithms verify: no `alg: none`, and no HS256 "signed" with a
    guessable secret (algorithm confusion)."""
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import OctKey

    from tests.oauth.conftest import b64url_json

    def forge(claims):
        if alg == "none":
            return b64url_json({"alg": "none", "kid": rsa_key(0).kid}) + "." + b64url_json(claims) + "."
        return jose_jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(b"s" * 32))

    fed.google.forge = forge
    resp = await failed_callback(fed)
    assert resp.status == 502 and await nothing_stored(fed)


async def test_unknown_kid_after_upstream_key_rotation_refetches_jwks(fed):
    """JWKS is cached (no fetch per login) and refetched on an unknown kid, so an upstream
    key rotation is picked up without a restart."""
    _, first = await login_and_userinfo(fed)
    _, again = await login_and_userinfo(fed)
    assert fed.google.jwks_fetches == 1 and fed.google.discovery_fetches == 1  # cached
    fed.google.rotate()
    fed.clock.advance(60)  # past the refetch cooldown, well inside the cache TTL
    _, rotated = await login_and_userinfo(fed)
    assert rotated["sub"] == first["sub"] == again["sub"]
    assert fed.google.jwks_fetches == 2


async def test_cache_expires_after_its_ttl(fed):
    """Discovery and JWKS are refetched once `cache_ttl` (default 1h) has passed."""
    await login_and_userinfo(fed)
    fed.clock.advance(3601)
    await login_and_userinfo(fed)
    assert fed.google.jwks_fetches == 2 and fed.google.discovery_fetches == 2


async def test_upstream_500_on_token_exchange_gives_an_error_page(fed, caplog):
    """Issue item 3: an upstream that fails gives a readable page, logs the cause, stores nothing."""
    fed.google.token_status = 500
    resp = await failed_callback(fed)
    html = await resp.text()
    assert resp.status == 502 and resp.content_type == "text/html"
    assert "Google sign-in is not working right now" in html and "Choose another way to sign in" in html
    assert "HTTP 500" in caplog.text  # the cause is in the log…
    assert "HTTP 500" not in html  # …not on the page
    assert await nothing_stored(fed)


async def test_the_flow_survives_an_upstream_failure(fed):
    """After an upstream failure the pending request is intact: the user can pick another way."""
    fed.google.token_status = 500
    resp = await failed_callback(fed)
    retry = [line for line in (await resp.text()).split('"') if "/login?flow=" in line][0]
    page = await fed.idp.client.get(retry.replace("&amp;", "&"))
    assert page.status == 200 and "Continue with Google" in await page.text()


async def test_discovery_down_gives_an_error_page_before_leaving(fed):
    """Upstream down at the start (discovery 503): a readable page, no redirect upstream."""
    fed.google.discovery_status = 503
    from tests.oauth.flow import authorize

    resp, _ = await authorize(fed.idp)
    flow_url = resp.headers["Location"].replace("/login?", "/login/google?")
    resp = await fed.idp.client.get(flow_url, allow_redirects=False)
    assert resp.status == 502 and "Google sign-in is not working right now" in await resp.text()


async def test_unreachable_upstream_gives_an_error_page(make_fed, unused_tcp_port_factory):
    """Upstream not listening at all: a readable page, not a hang or a bare 500."""
    fed = await make_fed(google_issuer=f"http://127.0.0.1:{unused_tcp_port_factory()}")
    from tests.oauth.flow import authorize

    resp, _ = await authorize(fed.idp)
    resp = await fed.idp.client.get(resp.headers["Location"].replace("/login?", "/login/google?"),
                                    allow_redirects=False)
    assert resp.status == 502 and resp.content_type == "text/html"


async def test_user_denies_consent_upstream(fed):
    """Upstream `error=access_denied` → `access_denied` back to the client, with its state."""
    fed.google.deny = True
    upstream, _ = await start_at_login_page(fed, "google", state="client-state")
    resp = await open_callback(fed, await through_upstream(fed, upstream))
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location.startswith("http://localhost:3000/callback?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["error"] == "access_denied" and query["state"] == "client-state"
    assert query["iss"] == fed.idp.issuer and "code" not in query
    assert await nothing_stored(fed)


async def test_hosted_domain_is_enforced_on_the_id_token(make_fed):
    """Google's `hd` request parameter only filters the account chooser: the `hd` claim of
    the ID token decides; an account outside the domain is denied to the client."""
    fed = await make_fed(google_extra="authorization_params: {hd: example.com}")
    resp = await failed_callback(fed)
    assert resp.status == 303 and "error=access_denied" in resp.headers["Location"]
    assert fed.google.authorize_requests[-1]["hd"] == "example.com"
    fed.google.id_token_claims = {"hd": "example.com"}
    _, info = await login_and_userinfo(fed)
    assert info["email"] == "gail@example.com"


async def test_email_verified_as_string_and_unverified_provisioning(fed):
    """An upstream that does not verify the email provisions a user *without* an email
    (issue 16 item 1: no account holds an address nobody proved); the string "true" counts
    as verified."""
    fed.google.user = GoogleUser(sub="g-2", email="new@example.com", email_verified=False)
    _, info = await login_and_userinfo(fed)
    assert "email" not in info
    fed.google.user = GoogleUser(sub="g-3", email="str@example.com", email_verified="true")
    _, info = await login_and_userinfo(fed)
    assert info["email_verified"] is True


async def test_sso_session_is_federated(fed):
    """The Tessera session started by a federated login serves the next /authorize
    without going upstream again (amr `fed`)."""
    code, verifier = await federated_login(fed)
    tokens, _ = await tokens_and_userinfo(fed, code, verifier)
    before = len(fed.google.authorize_requests)
    from tests.oauth.flow import authorize

    resp, _ = await authorize(fed.idp)
    assert resp.status == 303 and "code=" in resp.headers["Location"]
    assert len(fed.google.authorize_requests) == before
