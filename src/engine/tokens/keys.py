"""Per-realm signing keys: lazy creation, encryption at rest, JWKS, rotation.

Keys are made on a realm's first use (10,000 realms must not cost 30,000 key generations
at start-up) and persisted in the durable store with the private JWK encrypted under the
key-encryption key (AES-256-GCM, the realm and kid bound as associated data).

Rotation (RFC 7517 practice, DESIGN.md "Scale"): a new key is published as `next` for at
least the verifiers' JWKS cache TTL before it signs; the key it replaces is `retiring`,
still published until every token it signed has expired, then `retired`. Every instance
reads the same rows, and status changes are compare-and-set, so concurrent rotations
have one winner. The in-process cache has a short explicit TTL.

Every instance sharing a store must hold the same key-encryption key. One that cannot
decrypt what is stored refuses to start (`verify_store`: a check row written once with the
store's first KEK, and each published realm key the first time), never creates keys beside
keys it cannot read (a realm whose keys it cannot decrypt is `KeysUnusable`, reported by
`/readyz`), and never serves a realm with a key set of its own making.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import os
import secrets
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateNumbers, RSAPublicNumbers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from joserfc.util import base64_to_int

from engine.cached_body import CachedBody
from engine.clock import Clock
from engine.config.env import read_secret_file
from engine.files import private_directory, write_private
from engine.store.protocols import AlreadyExists, DurableStore, SigningKey, StoreUnavailable
from engine.tokens.jwt import verifiers

log = logging.getLogger(__name__)

# joserfc 1.8 warns on every use of "EdDSA" (RFC 9864 prefers "Ed25519"); OIDC relying
# parties still know it as EdDSA, so we publish and sign with EdDSA on purpose.
warnings.filterwarnings("ignore", message=".*EdDSA is deprecated.*")

PUBLISHED = ("next", "active", "retiring")
CACHE_TTL = timedelta(seconds=30)

# The key-encryption key's check row: a "signing key" row of a realm no configuration can
# name (realm names are [a-z0-9_-]), never published, whose encrypted payload only this
# store's KEK opens. One read at start-up tells whether this instance has the right KEK.
CHECK_REALM = "~key-encryption-key"
CHECK_KID = "check"
CHECK_PLAINTEXT = b"tessera key-encryption key check v1"
KEK_ENV = "IDP_KEY_ENCRYPTION_KEY"


class KeysUnusable(StoreUnavailable):
    """Stored keys this instance cannot decrypt: another (or no) key-encryption key made them.
    A StoreUnavailable: requests that need the keys get 503 `temporarily_unavailable` (the
    load balancer should send them to an instance that can), with the reason in the log."""

    def __init__(self, realm: str | None, kid: str, origin: str = ""):
        self.realm, self.kid = realm, kid
        where = f"realm {realm}: signing key {kid}" if realm else "the key store's check row"
        source = f" (this instance has the {origin})" if origin else ""
        super().__init__(f"{where} cannot be decrypted: wrong or missing {KEK_ENV}{source}")


def generate_key(alg: str) -> Any:
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters={"use": "sig", "alg": "ES256"}, auto_kid=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters={"use": "sig"}, auto_kid=True)
    raise ValueError(f"unsupported signing algorithm {alg}")


_RSA_PRIVATE = ("n", "e", "d", "p", "q", "dp", "dq", "qi")


def import_private(jwk: dict[str, Any], *, trusted: bool = False) -> Any:
    """A private JWK as a joserfc key. `trusted`: a key this IdP generated and read back
    through authenticated encryption (KeyEncryption), so an RSA key skips OpenSSL's
    consistency check (~40 ms on the event loop per import; ~0.2 ms without)."""
    kty = jwk["kty"]
    if trusted and kty == "RSA" and all(name in jwk for name in _RSA_PRIVATE) and "oth" not in jwk:
        n, e, d, p, q, dp, dq, qi = (base64_to_int(jwk[name]) for name in _RSA_PRIVATE)
        numbers = RSAPrivateNumbers(p=p, q=q, d=d, dmp1=dp, dmq1=dq, iqmp=qi, public_numbers=RSAPublicNumbers(e, n))
        parameters = {name: value for name, value in jwk.items() if name not in _RSA_PRIVATE and name != "kty"}
        return RSAKey.import_key(numbers.private_key(unsafe_skip_rsa_key_validation=True), parameters)
    cls = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}[kty]
    return cls.import_key(jwk)


class KeyEncryptionKeyError(ValueError):
    """The key-encryption key is missing, malformed or unreadable (the message names the
    variable or file, never the key)."""


class KeyEncryption:
    """AES-256-GCM under the key-encryption key; the associated data binds realm and kid."""

    def __init__(self, kek: bytes):
        if len(kek) != 32:
            raise KeyEncryptionKeyError("the key-encryption key must be 32 bytes (base64url-encoded)")
        self._aead = AESGCM(kek)

    def encrypt(self, realm: str, kid: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, f"{realm}\0{kid}".encode())

    def decrypt(self, realm: str, kid: str, blob: bytes) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], f"{realm}\0{kid}".encode())

    def opens(self, realm: str, kid: str, blob: bytes) -> bool:
        """Whether `blob` was encrypted under this KEK for (realm, kid)."""
        try:
            self.decrypt(realm, kid, blob)
        except (InvalidTag, ValueError):
            return False
        return True


def derive_key(kek: bytes, purpose: bytes) -> bytes:
    """A separate 32-byte key for `purpose`, derived from the KEK (HKDF-SHA256)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(kek)


