"""Verifying Tessera access tokens locally (RFC 9068 JWTs) with joserfc.

- The JWKS comes from the issuer's discovery document and is cached for the max-age the
  server sends, never longer than 15 minutes; a token signed by a key id the cache does not
  hold triggers one refetch (at most every 10 s, JWKS_REFETCH_INTERVAL), so a key rotation (`idp keys rotate`) is
  picked up at once.
- A token is accepted only with `typ: at+jwt`, a signature of a key of the issuer, this
  issuer (`iss`), this API's audience (`aud`), and `exp` not passed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ["RS256", "ES256", "EdDSA"]
MAX_JWKS_AGE = 15 * 60
REFETCH_INTERVAL = 10.0
log = logging.getLogger("verifier")
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}  # RFC 9068 §4


class InvalidToken(Exception):
    """The token is not acceptable (RFC 6750 §3.1 invalid_token)."""


class JwksCache:
    def __init__(self, issuer: str, session: aiohttp.ClientSession, refetch_interval: float = REFETCH_INTERVAL):
        self.issuer = issuer.rstrip("/")
        self.session = session
        self.refetch_interval = refetch_interval
        self.jwks_uri: str | None = None
        self.keys = KeySet([])
        self.kids: set[str] = set()
        self.fetched_at = 0.0
        self.max_age = 0.0

    async def _discover(self) -> str:
        url = f"{self.issuer}/.well-known/openid-configuration"
        async with self.session.get(url) as response:
            response.raise_for_status()
            metadata = await response.json()
        if metadata.get("issuer") != self.issuer:  # OIDC Discovery §4.3
            raise RuntimeError(f"{url} names issuer {metadata.get('issuer')!r}, not {self.issuer!r}")
        return metadata["jwks_uri"]

    async def _fetch(self, reason: str) -> None:
        if self.jwks_uri is None:
            self.jwks_uri = await self._discover()
        async with self.session.get(self.jwks_uri) as response:
            response.raise_for_status()
            document = await response.json()
            cache_control = response.headers.get("Cache-Control", "")
        match = re.search(r"max-age=(\d+)", cache_control)
        self.max_age = min(int(match.group(1)) if match else MAX_JWKS_AGE, MAX_JWKS_AGE)
        self.keys = KeySet.import_key_set(document)
        self.kids = {key.kid for key in self.keys.keys if key.kid}
        self.fetched_at = time.monotonic()
        log.info("JWKS fetched (%s): kids %s, cached %d s", reason, ", ".join(sorted(self.kids)), self.max_age)

    async def key_set(self, kid: str | None) -> KeySet:
        age = time.monotonic() - self.fetched_at
        if not self.fetched_at:
            await self._fetch("first use")
        elif kid not in self.kids and age >= self.refetch_interval:
            await self._fetch(f"unknown kid {kid}")
        elif age >= self.max_age:
            await self._fetch(f"older than {self.max_age:.0f} s")
        return self.keys


class AccessTokenVerifier:
    def __init__(self, issuer: str, audience: str, session: aiohttp.ClientSession,
                 now: Callable[[], int] | None = None, leeway: int = 30, refetch_interval: float = REFETCH_INTERVAL):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.jwks = JwksCache(issuer, session, refetch_interval)
        self.now = now
        self.leeway = leeway

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or InvalidToken saying why not."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise InvalidToken("not a JWT") from exc
        if header.get("typ") not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token (typ must be at+jwt)")
        keys = await self.jwks.key_set(header.get("kid"))
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except JoseError as exc:
            raise InvalidToken("bad signature or unknown key") from exc
        registry = jwt.JWTClaimsRegistry(
            now=self.now, leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(f"{exc.error}: {exc.description}") from exc
        return decoded.claims


def scopes(claims: dict[str, Any]) -> set[str]:
    scope = claims.get("scope")
    return set(scope.split()) if isinstance(scope, str) else set()
