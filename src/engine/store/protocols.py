"""Storage contracts: the durable tier and the ephemeral tier (DESIGN.md "Storage").

Every backend implements one of these Protocols and is checked by one conformance suite
(`tests/store/`), parametrised over the embedded and the production backend.

Durable (SQLite, PostgreSQL): users, credentials, external identities, refresh-token
families, consents, signing keys, audit events.
Ephemeral (memory, Redis): JSON values with a TTL under string keys: auth codes, login
flows, browser sessions, device codes, deny-listed token ids, rate-limit counters.

All secrets arrive here already hashed (SHA-256 hex of refresh tokens, argon2id of
passwords) or encrypted (signing keys); no backend ever sees a plaintext secret.
Times are aware `datetime`s in UTC chosen by the caller's clock, never by the database, so
tests control time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol


class StoreError(Exception):
    """Base of every storage failure the engine maps (to 503 when a store is unreachable)."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached (connection refused, timeout)."""


class AlreadyExists(StoreError):
    """A unique constraint refused the write (duplicate email, kid, identity, family id)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    realm: str
    email: str | None
    email_verified: bool
    profile: dict[str, Any]  # OIDC standard claims: name, given_name, picture, ...
    created_at: datetime
    disabled: bool = False
    self_registered: bool = False  # made through /register (may be pruned while unverified)


@dataclass(frozen=True, slots=True)
class Credential:
    """A user's password hash (kind "password"); `secret_hash` is an argon2id/PHC string."""

    user_id: str
    kind: str
    secret_hash: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Link from an upstream identity (issuer, subject) to a local user."""

    realm: str
    provider_id: str
    issuer: str
    subject: str
    user_id: str
    email: str | None
    claims: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshFamily:
    """One chain of rotated refresh tokens: one login of one client on one device."""

    id: str
    realm: str
    client_id: str
    user_id: str
    scope: str
    session_id: str | None
    auth_time: datetime
    created_at: datetime
    expires_at: datetime  # absolute end of the family (realm lifetime refresh_token)
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # e.g. amr, acr, nonce-free claims
    # The resources (RFC 8707; access-token audiences) granted to the family; a refresh
    # issues for these or a subset, never more. None: a family from before they were
    # recorded (it gets the client's audiences, as it always did).
    resources: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class LogoutDelivery:
    """A logout token to POST to a client's back-channel logout URI (OIDC Back-Channel
    Logout 1.0 §2.5): for `subject`, and for the browser session `session_id` when the
    end was session-scoped (or the client requires `sid`). `id` is the token's `jti`,
    the same on every attempt, so a receiver can tell a retry from a new logout."""

    id: str
    realm: str
    client_id: str
    subject: str
    session_id: str | None
    created_at: datetime
    next_at: datetime  # due at; while claimed, the end of the claim's lease
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str  # SHA-256 hex of the opaque token
    family_id: str
    realm: str
    created_at: datetime
    expires_at: datetime
    replaced_by: str | None = None  # token_hash of the successor
    replaced_at: datetime | None = None


RotateStatus = Literal["rotated", "already_rotated", "revoked", "expired", "unknown"]


@dataclass(frozen=True, slots=True)
class RotateResult:
    """Outcome of `DurableStore.rotate_refresh_token`.

    - rotated: `old_hash` was live; it now points at `new_hash`, which is live.
    - already_rotated: `old_hash` had been replaced before (by `token.replaced_by` at
      `token.replaced_at`); nothing was written. The caller decides between reuse
      detection and the client's grace window.
    - revoked / expired: the family was revoked, or the token or family expired; nothing written.
    - unknown: no such token in this realm.
    """

    status: RotateStatus
    token: RefreshToken | None = None
    family: RefreshFamily | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    realm: str
    user_id: str
    client_id: str
    scopes: frozenset[str]
    updated_at: datetime


KeyStatus = Literal["next", "active", "retiring", "retired"]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A realm's signing key. `private_jwk` is the encrypted private JWK (opaque bytes)."""

    realm: str
    kid: str
    alg: str
    status: KeyStatus
    public_jwk: dict[str, Any]
    private_jwk: bytes
    created_at: datetime
    activated_at: datetime | None = None
    retire_after: datetime | None = None  # published until then; retired afterwards


