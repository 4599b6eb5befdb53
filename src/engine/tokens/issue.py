"""Minting and checking the realm's JWTs.

- Access tokens: RFC 9068 (`typ: at+jwt`; `iss`, `sub`, `aud`, `client_id`, `scope`,
  `exp`, `iat`, `jti`, `auth_time` when a user is present).
- ID tokens: OIDC Core §2 and §3.1.3.6 (`iss`, `sub`, `aud`, `azp`, `exp`, `iat`,
  `auth_time`, `nonce`, `at_hash`, `sid`, plus claims of the granted scopes, §5.4).
- Revocation of an access token (its `jti`, its grant, its session or its user:
  engine.tokens.revocation) is an entry in the ephemeral store, shared by every instance.
  Each instance remembers for `REVOCATION_CHECK_TTL` (0.5 s) that a `jti` was *not*
  revoked, so a token revoked on another instance is refused everywhere within that time
  (the issue's bound is 1 s); one revoked here is refused here at once.
- A token's signature is checked once per read of the realm's keys (`RealmKeys.verified`):
  resource servers present the same token again and again; `exp`, `iss` and `typ` are
  checked on every use.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.config import Client
from engine.errors import InvalidToken
from engine.realm import Realm
from engine.store.protocols import User
from engine.tokens import jwt
from engine.tokens.revocation import (
    GRANT_CLAIM,
    ISSUED_MS_CLAIM,
    denied_grant_key,
    denied_jti_key,
    denied_session_key,
    keys_for,
    revoked_by,
)

if TYPE_CHECKING:
    from engine.services import Services

ACCESS_TOKEN_TYP = "at+jwt"
LOGOUT_TOKEN_TYP = "logout+jwt"
LOGOUT_TOKEN_LIFETIME = 120  # seconds; each delivery attempt signs a fresh one
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
REVOCATION_CHECK_TTL = 0.5  # seconds an instance trusts "this jti is not revoked"
_REVOCATION_CACHE_SIZE = 50_000
_VERIFIED_CACHE_SIZE = 10_000  # tokens per realm whose signature was checked (~10 MB at most)


class _JtiSource:
    """144-bit token ids from the OS CSPRNG, read and base64url-encoded 228 at a time: one
    `getrandom` and one encoding per 228 tokens instead of one each (on every `/token`
    request). 18 bytes are 24 base64 characters exactly, so each id is a slice of the
    encoded block. Reset in a forked child so two processes never share a buffer."""

    _PER_READ = 228  # 4,104 bytes

    def __init__(self) -> None:
        self._ids = ""
        self._offset = 0

    def reset(self) -> None:
        self._ids, self._offset = "", 0

    def __call__(self) -> str:
        offset = self._offset
        if offset >= len(self._ids):
            self._ids = base64.urlsafe_b64encode(os.urandom(18 * self._PER_READ)).decode("ascii")
            offset = 0
        self._offset = offset + 24
        return self._ids[offset:offset + 24]


new_jti = _JtiSource()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=new_jti.reset)

# OIDC Core §3.1.3.6: at_hash uses the hash of the ID token's alg; Ed25519 → SHA-512.
_HASH_FOR_ALG = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}


def half_hash(value: str, alg: str) -> str:
    digest = _HASH_FOR_ALG[alg](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def scope_claims(realm: Realm, user: User, scopes: set[str]) -> dict[str, Any]:
    """Claims of `user` released by the granted scopes through the realm's claim mapping."""
    released: dict[str, Any] = {}
    mapping = realm.config.claims_for_scope()
    for scope in scopes:
        for claim in mapping.get(scope, ()):
            if claim == "email":
                if user.email is not None:
                    released["email"] = user.email
            elif claim == "email_verified":
                released["email_verified"] = user.email_verified
            elif claim in user.profile and user.profile[claim] is not None:
                released[claim] = user.profile[claim]
    return released


class Minted(NamedTuple):  # immutable; one per token signed
    token: str
    claims: dict[str, Any]


