"""Embedded durable store: SQLite through aiosqlite.

One connection in WAL mode. An `asyncio.Lock` serialises every operation on it, because
coroutines sharing one connection would otherwise interleave inside each other's
transactions. A single-statement write is atomic on its own (autocommit); multi-statement
writes (rotation, family creation, migrations) run in `BEGIN IMMEDIATE` transactions that
take SQLite's write lock up front, so another connection or process on the same file stays
safe too (it waits up to `busy_timeout_ms`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from engine.files import private_directory, touch_private
from engine.store.protocols import (
    AlreadyExists,
    AuditEvent,
    Consent,
    Credential,
    ExternalIdentity,
    KeyStatus,
    LogoutDelivery,
    RefreshFamily,
    RefreshToken,
    RotateResult,
    SigningKey,
    StoreUnavailable,
    TotpFactor,
    User,
    WebAuthnCredential,
)
from engine.store.sql import (
    Rows,
    check_successor,
    email_key,
    rotation_verdict,
    scopes_text,
    user_and_credential_by_email,
    utc,
)
from engine.store.sql.migrate import (
    CREATE_SCHEMA_MIGRATIONS,
    load_migrations,
    pending,
    split_statements,
)

_USER_AND_CREDENTIAL_BY_EMAIL = user_and_credential_by_email(("?1", "?2", "?3"))
_UNIQUE_CODES = {2067, 1555}  # SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
# SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN (primary codes)
_UNAVAILABLE_CODES = {5, 6, 10, 13, 14}


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if getattr(exc, "sqlite_errorcode", None) in _UNIQUE_CODES:
            raise AlreadyExists(str(exc)) from exc
        raise
    except sqlite3.Error as exc:
        if (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF in _UNAVAILABLE_CODES:
            raise StoreUnavailable(f"sqlite: {exc}") from exc
        raise
    except OSError as exc:
        raise StoreUnavailable(f"sqlite: {exc}") from exc


def _ts(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so comparing the text compares the times."""
    if value is None:
        return None
    return utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


ROWS = Rows(dt=_dt, js=json.loads)


class _Tx:
    """Statements on the connection; the caller holds the store's lock."""

    def __init__(self, db: aiosqlite.Connection):
        self.db = db

    @staticmethod
    def _params(params: tuple[Any, ...]) -> Any:
        return params[0] if len(params) == 1 and isinstance(params[0], dict) else params

    async def row(self, sql: str, *params: Any) -> sqlite3.Row | None:
        async with self.db.execute(sql, self._params(params)) as cursor:
            return await cursor.fetchone()

    async def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        async with self.db.execute(sql, self._params(params)) as cursor:
            return list(await cursor.fetchall())

    async def exec(self, sql: str, *params: Any) -> int:
        async with self.db.execute(sql, self._params(params)) as cursor:
            return cursor.rowcount

    async def insert_token(self, token: RefreshToken) -> None:
        await self.exec(
            "INSERT INTO refresh_tokens (realm, token_hash, family_id, created_at, expires_at,"
            " replaced_by, replaced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            token.realm, token.token_hash, token.family_id, _ts(token.created_at),
            _ts(token.expires_at), token.replaced_by, _ts(token.replaced_at),
        )

    async def user(self, realm: str, user_id: str) -> User | None:
        row = await self.row("SELECT * FROM users WHERE realm = ? AND id = ?", realm, user_id)
        return None if row is None else ROWS.user(row)

    async def token_and_family(
        self, realm: str, token_hash: str
    ) -> tuple[RefreshToken, RefreshFamily] | None:
        row = await self.row(
            "SELECT * FROM refresh_tokens WHERE realm = ? AND token_hash = ?", realm, token_hash
        )
        if row is None:
            return None
        fam = await self.row(
            "SELECT * FROM refresh_families WHERE realm = ? AND id = ?", realm, row["family_id"]
        )
        return ROWS.token(row), ROWS.family(fam)