def decode_kek(value: str) -> bytes:
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    try:
        return base64.urlsafe_b64decode(padded)
    except ValueError:  # binascii.Error: not base64url at all
        raise KeyEncryptionKeyError("the key-encryption key is not base64url-encoded") from None


def load_or_create_kek(environ: dict[str, str] | os._Environ[str], data_dir: Path) -> tuple[bytes, str]:
    """The KEK from IDP_KEY_ENCRYPTION_KEY, or from the file IDP_KEY_ENCRYPTION_KEY_FILE
    names (a Docker or Kubernetes secret; both set is refused, as for `${VAR}` references:
    engine.config.env), else (embedded default) from `<data_dir>/key-encryption-key`,
    generated with mode 0600 on first start. Returns the key and a sentence saying where
    it came from (for the log). Raises KeyEncryptionKeyError naming the variable (never the key)."""
    value, file = environ.get(KEK_ENV), environ.get(f"{KEK_ENV}_FILE")
    if value and file:
        raise KeyEncryptionKeyError(f"both {KEK_ENV} and {KEK_ENV}_FILE are set: set only one")
    if file:
        try:
            value = read_secret_file(file)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise KeyEncryptionKeyError(f"{KEK_ENV}_FILE: cannot read {file}: {reason}") from None
        return decode_kek(value), f"key-encryption key from {KEK_ENV}_FILE ({file})"
    if value:
        return decode_kek(value), f"key-encryption key from {KEK_ENV}"
    path = data_dir / "key-encryption-key"
    if path.exists():
        return decode_kek(path.read_text()), f"key-encryption key from {path}"
    private_directory(data_dir)
    key = secrets.token_bytes(32)
    write_private(path, base64.urlsafe_b64encode(key).rstrip(b"="), exclusive=True)
    return key, (
        f"generated a new key-encryption key in {path} (mode 0600); in production set"
        " IDP_KEY_ENCRYPTION_KEY instead"
    )


async def verify_key_store(keys: KeyManager, origin: str, data_dir: Path, realms: list[str]) -> None:
    """`keys.verify_store` at start-up. A KEK generated into the data directory just now
    (the embedded default, its file gone) that cannot open the stored keys is removed
    again, so that putting the right file (or IDP_KEY_ENCRYPTION_KEY) back is the fix."""
    keys.origin = "key-encryption key it generated just now, none being set" if origin.startswith("generated") \
        else origin
    try:
        await keys.verify_store(realms)
    except KeysUnusable:
        if origin.startswith("generated"):
            (data_dir / "key-encryption-key").unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RealmKeys:
    """A realm's keys as of one read: signers by alg, the public JWKS, a verification set."""

    signers: dict[str, tuple[str, Any]]  # alg -> (kid, private key)
    jwks: dict[str, Any]
    verify_set: KeySet
    read_at: datetime
    jwks_body: CachedBody
    verifiers: dict[str, tuple[str, Any]] = field(default_factory=dict)  # kid -> (alg, public key)
    # token -> (header, claims) whose signature checked with *these* keys: it lives as long
    # as this read of the keys (CACHE_TTL, or until a rotation invalidates it).
    verified: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)