class TokenService:
    """Signs and checks tokens for any realm with the realm's active keys."""

    def __init__(self, services: Services):
        self.services = services
        self._not_revoked: dict[tuple[str, str], float] = {}  # (realm, jti) -> monotonic time checked

    def _signer_now(self, realm: Realm, alg: str | None) -> tuple[str, str, Any] | None:
        """(alg, kid, key) to sign with, without waiting; None: the keys must be read."""
        alg = alg or realm.config.signing.default_alg
        # Keys due for a re-read sign while one re-read runs (KeyManager.keys_now): a
        # rotation only ever activates a key published for verifier_cache_ttl, and the key
        # it replaces stays published, so signing with the previous read is safe.
        keys = self.services.keys.keys_now(realm.name, realm.config.signing.algs)
        if keys is None:
            return None
        kid, key = keys.signers[alg]
        return alg, kid, key

    async def _signer(self, realm: Realm, alg: str | None) -> tuple[str, str, Any]:
        return self._signer_now(realm, alg) or await self._signer_read(realm, alg)

    async def _signer_read(self, realm: Realm, alg: str | None) -> tuple[str, str, Any]:
        """(alg, kid, key) once the realm's keys are read (`_signer_now` found none at hand)."""
        keys = await self.services.keys.realm_keys(realm.name, realm.config.signing.algs)
        alg = alg or realm.config.signing.default_alg
        kid, key = keys.signers[alg]
        return alg, kid, key

    async def access_token(
        self,
        realm: Realm,
        client: Client,
        *,
        subject: str,
        scope: str,
        audience: list[str] | None = None,
        auth_time: int | None = None,
        grant_id: str | None = None,
        session_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Minted:
        """`grant_id` (the refresh family) and `session_id` (`sid`) let revoking the grant or
        ending the session revoke this token too (engine.tokens.revocation)."""
        precise = self.services.clock.now().timestamp()
        now = int(precise)
        aud = audience or list(client.audience) or [client.client_id]
        claims: dict[str, Any] = {
            "iss": realm.issuer,
            "sub": subject,
            "aud": aud[0] if len(aud) == 1 else aud,
            "client_id": client.client_id,
            "scope": scope,
            "iat": now,
            "exp": now + int(realm.config.lifetimes.access_token.total_seconds()),
            "jti": new_jti(),
            # `iat` is whole seconds; a user's cutoff (engine.tokens.revocation) needs to
            # tell a token minted just before a password reset from one just after it.
            ISSUED_MS_CLAIM: int(precise * 1000),
        }
        if auth_time is not None:
            claims["auth_time"] = auth_time
        if grant_id is not None:
            claims[GRANT_CLAIM] = grant_id
        if session_id is not None:
            claims["sid"] = session_id
        if extra:
            claims.update(extra)
        # Every /token request signs here: no coroutine when the keys are at hand.
        alg, kid, key = self._signer_now(realm, client.access_token_alg) or await self._signer_read(
            realm, client.access_token_alg)
        return Minted(jwt.sign(claims, key, kid, alg, typ=ACCESS_TOKEN_TYP), claims)

    async def id_token(
        self,
        realm: Realm,
        client: Client,
        user: User,
        *,
        scopes: set[str],
        auth_time: int,
        nonce: str | None = None,
        access_token: str | None = None,
        session_id: str | None = None,
        amr: list[str] | None = None,
        acr: str | None = None,
    ) -> Minted:
        """OIDC Core §2: `amr` (RFC 8176 values) and `acr` say how the user signed in."""
        now = self.services.clock.timestamp()
        alg, kid, key = await self._signer(realm, client.id_token_alg)
        claims: dict[str, Any] = {
            "iss": realm.issuer,
            "sub": user.id,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + int(realm.config.lifetimes.id_token.total_seconds()),
            "auth_time": auth_time,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["at_hash"] = half_hash(access_token, alg)
        if session_id is not None:
            claims["sid"] = session_id
        if amr:
            claims["amr"] = list(amr)
        if acr is not None:
            claims["acr"] = acr
        claims.update(scope_claims(realm, user, scopes))
        return Minted(jwt.sign(claims, key, kid, alg), claims)

    async def logout_token(
        self, realm: Realm, client: Client, *, subject: str, session_id: str | None, jti: str
    ) -> str:
        """OIDC Back-Channel Logout 1.0 §2.4: `typ: logout+jwt` (§2.4, §4.1: so it cannot pass
        for an ID or access token), the logout event, `sub` and `sid`, never a `nonce`;
        valid two minutes, signed with the client's ID-token algorithm."""
        now = self.services.clock.timestamp()
        claims: dict[str, Any] = {
            "iss": realm.issuer,
            "sub": subject,
            "aud": client.client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_LIFETIME,
            "jti": jti,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        if session_id is not None:
            claims["sid"] = session_id
        alg, kid, key = await self._signer(realm, client.id_token_alg)
        return jwt.sign(claims, key, kid, alg, typ=LOGOUT_TOKEN_TYP)

    async def verify_signed(
        self, realm: Realm, token: str, *, typ: str | None = None, leeway: int = 0, check_exp: bool = True
    ) -> dict[str, Any]:
        """Signature with a published key of this realm, `iss`, `exp` (InvalidToken otherwise)."""
        algs = realm.config.signing.algs
        manager = self.services.keys
        keys = manager.keys_now(realm.name, algs) or await manager.realm_keys(realm.name, algs)
        return self._verified(realm, keys, token, typ=typ, leeway=leeway, check_exp=check_exp)

    def _verified(self, realm: Realm, keys: Any, token: str, *, typ: str | None = None, leeway: int = 0,
                  check_exp: bool = True) -> dict[str, Any]:
        verified = keys.verified.get(token)
        if verified is None:
            verified = jwt.decode_verified(token, keys.verify_set, list(realm.config.signing.algs), keys.verifiers)
            if len(keys.verified) >= _VERIFIED_CACHE_SIZE:
                keys.verified.clear()
            keys.verified[token] = verified
        header, claims = verified
        jwt.check_claims(
            header, claims, now=self.services.clock.timestamp(), issuer=realm.issuer,
            typ=typ, leeway=leeway, check_exp=check_exp,
        )
        return dict(claims)  # callers may add to it; the cached one stays as signed

    async def verify_access_token(self, realm: Realm, token: str) -> dict[str, Any]:
        """A live access token of this realm: signed, unexpired, right `typ`, not revoked."""
        claims = await self.verify_signed(realm, token, typ=ACCESS_TOKEN_TYP)
        return claims if self._known_live(realm, claims) else await self._check_revocation(realm, claims)

    def _known_live(self, realm: Realm, claims: dict[str, Any]) -> bool:
        """Checked in the store less than REVOCATION_CHECK_TTL ago and not revoked then
        (InvalidToken for a token without a `jti`: it could never be revoked)."""
        jti = claims.get("jti")
        if not isinstance(jti, str):
            raise InvalidToken("the token has been revoked")
        checked = self._not_revoked.get((realm.name, jti))
        return checked is not None and time.monotonic() - checked < REVOCATION_CHECK_TTL

    async def _check_revocation(self, realm: Realm, claims: dict[str, Any]) -> dict[str, Any]:
        key = (realm.name, claims["jti"])
        now = time.monotonic()
        if revoked_by(claims, await self.services.ephemeral.get_many(keys_for(realm.name, claims))):
            self._not_revoked.pop(key, None)
            raise InvalidToken("the token has been revoked")
        if len(self._not_revoked) >= _REVOCATION_CACHE_SIZE:
            self._forget_old(now)
        self._not_revoked[key] = now
        return claims

    def _forget_old(self, now: float) -> None:
        stale = [k for k, at in self._not_revoked.items() if now - at >= REVOCATION_CHECK_TTL]
        for k in stale:
            del self._not_revoked[k]
        if len(self._not_revoked) >= _REVOCATION_CACHE_SIZE:  # all fresh: start over
            self._not_revoked.clear()

    async def deny_access_token(self, realm: Realm, jti: str, exp: int) -> None:
        """Deny-list `jti` until the token would have expired anyway."""
        ttl = max(1, exp - self.services.clock.timestamp() + 5)
        self._not_revoked.pop((realm.name, jti), None)
        await self.services.ephemeral.put(denied_jti_key(realm.name, jti), {"exp": exp}, ttl)

    async def deny_grant(self, realm: Realm, grant_id: str) -> None:
        """Revoke every access token minted from refresh family `grant_id`."""
        await self._deny(realm, denied_grant_key(realm.name, grant_id))

    async def deny_session(self, realm: Realm, sid: str) -> None:
        """Revoke every access token minted in browser session `sid`."""
        await self._deny(realm, denied_session_key(realm.name, sid))

    async def _deny(self, realm: Realm, key: str) -> None:
        # Kept as long as a token minted just now lives (a minute of slack for a reload
        # that lengthens the lifetime).
        ttl = int(realm.config.lifetimes.access_token.total_seconds()) + 60
        self._not_revoked.clear()  # which jtis it covers is not known here; refusals start at once
        await self.services.ephemeral.put(key, {"revoked": True}, ttl)