async def _delete_belongings(tx: _Tx, realm: str, user_ids: list[str]) -> None:
    """Everything stored under these (just deleted) users, in the caller's transaction.
    Refresh tokens go with their families (ON DELETE CASCADE)."""
    for start in range(0, len(user_ids), 500):  # SQLite's bound-parameter limit
        chunk = user_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for table in ("credentials", "external_identities", "consents", "webauthn_credentials"):
            await tx.exec(f"DELETE FROM {table} WHERE realm = ? AND user_id IN ({marks})", realm, *chunk)
        await tx.exec(f"DELETE FROM refresh_tokens WHERE realm = ? AND family_id IN (SELECT id FROM"
                      f" refresh_families WHERE realm = ? AND user_id IN ({marks}))", realm, realm, *chunk)
        await tx.exec(f"DELETE FROM refresh_families WHERE realm = ? AND user_id IN ({marks})", realm, *chunk)
        # second factors (issue 20, mfa)
        for table in ("mfa_totp", "mfa_recovery_codes"):
            await tx.exec(f"DELETE FROM {table} WHERE realm = ? AND user_id IN ({marks})", realm, *chunk)


class SqliteDurableStore:
    """`DurableStore` on one SQLite file (or `:memory:`). Open with `SqliteDurableStore.open`."""

    def __init__(self, db: aiosqlite.Connection, path: str):
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, *, busy_timeout_ms: int = 5000) -> SqliteDurableStore:
        with _mapped_errors():
            if path != ":memory:":
                # Owner-only (0600, directory 0700): it holds password hashes and keys.
                private_directory(Path(path).parent)
                touch_private(Path(path))
            db = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN ourselves
            try:
                db.row_factory = sqlite3.Row
                await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                if path != ":memory:":
                    await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = NORMAL")
                await db.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                await db.close()
                raise
        return cls(db, path)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[_Tx]:
        """A write transaction holding the connection (and SQLite's write lock) throughout."""
        async with self._lock:
            with _mapped_errors():
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield _Tx(self._db)
                    await self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        try:
                            await self._db.execute("ROLLBACK")
                        except sqlite3.OperationalError:
                            # Cancelled while the COMMIT was already queued on the
                            # connection's thread: it committed, nothing is left to roll
                            # back. The cancellation (or error) stays what is raised; a
                            # `cannot rollback` in its place would let a background loop
                            # that survives errors ignore its cancellation (a hung stop).
                            pass
                    raise

    async def _row(self, sql: str, *params: Any) -> sqlite3.Row | None:
        async with self._lock:
            with _mapped_errors():
                return await _Tx(self._db).row(sql, *params)

    async def _rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        async with self._lock:
            with _mapped_errors():
                return await _Tx(self._db).rows(sql, *params)

    async def _exec(self, sql: str, *params: Any) -> int:
        """One statement, atomic on its own (autocommit); returns the rows changed."""
        async with self._lock:
            with _mapped_errors():
                return await _Tx(self._db).exec(sql, *params)

    async def ping(self) -> None:
        await self._row("SELECT 1")

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def migrate(self) -> list[str]:
        migrations = load_migrations("sqlite")
        async with self._tx() as tx:
            await tx.exec(CREATE_SCHEMA_MIGRATIONS["sqlite"])
            done = {r[0] for r in await tx.rows("SELECT version FROM schema_migrations")}
            applied = []
            for migration in pending(migrations, done):
                for statement in split_statements(migration.sql):
                    await tx.exec(statement)
                await tx.exec(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    migration.version, _ts(datetime.now(UTC)),
                )
                applied.append(migration.version)
        return applied

    # users and credentials

    async def create_user(self, user: User) -> None:
        await self._exec(
            "INSERT INTO users (realm, id, email, email_lower, email_verified, profile,"
            " created_at, disabled, self_registered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            user.realm, user.id, user.email, email_key(user.email), user.email_verified,
            json.dumps(user.profile), _ts(user.created_at), user.disabled, user.self_registered,
        )

    async def get_user(self, realm: str, user_id: str) -> User | None:
        async with self._lock:
            with _mapped_errors():
                return await _Tx(self._db).user(realm, user_id)

    async def list_users(self, realm: str, *, after: str | None = None, limit: int = 100) -> list[User]:
        rows = await self._rows(
            "SELECT * FROM users WHERE realm = ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3",
            realm, after, int(limit))
        return [ROWS.user(r) for r in rows]

    async def get_user_by_email(self, realm: str, email: str) -> User | None:
        row = await self._row(
            "SELECT * FROM users WHERE realm = ? AND email_lower = ?", realm, email_key(email)
        )
        return None if row is None else ROWS.user(row)

    async def get_user_and_credential_by_email(
        self, realm: str, email: str, kind: str
    ) -> tuple[User | None, Credential | None]:
        row = await self._row(_USER_AND_CREDENTIAL_BY_EMAIL, realm, email_key(email), kind)
        return ROWS.user_and_credential(row, kind)

    async def update_user(
        self, realm: str, user_id: str, *, email_verified: bool | None = None,
        profile: dict[str, Any] | None = None, disabled: bool | None = None,
    ) -> User | None:
        changes = {
            column: value
            for column, value in (("email_verified", email_verified), ("disabled", disabled),
                                  ("profile", None if profile is None else json.dumps(profile)))
            if value is not None
        }
        async with self._tx() as tx:
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                await tx.exec(f"UPDATE users SET {assignments} WHERE realm = ? AND id = ?",
                              *changes.values(), realm, user_id)
            row = await tx.row("SELECT * FROM users WHERE realm = ? AND id = ?", realm, user_id)
        return None if row is None else ROWS.user(row)

    async def set_credential(self, realm: str, credential: Credential) -> None:
        await self._exec(
            "INSERT INTO credentials (realm, user_id, kind, secret_hash, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (realm, user_id, kind) DO UPDATE SET"
            " secret_hash = excluded.secret_hash, updated_at = excluded.updated_at",
            realm, credential.user_id, credential.kind, credential.secret_hash,
            _ts(credential.updated_at),
        )

    async def get_credential(self, realm: str, user_id: str, kind: str) -> Credential | None:
        row = await self._row(
            "SELECT * FROM credentials WHERE realm = ? AND user_id = ? AND kind = ?",
            realm, user_id, kind,
        )
        return None if row is None else ROWS.credential(row)

    async def delete_credential(self, realm: str, user_id: str, kind: str) -> bool:
        removed = await self._exec(
            "DELETE FROM credentials WHERE realm = ? AND user_id = ? AND kind = ?", realm, user_id, kind)
        return removed > 0

    # external identities

    async def link_identity(self, identity: ExternalIdentity) -> None:
        await self._exec(
            "INSERT INTO external_identities (realm, issuer, subject, provider_id, user_id,"
            " email, claims, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            identity.realm, identity.issuer, identity.subject, identity.provider_id,
            identity.user_id, identity.email, json.dumps(identity.claims),
            _ts(identity.created_at),
        )

    async def find_identity(self, realm: str, issuer: str, subject: str) -> ExternalIdentity | None:
        row = await self._row(
            "SELECT * FROM external_identities WHERE realm = ? AND issuer = ? AND subject = ?",
            realm, issuer, subject,
        )
        return None if row is None else ROWS.identity(row)

    async def list_identities(self, realm: str, user_id: str) -> list[ExternalIdentity]:
        rows = await self._rows(
            "SELECT * FROM external_identities WHERE realm = ? AND user_id = ?"
            " ORDER BY created_at, issuer, subject", realm, user_id,
        )
        return [ROWS.identity(r) for r in rows]

    async def unlink_identities(self, realm: str, user_id: str) -> list[ExternalIdentity]:
        rows = await self._rows(  # one statement: no link is added between a read and the delete
            "DELETE FROM external_identities WHERE realm = ? AND user_id = ? RETURNING *", realm, user_id)
        return sorted((ROWS.identity(r) for r in rows), key=lambda i: (i.created_at, i.issuer, i.subject))

    # removing users

    async def delete_user(self, realm: str, user_id: str) -> bool:
        async with self._tx() as tx:
            gone = await tx.exec("DELETE FROM users WHERE realm = ? AND id = ?", realm, user_id)
            await _delete_belongings(tx, realm, [user_id])
        return gone == 1

    async def delete_unverified_users(
        self, realm: str, created_before: datetime, limit: int = 1000
    ) -> list[str]:
        async with self._tx() as tx:
            # The condition is checked in the DELETE itself: a user verified a moment ago stays.
            rows = await tx.rows(
                "DELETE FROM users WHERE realm = ?1 AND id IN (SELECT id FROM users WHERE realm = ?1"
                " AND self_registered = 1 AND email_verified = 0 AND created_at < ?2"
                " ORDER BY created_at LIMIT ?3) RETURNING id",
                realm, _ts(created_before), int(limit),
            )
            ids = [r["id"] for r in rows]
            await _delete_belongings(tx, realm, ids)
        return ids

    # refresh-token families

    async def create_refresh_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        if first.realm != family.realm or first.family_id != family.id:
            raise ValueError("the first token must belong to the family it starts")
        async with self._tx() as tx:
            await tx.exec(
                "INSERT INTO refresh_families (realm, id, client_id, user_id, scope, session_id,"
                " auth_time, created_at, expires_at, revoked_at, revoked_reason, data, resources)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                family.realm, family.id, family.client_id, family.user_id, family.scope,
                family.session_id, _ts(family.auth_time), _ts(family.created_at),
                _ts(family.expires_at), _ts(family.revoked_at), family.revoked_reason,
                json.dumps(family.data), None if family.resources is None else json.dumps(list(family.resources)),
            )
            await tx.insert_token(first)

    async def get_refresh_token(
        self, realm: str, token_hash: str
    ) -> tuple[RefreshToken, RefreshFamily] | None:
        async with self._lock:
            with _mapped_errors():
                return await _Tx(self._db).token_and_family(realm, token_hash)

    async def get_refresh_token_and_user(
        self, realm: str, token_hash: str
    ) -> tuple[RefreshToken, RefreshFamily, User | None] | None:
        async with self._lock:
            with _mapped_errors():
                tx = _Tx(self._db)
                found = await tx.token_and_family(realm, token_hash)
                return None if found is None else (*found, await tx.user(realm, found[1].user_id))

    async def rotate_refresh_token(
        self, realm: str, old_hash: str, new: RefreshToken, now: datetime
    ) -> RotateResult:
        now = utc(now)
        async with self._tx() as tx:
            found = await tx.token_and_family(realm, old_hash)
            if found is None:
                return RotateResult("unknown")
            token, family = found
            verdict = rotation_verdict(token, family, now)
            if verdict is not None:
                return RotateResult(verdict, token, family)
            check_successor(realm, token, new)
            changed = await tx.exec(
                "UPDATE refresh_tokens SET replaced_by = ?, replaced_at = ?"
                " WHERE realm = ? AND token_hash = ? AND replaced_by IS NULL",
                new.token_hash, _ts(now), realm, old_hash,
            )
            if changed != 1:  # unreachable under BEGIN IMMEDIATE; kept as the safety net
                token, family = await tx.token_and_family(realm, old_hash)
                return RotateResult("already_rotated", token, family)
            await tx.insert_token(new)
        rotated = replace(token, replaced_by=new.token_hash, replaced_at=now)
        return RotateResult("rotated", rotated, family)

    async def revoke_family(self, realm: str, family_id: str, reason: str, now: datetime) -> bool:
        changed = await self._exec(
            "UPDATE refresh_families SET revoked_at = ?, revoked_reason = ?"
            " WHERE realm = ? AND id = ? AND revoked_at IS NULL",
            _ts(now), reason, realm, family_id,
        )
        return changed == 1

    async def revoke_families(
        self, realm: str, now: datetime, reason: str, *, user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Filters combine: with both given, only the user's families of that session."""
        if user_id is None and session_id is None:
            raise ValueError("revoke_families needs user_id and/or session_id")
        return await self._exec(
            "UPDATE refresh_families SET revoked_at = :now, revoked_reason = :reason"
            " WHERE realm = :realm AND revoked_at IS NULL"
            " AND (:user IS NULL OR user_id = :user) AND (:sess IS NULL OR session_id = :sess)",
            {"now": _ts(now), "reason": reason, "realm": realm, "user": user_id,
             "sess": session_id},
        )

    # back-channel logout

    async def record_session_client(
        self, realm: str, session_id: str, client_id: str, user_id: str, now: datetime
    ) -> None:
        await self._exec(
            "INSERT INTO session_clients (realm, session_id, client_id, user_id, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            realm, session_id, client_id, user_id, _ts(now),
        )

    async def take_session_clients(
        self, realm: str, user_id: str, session_id: str | None = None
    ) -> list[tuple[str, str]]:
        async with self._tx() as tx:
            rows = await tx.rows(
                "DELETE FROM session_clients WHERE realm = ?1 AND user_id = ?2"
                " AND (?3 IS NULL OR session_id = ?3) RETURNING session_id, client_id",
                realm, user_id, session_id,
            )
        return sorted((r["session_id"], r["client_id"]) for r in rows)

    async def forget_session_clients(self, before: datetime) -> int:
        return await self._exec("DELETE FROM session_clients WHERE created_at < ?", _ts(before))

    async def enqueue_logout_deliveries(self, deliveries: list[LogoutDelivery]) -> None:
        if not deliveries:
            return
        async with self._tx() as tx:
            for d in deliveries:
                await tx.exec(
                    "INSERT INTO logout_deliveries (id, realm, client_id, subject, session_id, created_at,"
                    " next_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    d.id, d.realm, d.client_id, d.subject, d.session_id, _ts(d.created_at),
                    _ts(d.next_at), d.attempts,
                )

    async def claim_logout_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[LogoutDelivery]:
        # One statement under SQLite's write lock: no other connection claims the same rows.
        async with self._tx() as tx:
            rows = await tx.rows(
                "UPDATE logout_deliveries SET next_at = ?1, attempts = attempts + 1 WHERE id IN"
                " (SELECT id FROM logout_deliveries WHERE next_at <= ?2 ORDER BY next_at LIMIT ?3)"
                " RETURNING *",
                _ts(lease_until), _ts(now), limit,
            )
        return [ROWS.delivery(r) for r in rows]

    async def finish_logout_delivery(self, delivery_id: str) -> None:
        await self._exec("DELETE FROM logout_deliveries WHERE id = ?", delivery_id)

    async def retry_logout_delivery(self, delivery_id: str, next_at: datetime) -> None:
        await self._exec("UPDATE logout_deliveries SET next_at = ? WHERE id = ?", _ts(next_at), delivery_id)

    # consents

    async def get_consent(self, realm: str, user_id: str, client_id: str) -> Consent | None:
        row = await self._row(
            "SELECT * FROM consents WHERE realm = ? AND user_id = ? AND client_id = ?",
            realm, user_id, client_id,
        )
        return None if row is None else ROWS.consent(row)

    async def save_consent(self, consent: Consent) -> None:
        await self._exec(
            "INSERT INTO consents (realm, user_id, client_id, scopes, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (realm, user_id, client_id) DO UPDATE SET"
            " scopes = excluded.scopes, updated_at = excluded.updated_at",
            consent.realm, consent.user_id, consent.client_id, scopes_text(consent.scopes),
            _ts(consent.updated_at),
        )

    # signing keys

    async def list_signing_keys(self, realm: str) -> list[SigningKey]:
        rows = await self._rows(
            "SELECT * FROM signing_keys WHERE realm = ? ORDER BY created_at, kid", realm
        )
        return [ROWS.key(r) for r in rows]

    async def add_signing_key(self, key: SigningKey) -> None:
        await self._exec(
            "INSERT INTO signing_keys (realm, kid, alg, status, public_jwk, private_jwk,"
            " created_at, activated_at, retire_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            key.realm, key.kid, key.alg, key.status, json.dumps(key.public_jwk),
            bytes(key.private_jwk), _ts(key.created_at), _ts(key.activated_at),
            _ts(key.retire_after),
        )

    async def update_signing_key(
        self, realm: str, kid: str, *, status: KeyStatus, expect_status: KeyStatus | None = None,
        activated_at: datetime | None = None, retire_after: datetime | None = None,
    ) -> bool:
        changed = await self._exec(
            "UPDATE signing_keys SET status = :status,"
            " activated_at = COALESCE(:activated, activated_at),"
            " retire_after = COALESCE(:retire, retire_after)"
            " WHERE realm = :realm AND kid = :kid AND (:expect IS NULL OR status = :expect)",
            {"status": status, "activated": _ts(activated_at), "retire": _ts(retire_after),
             "realm": realm, "kid": kid, "expect": expect_status},
        )
        return changed == 1

    # audit

    async def append_event(self, event: AuditEvent) -> None:
        await self._exec(
            "INSERT INTO audit_events (realm, type, at, user_id, client_id, ip, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            event.realm, event.type, _ts(event.at), event.user_id, event.client_id,
            event.ip, json.dumps(event.data),
        )

    async def list_events(
        self, realm: str, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEvent]:
        rows = await self._rows(
            "SELECT * FROM audit_events WHERE realm = :realm AND (:since IS NULL OR at >= :since)"
            " ORDER BY at, id LIMIT :limit", {"realm": realm, "since": _ts(since), "limit": limit},
        )
        return [ROWS.event(r) for r in rows]

    # passkeys (issue 20: WebAuthn credentials)

    async def add_passkey(self, credential: WebAuthnCredential) -> None:
        c = credential
        await self._exec(
            "INSERT INTO webauthn_credentials (realm, credential_id, user_id, public_key, sign_count, transports,"
            " aaguid, name, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            c.realm, c.credential_id, c.user_id, bytes(c.public_key), c.sign_count, " ".join(c.transports),
            c.aaguid, c.name, _ts(c.created_at), _ts(c.last_used_at),
        )

    async def list_passkeys(self, realm: str, user_id: str) -> list[WebAuthnCredential]:
        rows = await self._rows(
            "SELECT * FROM webauthn_credentials WHERE realm = ? AND user_id = ? ORDER BY created_at, credential_id",
            realm, user_id)
        return [ROWS.webauthn(r) for r in rows]

    async def find_passkey(self, realm: str, credential_id: str) -> WebAuthnCredential | None:
        row = await self._row(
            "SELECT * FROM webauthn_credentials WHERE realm = ? AND credential_id = ?", realm, credential_id)
        return None if row is None else ROWS.webauthn(row)

    async def use_passkey(
        self, realm: str, credential_id: str, *, expect_sign_count: int, sign_count: int, now: datetime
    ) -> bool:
        changed = await self._exec(
            "UPDATE webauthn_credentials SET sign_count = ?, last_used_at = ?"
            " WHERE realm = ? AND credential_id = ? AND sign_count = ?",
            int(sign_count), _ts(now), realm, credential_id, int(expect_sign_count))
        return changed == 1

    async def rename_passkey(self, realm: str, user_id: str, credential_id: str, name: str) -> bool:
        changed = await self._exec(
            "UPDATE webauthn_credentials SET name = ? WHERE realm = ? AND user_id = ? AND credential_id = ?",
            name, realm, user_id, credential_id)
        return changed == 1

    async def delete_passkey(self, realm: str, user_id: str, credential_id: str) -> bool:
        removed = await self._exec(
            "DELETE FROM webauthn_credentials WHERE realm = ? AND user_id = ? AND credential_id = ?",
            realm, user_id, credential_id)
        return removed == 1

    async def delete_passkeys(self, realm: str, user_id: str) -> int:
        return await self._exec("DELETE FROM webauthn_credentials WHERE realm = ? AND user_id = ?", realm, user_id)

    # --- second factors: TOTP and recovery codes (issue 20, engine.accounts.mfa) ---

    async def set_totp(self, realm: str, factor: TotpFactor) -> None:
        await self._exec(
            "INSERT INTO mfa_totp (realm, user_id, secret, last_step, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (realm, user_id) DO UPDATE SET secret = excluded.secret,"
            " last_step = excluded.last_step, created_at = excluded.created_at",
            realm, factor.user_id, factor.secret, factor.last_step, _ts(factor.created_at),
        )

    async def get_totp(self, realm: str, user_id: str) -> TotpFactor | None:
        row = await self._row("SELECT * FROM mfa_totp WHERE realm = ? AND user_id = ?", realm, user_id)
        if row is None:
            return None
        return TotpFactor(user_id=row["user_id"], secret=bytes(row["secret"]), created_at=_dt(row["created_at"]),
                          last_step=row["last_step"])

    async def use_totp_step(self, realm: str, user_id: str, step: int) -> bool:
        changed = await self._exec(
            "UPDATE mfa_totp SET last_step = ?1 WHERE realm = ?2 AND user_id = ?3"
            " AND (last_step IS NULL OR last_step < ?1)", int(step), realm, user_id)
        return changed == 1

    async def delete_totp(self, realm: str, user_id: str) -> bool:
        return await self._exec("DELETE FROM mfa_totp WHERE realm = ? AND user_id = ?", realm, user_id) > 0

    async def set_recovery_codes(self, realm: str, user_id: str, code_hashes: list[str], now: datetime) -> None:
        async with self._tx() as tx:
            await tx.exec("DELETE FROM mfa_recovery_codes WHERE realm = ? AND user_id = ?", realm, user_id)
            for code_hash in dict.fromkeys(code_hashes):
                await tx.exec("INSERT INTO mfa_recovery_codes (realm, user_id, code_hash, created_at)"
                              " VALUES (?, ?, ?, ?)", realm, user_id, code_hash, _ts(now))

    async def use_recovery_code(self, realm: str, user_id: str, code_hash: str) -> bool:
        removed = await self._exec(
            "DELETE FROM mfa_recovery_codes WHERE realm = ? AND user_id = ? AND code_hash = ?",
            realm, user_id, code_hash)
        return removed == 1

    async def count_recovery_codes(self, realm: str, user_id: str) -> int:
        row = await self._row("SELECT count(*) FROM mfa_recovery_codes WHERE realm = ? AND user_id = ?",
                              realm, user_id)
        return int(row[0])

    async def delete_recovery_codes(self, realm: str, user_id: str) -> int:
        return await self._exec("DELETE FROM mfa_recovery_codes WHERE realm = ? AND user_id = ?", realm, user_id)
