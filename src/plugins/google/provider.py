"""An OpenID Connect upstream (OIDC Core §3.1, Discovery §4): Google by default, any other
issuer (Okta, Entra ID, Keycloak, another Tessera) by setting `issuer`.

- The discovery document and the JWKS are cached for `cache_ttl`; an ID token signed
  with an unknown `kid` triggers one JWKS refetch (key rotation upstream), at most once
  per `JWKS_REFETCH_COOLDOWN` so forged kids cannot make us hammer the upstream.
- state, nonce and PKCE S256 go upstream (made by the engine); the code is exchanged
  with `client_secret` (basic or post); the ID token is checked (§3.1.3.7): signature
  against the upstream JWKS with allow-listed algorithms, `iss`, `aud` (and `azp`),
  `exp`, `iat`, `nonce`, and Google's `hd` when a hosted domain is asked for.
"""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote, urlencode

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from engine import (
    AccessDenied,
    ExternalIdentity,
    ProviderContext,
    UpstreamError,
    check_endpoint,
    fetch_json,
    secure_url_problem,
)

log = logging.getLogger("plugins.google")

GOOGLE_ISSUER = "https://accounts.google.com"
# Where Google's discovery document sends the token, userinfo and JWKS requests: not the
# issuer's origin, so the Google preset trusts them unless the operator says otherwise.
GOOGLE_ENDPOINT_ORIGINS = (
    "https://oauth2.googleapis.com",
    "https://openidconnect.googleapis.com",
    "https://www.googleapis.com",
)
LEEWAY = 60  # seconds of clock skew tolerated on exp/iat
JWKS_REFETCH_COOLDOWN = 30
STANDARD_PROFILE_CLAIMS = (
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "locale", "zoneinfo",
)


