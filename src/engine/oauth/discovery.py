"""OpenID Connect Discovery 1.0 §3 and RFC 8414: the realm's provider metadata.

Advertises exactly what Tessera implements; the issuer is the exact string every token
carries in `iss`."""

from __future__ import annotations

from typing import Any

from engine.accounts import mfa
from engine.cached_body import CachedBody
from engine.exchange import Answer
from engine.realm import Realm

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials",
               "urn:ietf:params:oauth:grant-type:device_code",
               "urn:ietf:params:oauth:grant-type:token-exchange")
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
STANDARD_CLAIMS = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr", "acr"]
ACR_VALUES = list(mfa.ACR_VALUES)  # one factor, two factors (engine.accounts.mfa)


def metadata(realm: Realm) -> dict[str, Any]:
    issuer = realm.issuer
    config = realm.config
    claims = sorted({c for names in config.claims_for_scope().values() for c in names})
    grant_types = sorted({g for c in config.clients for g in c.grant_types if g in GRANT_TYPES})
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "end_session_endpoint": f"{issuer}/logout",
        "device_authorization_endpoint": f"{issuer}/device/code",  # RFC 8628 §4
        "backchannel_logout_supported": True,  # OIDC Back-Channel Logout 1.0 §2.1
        "backchannel_logout_session_supported": True,
        "scopes_supported": sorted(config.all_scopes()),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types or ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(config.signing.algs),
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS[:2],
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": STANDARD_CLAIMS + [c for c in claims if c not in STANDARD_CLAIMS],
        "prompt_values_supported": ["none", "login", "consent"],
        # OIDC Core §5.5: honoured for `acr` (a step-up, engine.accounts.mfa); other
        # claims asked for through it are given by scope as usual (§5.5.1: voluntary).
        "claims_parameter_supported": True,
        "acr_values_supported": ACR_VALUES,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "authorization_response_iss_parameter_supported": True,
        "ui_locales_supported": ["en"],
    }


PATH = "/.well-known/openid-configuration"
MAX_AGE = 300


def discovery_body(realm: Realm) -> CachedBody:
    """The realm's metadata, serialised once per realm object (a reload makes new ones)."""
    cached = realm.derived.get(PATH)
    if cached is None:
        cached = realm.derived[PATH] = CachedBody.of(metadata(realm))
    return cached


def discovery(realm: Realm, if_none_match: str | None) -> Answer:
    """The document, or 304 for a caller holding it (`If-None-Match`)."""
    return discovery_body(realm).answer(if_none_match, MAX_AGE)