class KeyManager:
    def __init__(
        self,
        store: DurableStore,
        encryption: KeyEncryption,
        clock: Clock,
        *,
        verifier_cache_ttl: timedelta = timedelta(minutes=15),
        on_event: Any = None,
    ):
        self.store = store
        self.encryption = encryption
        self.clock = clock
        self.verifier_cache_ttl = verifier_cache_ttl
        self._cache: dict[str, RealmKeys] = {}
        self._reading: dict[str, asyncio.Task[RealmKeys]] = {}  # realm -> its read in flight
        # realm -> kid -> (the stored, encrypted private JWK, the key imported from it): a
        # re-read (every CACHE_TTL) imports only keys it has not seen, instead of stopping
        # the event loop to decrypt and import every signing key of the realm again.
        self._imported: dict[str, dict[str, tuple[bytes, Any]]] = {}
        self._on_event = on_event
        self.origin = ""  # where the KEK came from, for messages
        self.unusable: dict[str, str] = {}  # realm -> kid of a published key it cannot decrypt
        self._opened: dict[str, dict[str, bytes]] = {}  # realm -> kid -> stored bytes known to decrypt

    def cached_keys(self, realm: str, algs: list[str]) -> RealmKeys | None:
        """The realm's keys if this instance read them less than CACHE_TTL ago (no await:
        the hot paths take this first)."""
        cached = self._cache.get(realm)
        if (cached is not None and self.clock.now() - cached.read_at < CACHE_TTL
                and all(map(cached.signers.__contains__, algs))):
            return cached
        return None

    def keys_now(self, realm: str, algs: list[str]) -> RealmKeys | None:
        """Without waiting: `cached_keys`, or keys due for a re-read (less than twice
        CACHE_TTL old) while one re-read runs in the background; None if there are none.
        What the hot paths take first (signing, verifying, the JWKS at the protocol level,
        which cannot await): no request waits on the store every CACHE_TTL."""
        cached = self.cached_keys(realm, algs)
        if cached is not None:
            return cached
        stale = self._cache.get(realm)
        if stale is None or self.clock.now() - stale.read_at >= 2 * CACHE_TTL or any(a not in stale.signers
                                                                                      for a in algs):
            return None
        self._read_shared(realm, algs)  # the re-read, in the background
        return stale

    async def realm_keys(self, realm: str, algs: list[str]) -> RealmKeys:
        """The realm's current keys, created on first use; cached for CACHE_TTL. One read
        per realm at a time, shared by every caller that needs it meanwhile: they all
        wake together when it is done (queued on a lock they woke one per event-loop turn,
        each behind every request of that turn: 64 connections waited up to ~0.8 s for
        keys that were read in a few milliseconds)."""
        while True:
            if (cached := self.cached_keys(realm, algs)) is not None:
                return cached
            # shield: a caller that gives up (its client went away) does not cancel the read
            # the other callers wait for.
            keys = await asyncio.shield(self._read_shared(realm, algs))
            if all(alg in keys.signers for alg in algs):
                return keys
            # That read was for fewer algorithms (a reload added one): read again.

    def _read_shared(self, realm: str, algs: list[str]) -> asyncio.Task[RealmKeys]:
        """The realm's read in flight, started if there is none."""
        reading = self._reading.get(realm)
        if reading is None:
            reading = self._reading[realm] = asyncio.get_running_loop().create_task(self._read(realm, algs))
            reading.add_done_callback(functools.partial(self._read_done, realm))
        return reading

    def _read_done(self, realm: str, task: asyncio.Task[RealmKeys]) -> None:
        if self._reading.get(realm) is task:
            del self._reading[realm]
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Retrieved here, whoever waits: a background re-read has nobody waiting (the
            # store is down: the next request that must wait for the keys says so).
            log.warning("reading the keys of realm %s failed: %s", realm, exc)

    def _check_decryptable(self, realm: str, rows: list[SigningKey]) -> None:
        """KeysUnusable (and the realm marked so for /readyz) unless every published key
        of the realm opens with this KEK. Cheap: AES-GCM over a few KB, and keys already
        imported from the same stored bytes are not decrypted again."""
        opened = {row.kid: row.private_jwk for row in rows if row.status in PUBLISHED}
        known = self._opened.get(realm, {})
        for kid, blob in opened.items():
            if known.get(kid) != blob and not self.encryption.opens(realm, kid, blob):
                self.unusable[realm] = kid
                raise KeysUnusable(realm, kid, self.origin)
        self._opened[realm] = opened  # keys no longer published are forgotten

    async def verify_store(self, realms: list[str]) -> None:
        """Start-up: KeysUnusable unless this instance can decrypt the store's keys.

        The check row decides when it exists (one read). On a store without one (new, or
        made before the check existed) every configured realm's published keys are tried
        first, then the row is written; two instances racing to write it with different
        KEKs have one winner, and the other refuses."""
        rows = await self.store.list_signing_keys(CHECK_REALM)
        if rows:
            if not self.encryption.opens(CHECK_REALM, rows[0].kid, rows[0].private_jwk):
                await self._name_an_unusable_key(realms)
                raise KeysUnusable(None, rows[0].kid, self.origin)
            return
        await self._name_an_unusable_key(realms)
        now = self.clock.now()
        check = SigningKey(
            realm=CHECK_REALM, kid=CHECK_KID, alg="A256GCM", status="retired", public_jwk={},
            private_jwk=self.encryption.encrypt(CHECK_REALM, CHECK_KID, CHECK_PLAINTEXT), created_at=now,
        )
        try:
            await self.store.add_signing_key(check)
        except AlreadyExists:  # another instance wrote it first: it must be our KEK's too
            await self.verify_store(realms)

    async def _name_an_unusable_key(self, realms: list[str]) -> None:
        for realm in realms:
            self._check_decryptable(realm, await self.store.list_signing_keys(realm))

    async def _read(self, realm: str, algs: list[str]) -> RealmKeys:
        now = self.clock.now()
        rows = await self.store.list_signing_keys(realm)
        # Never a key of our own beside keys we cannot read: a second key set would split
        # the realm's verifiers (and is what a wrong KEK used to make, answering 500s).
        self._check_decryptable(realm, rows)
        missing = [a for a in algs if not any(r.alg == a and r.status == "active" for r in rows)]
        if missing:
            for alg in missing:
                await self._create(realm, alg, status="active")
            rows = await self.store.list_signing_keys(realm)
            self._check_decryptable(realm, rows)
        keys = self._build(realm, rows, now)
        self._cache[realm] = keys
        self.unusable.pop(realm, None)
        return keys

    def loaded_realms(self) -> list[str]:
        """Realms whose keys this instance has used (the scheduler rotates these)."""
        return list(self._cache)

    def invalidate(self, realm: str | None = None) -> None:
        if realm is None:
            self._cache.clear()
        else:
            self._cache.pop(realm, None)

    async def _create(self, realm: str, alg: str, *, status: str) -> SigningKey:
        key = await asyncio.to_thread(generate_key, alg)
        public = key.as_dict(private=False)
        public.setdefault("alg", alg)
        public.setdefault("use", "sig")
        private = json.dumps(key.as_dict(private=True)).encode()
        now = self.clock.now()
        row = SigningKey(
            realm=realm,
            kid=key.kid,
            alg=alg,
            status=status,  # type: ignore[arg-type]
            public_jwk=public,
            private_jwk=self.encryption.encrypt(realm, key.kid, private),
            created_at=now,
            activated_at=now if status == "active" else None,
        )
        try:
            await self.store.add_signing_key(row)
        except AlreadyExists:  # astronomically unlikely: same thumbprint
            pass
        else:
            self._opened.setdefault(realm, {})[row.kid] = row.private_jwk
        self._emit(realm, "key_created", {"kid": key.kid, "alg": alg, "status": status})
        return row

    def _build(self, realm: str, rows: list[SigningKey], now: datetime) -> RealmKeys:
        published = [r for r in rows if r.status in PUBLISHED]
        signers: dict[str, tuple[str, Any]] = {}
        seen, imported = self._imported.get(realm, {}), {}
        # Several instances may have created a first key at once: every instance picks the
        # same one (oldest, then smallest kid), and all of them stay published.
        for row in sorted(published, key=lambda r: (r.activated_at or r.created_at, r.kid)):
            if row.status == "active" and row.alg not in signers:
                known = seen.get(row.kid)
                if known is not None and known[0] == row.private_jwk:
                    key = known[1]
                else:
                    plain = self.encryption.decrypt(realm, row.kid, row.private_jwk)
                    key = import_private(json.loads(plain), trusted=True)
                imported[row.kid] = (row.private_jwk, key)
                signers[row.alg] = (row.kid, key)
        self._imported[realm] = imported  # keys no longer signing are forgotten
        jwks = {"keys": [r.public_jwk for r in published]}
        verify_set = KeySet.import_key_set(jwks)
        return RealmKeys(
            signers=signers,
            jwks=jwks,
            verify_set=verify_set,
            read_at=now,
            jwks_body=CachedBody.of(jwks),
            verifiers=verifiers(verify_set),
        )

    async def rotate(
        self,
        realm: str,
        algs: list[str],
        *,
        max_token_lifetime: timedelta,
        rotate_every: timedelta | None = None,
    ) -> list[str]:
        """One step of rotation for each alg; returns what changed (for logs and the CLI).

        - no `next` key: create one (published now, signs after `verifier_cache_ttl`) — by
          hand always, on schedule (`rotate_every` given) once the active key is that old;
        - a `next` key older than `verifier_cache_ttl`: it becomes `active`, the old
          active key becomes `retiring` until `max_token_lifetime` from now;
        - `retiring` keys past their `retire_after`: `retired` (unpublished).
        Safe to run from several instances at once: each transition is compare-and-set.
        """
        changes: list[str] = []
        now = self.clock.now()
        rows = await self.store.list_signing_keys(realm)
        self._check_decryptable(realm, rows)  # no `next` key beside keys we cannot read
        for row in rows:
            if row.status == "retiring" and row.retire_after is not None and row.retire_after <= now:
                if await self.store.update_signing_key(realm, row.kid, status="retired", expect_status="retiring"):
                    changes.append(f"retired {row.alg} {row.kid}")
        for alg in algs:
            of_alg = [r for r in rows if r.alg == alg]
            pending = [r for r in of_alg if r.status == "next"]
            active = [r for r in of_alg if r.status == "active"]
            due = rotate_every is None or not active or all(
                now - (r.activated_at or r.created_at) >= rotate_every for r in active
            )
            if not pending and not due:
                continue
            if not pending:
                new = await self._create(realm, alg, status="next")
                changes.append(f"published next {alg} {new.kid}")
                continue
            candidate = min(pending, key=lambda r: (r.created_at, r.kid))
            if now - candidate.created_at < self.verifier_cache_ttl:
                continue
            if not await self.store.update_signing_key(
                realm, candidate.kid, status="active", expect_status="next", activated_at=now
            ):
                continue  # another instance promoted it
            for old in of_alg:
                if old.status == "active":
                    await self.store.update_signing_key(
                        realm, old.kid, status="retiring", expect_status="active",
                        retire_after=now + max_token_lifetime,
                    )
                    changes.append(f"retiring {alg} {old.kid}")
            changes.append(f"activated {alg} {candidate.kid}")
            self._emit(realm, "key_rotated", {"kid": candidate.kid, "alg": alg})
        if changes:
            self.invalidate(realm)
        return changes

    def _emit(self, realm: str, kind: str, data: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(realm, kind, data)