def is_true(value: Any) -> bool:
    """`email_verified` as a boolean; some providers send the string "true"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


class OidcProvider:
    kind = "redirect"

    def __init__(self, settings: Any, context: ProviderContext):
        self.settings = settings
        self.context = context
        self.issuer = settings.issuer
        self._metadata: tuple[int, dict[str, Any]] | None = None  # (fetched at, document)
        self._jwks: tuple[int, KeySet] | None = None
        allowed = settings.allowed_endpoint_origins
        if allowed is None:
            allowed = GOOGLE_ENDPOINT_ORIGINS if settings.issuer == GOOGLE_ISSUER else ()
        self.allowed_origins: tuple[str, ...] = tuple(allowed)

    # ------------------------------------------------------------------ upstream metadata

    @property
    def _ttl(self) -> int:
        return int(self.settings.cache_ttl.total_seconds())

    async def metadata(self) -> dict[str, Any]:
        now = self.context.now()
        if self._metadata is not None and now - self._metadata[0] < self._ttl:
            return self._metadata[1]
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await fetch_json(self.context.http, "GET", url)
        if not isinstance(document, dict):
            raise UpstreamError(f"{url}: not a JSON object")
        if document.get("issuer") != self.issuer:  # Discovery §4.3: exact match
            raise UpstreamError(f"{url}: issuer {document.get('issuer')!r} is not {self.issuer!r}")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(name), str):
                raise UpstreamError(f"{url}: no {name}")
        # The client secret, codes and tokens go to these: HTTPS on the issuer's origin or
        # an origin the operator listed, whatever the document says (issue 16, item 13).
        endpoints = ["token_endpoint", "jwks_uri"] + (["userinfo_endpoint"] if self.settings.userinfo
                                                      and "userinfo_endpoint" in document else [])
        for name in endpoints:
            check_endpoint(name, document[name], issuer=self.issuer, allowed_origins=self.allowed_origins)
        if (problem := secure_url_problem(document["authorization_endpoint"])) is not None:
            raise UpstreamError(f"refused authorization_endpoint {document['authorization_endpoint'][:200]!r}:"
                                f" it {problem}")
        self._metadata = (now, document)
        return document

    async def keys(self, *, refresh: bool = False) -> KeySet:
        now = self.context.now()
        if self._jwks is not None:
            fetched_at, key_set = self._jwks
            fresh = now - fetched_at < self._ttl
            if fresh and not (refresh and now - fetched_at >= JWKS_REFETCH_COOLDOWN):
                return key_set
        uri = (await self.metadata())["jwks_uri"]
        document = await fetch_json(self.context.http, "GET", uri)
        try:
            key_set = KeySet.import_key_set(document)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise UpstreamError(f"{uri}: unusable JWKS: {exc}") from exc
        self._jwks = (now, key_set)
        return key_set

    # ------------------------------------------------------------------ RedirectProvider

    async def login_url(self, callback_url: str, state: str, nonce: str, code_challenge: str) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        query = {
            **self.settings.authorization_params,
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": callback_url,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in endpoint else "?"
        return endpoint + separator + urlencode(query)

    async def handle_callback(
        self, callback_url: str, params: dict[str, str], nonce: str, code_verifier: str
    ) -> ExternalIdentity:
        if "iss" in params and params["iss"] != self.issuer:  # RFC 9207 mix-up defence
            raise UpstreamError(f"callback iss {params['iss']!r} is not {self.issuer!r}")
        code = params.get("code")
        if not code:
            raise UpstreamError("callback without a code")
        metadata = await self.metadata()
        tokens = await self._exchange(metadata, code, callback_url, code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError("token response without an id_token")
        claims = await self.verify_id_token(id_token, nonce)
        if self.settings.userinfo and isinstance(metadata.get("userinfo_endpoint"), str):
            claims = {**await self._userinfo(metadata["userinfo_endpoint"], tokens, claims), **claims}
        return self.identity(claims)

    # ------------------------------------------------------------------ steps

    async def _exchange(self, metadata: dict[str, Any], code: str, callback_url: str,
                        code_verifier: str) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback_url,
                "code_verifier": code_verifier}
        headers = {"Accept": "application/json"}
        secret = self.settings.client_secret.get_secret_value()
        if self._auth_method(metadata) == "client_secret_post":
            form.update(client_id=self.settings.client_id, client_secret=secret)
        else:  # RFC 6749 §2.3.1: form-urlencode both parts, then base64
            raw = f"{quote(self.settings.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        tokens = await fetch_json(self.context.http, "POST", metadata["token_endpoint"], data=form,
                                  headers=headers)
        if not isinstance(tokens, dict):
            raise UpstreamError("token response is not a JSON object")
        return tokens

    def _auth_method(self, metadata: dict[str, Any]) -> str:
        if self.settings.token_endpoint_auth_method != "auto":
            return self.settings.token_endpoint_auth_method
        # Discovery §3: absent means client_secret_basic.
        supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """OIDC Core §3.1.3.7; UpstreamError on any failure."""
        algorithms = list(self.settings.id_token_algs)
        try:
            try:
                token = jwt.decode(id_token, await self.keys(), algorithms=algorithms)
            except InvalidKeyIdError:  # maybe the upstream rotated its keys: look again, once
                token = jwt.decode(id_token, await self.keys(refresh=True), algorithms=algorithms)
            claims = token.claims
            JWTClaimsRegistry(
                now=self.context.now, leeway=LEEWAY,
                iss={"essential": True, "value": self.issuer},
                sub={"essential": True},
                aud={"essential": True, "value": self.settings.client_id},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise UpstreamError(f"ID token rejected: {type(exc).__name__}: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.settings.client_id:
            raise UpstreamError(f"ID token rejected: azp {azp!r} is not our client_id")
        hosted_domain = self.settings.authorization_params.get("hd")
        if hosted_domain and hosted_domain != "*" and claims.get("hd") != hosted_domain:
            # `hd` in the request only filters Google's account chooser; the claim decides.
            raise AccessDenied(f"account is not in the hosted domain {hosted_domain}")
        return claims

    async def _userinfo(self, endpoint: str, tokens: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str):
            raise UpstreamError("token response without an access_token for userinfo")
        info = await fetch_json(self.context.http, "GET", endpoint,
                                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:  # OIDC Core §5.3.2
            raise UpstreamError("userinfo response is not about the ID token's subject")
        return info

    def identity(self, claims: dict[str, Any]) -> ExternalIdentity:
        """Who came back; `amr` only from the verified ID token's claims (they win over
        userinfo's in `handle_callback`)."""
        mapped = {name: claims[name] for name in STANDARD_PROFILE_CLAIMS if name in claims}
        for local, upstream in self.settings.claims.items():
            if upstream in claims:
                mapped[local] = claims[upstream]
        email = claims.get("email")
        return ExternalIdentity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) and email else None,
            email_verified=isinstance(email, str) and is_true(claims.get("email_verified")),
            claims=mapped,
            amr=upstream_amr(claims.get("amr")),
        )


def upstream_amr(value: Any) -> tuple[str, ...]:
    """The upstream ID token's `amr` (RFC 8176), kept only when plain: a list of at most
    ten short strings of printable ASCII (anything else: none)."""
    if not isinstance(value, list) or len(value) > 10:
        return ()
    if not all(isinstance(v, str) and 0 < len(v) <= 32 and v.isascii() and v.isprintable() for v in value):
        return ()
    return tuple(value)