@dataclass(frozen=True, slots=True)
class AuditEvent:
    realm: str
    type: str
    at: datetime
    user_id: str | None = None
    client_id: str | None = None
    ip: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class WebAuthnCredential:
    """A passkey (WebAuthn public key credential) of a user (issue 20).

    `credential_id` is the base64url of the raw credential id; `public_key` the COSE key
    (WebAuthn §6.5.1.1) as the authenticator gave it at registration; `sign_count` the
    last signature counter seen (§6.1.1); `name` the user's own name for it."""

    realm: str
    credential_id: str
    user_id: str
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    name: str
    created_at: datetime
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TotpFactor:
    """A user's TOTP second factor (RFC 6238). `secret` is encrypted under the
    key-encryption key (opaque bytes here); `last_step` is the time step of the last code
    accepted (None: none yet): a code of that step or an earlier one is never accepted again."""

    user_id: str
    secret: bytes
    created_at: datetime
    last_step: int | None = None


class DurableStore(Protocol):
    """Users, credentials, identities, refresh families, consents, keys, audit events."""

    async def ping(self) -> None:
        """Raise StoreUnavailable if the database cannot answer."""

    async def close(self) -> None: ...

    async def migrate(self) -> list[str]:
        """Apply pending versioned migrations; return the versions applied now."""

    # users and credentials
    async def create_user(self, user: User) -> None:
        """Insert; AlreadyExists if (realm, lower(email)) is taken."""

    async def get_user(self, realm: str, user_id: str) -> User | None: ...

    async def list_users(self, realm: str, *, after: str | None = None, limit: int = 100) -> list[User]:
        """The realm's users in id order, at most `limit`, starting after the user with id
        `after` (stable pages while users come and go)."""

    async def get_user_by_email(self, realm: str, email: str) -> User | None:
        """Case-insensitive email lookup within the realm."""

    async def get_user_and_credential_by_email(
        self, realm: str, email: str, kind: str
    ) -> tuple[User | None, Credential | None]:
        """`get_user_by_email` and that user's credential of `kind`, in one read (a sign-in:
        one query where there were two)."""

    async def update_user(
        self,
        realm: str,
        user_id: str,
        *,
        email_verified: bool | None = None,
        profile: dict[str, Any] | None = None,
        disabled: bool | None = None,
    ) -> User | None:
        """Change the given fields; return the new user (None if unknown)."""

    async def set_credential(self, realm: str, credential: Credential) -> None:
        """Insert or replace the user's credential of `credential.kind`."""

    async def get_credential(self, realm: str, user_id: str, kind: str) -> Credential | None: ...

    async def delete_credential(self, realm: str, user_id: str, kind: str) -> bool:
        """Remove the user's credential of `kind`; True if there was one."""

    # external identities
    async def link_identity(self, identity: ExternalIdentity) -> None:
        """AlreadyExists if (realm, issuer, subject) is linked already."""

    async def find_identity(self, realm: str, issuer: str, subject: str) -> ExternalIdentity | None: ...

    async def list_identities(self, realm: str, user_id: str) -> list[ExternalIdentity]: ...

    async def unlink_identities(self, realm: str, user_id: str) -> list[ExternalIdentity]:
        """Remove every external identity linked to the user, atomically; return the removed
        links (oldest first)."""

    # removing users
    async def delete_user(self, realm: str, user_id: str) -> bool:
        """Remove the user and everything stored under it (credentials, external identities,
        consents, refresh families and their tokens) in one transaction; False if unknown."""

    async def delete_unverified_users(
        self, realm: str, created_before: datetime, limit: int = 1000
    ) -> list[str]:
        """Remove (as `delete_user`, all in one transaction) up to `limit` self-registered
        users whose email is still unverified and who were made before `created_before`;
        their ids. Verified, operator-made and federated users are never touched."""

    # refresh-token families
    async def create_refresh_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        """Store a new family and its first token in one transaction."""

    async def get_refresh_token(
        self, realm: str, token_hash: str
    ) -> tuple[RefreshToken, RefreshFamily] | None: ...

    async def get_refresh_token_and_user(
        self, realm: str, token_hash: str
    ) -> tuple[RefreshToken, RefreshFamily, User | None] | None:
        """`get_refresh_token` and the family's user (None if gone) in one read: a refresh
        needs all three, and a round trip fewer per rotation."""

    async def rotate_refresh_token(
        self, realm: str, old_hash: str, new: RefreshToken, now: datetime
    ) -> RotateResult:
        """Atomically replace live `old_hash` by `new` (same family). Under concurrency
        exactly one caller gets `rotated`; the others get `already_rotated`."""

    async def revoke_family(self, realm: str, family_id: str, reason: str, now: datetime) -> bool:
        """Mark the family revoked; True if it was live."""

    async def revoke_families(
        self,
        realm: str,
        now: datetime,
        reason: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Revoke every live family of the user and/or the browser session; return the count."""

    # back-channel logout (OIDC Back-Channel Logout 1.0)
    async def record_session_client(
        self, realm: str, session_id: str, client_id: str, user_id: str, now: datetime
    ) -> None:
        """Remember that `client_id` got tokens in browser session `session_id` (idempotent)."""

    async def take_session_clients(
        self, realm: str, user_id: str, session_id: str | None = None
    ) -> list[tuple[str, str]]:
        """Remove and return the (session id, client id) pairs of the user, of one session
        if `session_id` is given: the session ended."""

    async def forget_session_clients(self, before: datetime) -> int:
        """Drop records made before `before` (their sessions have expired); the count."""

    async def enqueue_logout_deliveries(self, deliveries: list[LogoutDelivery]) -> None:
        """Queue deliveries (one transaction)."""

    async def claim_logout_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[LogoutDelivery]:
        """Atomically take up to `limit` deliveries due at `now`: each gets `next_at =
        lease_until` and one more attempt, so another instance does not take it before the
        lease ends (and a crashed instance's claim is taken again after it)."""

    async def finish_logout_delivery(self, delivery_id: str) -> None:
        """Delivered or given up: remove it."""

    async def retry_logout_delivery(self, delivery_id: str, next_at: datetime) -> None:
        """Failed: due again at `next_at`."""

    # consents
    async def get_consent(self, realm: str, user_id: str, client_id: str) -> Consent | None: ...

    async def save_consent(self, consent: Consent) -> None:
        """Insert or replace (the scopes are the full remembered set)."""

    # signing keys
    async def list_signing_keys(self, realm: str) -> list[SigningKey]:
        """Every key of the realm, retired ones included, oldest first."""

    async def add_signing_key(self, key: SigningKey) -> None:
        """AlreadyExists on a duplicate (realm, kid)."""

    async def update_signing_key(
        self,
        realm: str,
        kid: str,
        *,
        status: KeyStatus,
        expect_status: KeyStatus | None = None,
        activated_at: datetime | None = None,
        retire_after: datetime | None = None,
    ) -> bool:
        """Set the status (and times given); with `expect_status`, only if the key is in that
        status now (compare-and-set, so concurrent rotations have one winner)."""

    # audit
    async def append_event(self, event: AuditEvent) -> None: ...

    async def list_events(
        self, realm: str, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEvent]:
        """Oldest first."""

    # --- second factors: TOTP and recovery codes (issue 20, engine.accounts.mfa) ---
    async def set_totp(self, realm: str, factor: TotpFactor) -> None:
        """Insert or replace the user's TOTP factor."""

    async def get_totp(self, realm: str, user_id: str) -> TotpFactor | None: ...

    async def use_totp_step(self, realm: str, user_id: str, step: int) -> bool:
        """Record that a code of time step `step` was accepted, atomically and only if no code
        of this step or a later one was (True); False if one was, or there is no factor.
        Of concurrent uses of one code exactly one gets True."""

    async def delete_totp(self, realm: str, user_id: str) -> bool:
        """Remove the user's TOTP factor; True if there was one."""

    async def set_recovery_codes(self, realm: str, user_id: str, code_hashes: list[str], now: datetime) -> None:
        """Replace every recovery code of the user by these (SHA-256 hex), in one transaction."""

    async def use_recovery_code(self, realm: str, user_id: str, code_hash: str) -> bool:
        """Spend the code: delete it atomically; True if it was there (unused). Of concurrent
        uses of one code exactly one gets True."""

    async def count_recovery_codes(self, realm: str, user_id: str) -> int:
        """Unused recovery codes of the user."""

    async def delete_recovery_codes(self, realm: str, user_id: str) -> int:
        """Remove every recovery code of the user; how many there were."""


    # passkeys (issue 20: WebAuthn credentials)
    async def add_passkey(self, credential: WebAuthnCredential) -> None:
        """AlreadyExists if (realm, credential_id) is registered already (to anyone)."""

    async def list_passkeys(self, realm: str, user_id: str) -> list[WebAuthnCredential]:
        """The user's passkeys, oldest first."""

    async def find_passkey(self, realm: str, credential_id: str) -> WebAuthnCredential | None:
        """The passkey with this credential id (a sign-in names no user: discoverable credentials)."""

    async def use_passkey(
        self, realm: str, credential_id: str, *, expect_sign_count: int, sign_count: int, now: datetime
    ) -> bool:
        """Record a verified sign-in: the new counter and `last_used_at`, only if the stored
        counter is still `expect_sign_count` (compare-and-set: of two sign-ins with the same
        counter, one wins). False: unknown, or the counter moved meanwhile."""

    async def rename_passkey(self, realm: str, user_id: str, credential_id: str, name: str) -> bool:
        """Rename one of the user's passkeys; False if the user has no such passkey."""

    async def delete_passkey(self, realm: str, user_id: str, credential_id: str) -> bool:
        """Remove one of the user's passkeys; False if the user has no such passkey."""

    async def delete_passkeys(self, realm: str, user_id: str) -> int:
        """Remove all of the user's passkeys; how many there were."""


class EphemeralStore(Protocol):
    """Short-lived JSON values under string keys, with TTLs (seconds).

    Keys are built by the engine (`<realm>:<kind>:<id>`); backends add their own prefix.
    A TTL is garbage collection only: callers that care about exact expiry keep an `exp`
    in the value and check it against their clock.
    """

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: str, value: dict[str, Any], ttl: int, *, only_if_absent: bool = False) -> bool:
        """Store; with only_if_absent, False (and nothing written) when the key exists."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """`get` of several keys in one round trip, in order."""

    async def take(self, key: str, *, leave: tuple[str, dict[str, Any], int] | None = None) -> dict[str, Any] | None:
        """Atomic get-and-delete: of N concurrent takes of one key exactly one gets the value.
        With `leave` (key, value, ttl), the one that gets it also stores that, in the same
        atomic step (a single-use value and the mark of its use, in one round trip)."""

    async def swap(self, key: str, value: dict[str, Any], ttl: int) -> dict[str, Any] | None:
        """Atomic store-and-return-the-old-value (None if there was none)."""

    async def delete(self, key: str) -> None: ...

    async def write_many(self, puts: list[tuple[str, dict[str, Any], int]], deletes: list[str]) -> None:
        """Several `put`s (key, value, ttl) and `delete`s in one round trip and one atomic
        step (no reader sees some of them done and others not): the deletes, then the puts."""

    async def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        """Add `amount` (>= 1) to a counter, created with `ttl` if absent (the TTL is not
        extended); the new value."""

    async def get_many_and_incr(self, keys: list[str], counter: str, ttl: int, *,
                                guards: int) -> tuple[list[dict[str, Any] | None], int | None]:
        """`get_many(keys)`, then `incr(counter, ttl)` unless one of the first `guards` keys
        exists, in one round trip and one atomic step: (the values, the new count or None
        when a guard was there). Brute-force protection: is the account locked, and if not,
        count this attempt."""

    async def incr_many(self, counters: list[tuple[str, int, int]]) -> list[int]:
        """`incr` of several counters (key, ttl, amount) in one round trip and one atomic
        step; their new values, in order."""

    async def ttl(self, key: str) -> int | None:
        """Seconds left, or None if the key does not exist."""
