"""Production durable store: PostgreSQL through an asyncpg pool.

jsonb columns round-trip dicts through a per-connection codec; timestamptz columns come
back as aware UTC datetimes. Single-use and compare-and-set semantics come from row locks
(`SELECT ... FOR UPDATE`) and conditional `UPDATE ... WHERE`, so any number of instances
can share the database.

Faults: every operation is bounded in time (waiting for a pooled connection, connecting,
and each statement), so a dead, stopped or hung PostgreSQL turns into `StoreUnavailable`
(503) within a few seconds instead of a hang. The pool replaces connections that the
server closed, so service resumes by itself when PostgreSQL is back. A transaction cut
short by a failure is rolled back by the server: no half-written family or rotation.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

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
    JOINED_USER_COLUMNS,
    Rows,
    check_successor,
    email_key,
    rotation_verdict,
    scopes_text,
    user_and_credential_by_email,
    utc,
    utc_or_none,
)
from engine.store.sql.migrate import CREATE_SCHEMA_MIGRATIONS, load_migrations, pending

log = logging.getLogger(__name__)

MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('tessera-migrations'))"

_UNAVAILABLE = (
    OSError,
    TimeoutError,  # also command_timeout and the pool's acquire timeout expiring
    asyncpg.PostgresConnectionError,  # incl. "connection was closed in the middle of operation"
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a failover left us on a standby
)

# Seconds. Every query here is a primary-key lookup or a small write: one that takes
# longer means the server is in trouble, and the caller is better served by a fast 503.
COMMAND_TIMEOUT = 3.0  # one statement
CONNECT_TIMEOUT = 3.0
ACQUIRE_TIMEOUT = 3.0  # waiting for a free pooled connection (all busy, or all reconnecting)
# One whole operation: getting a connection, its statements (a transaction's ROLLBACK
# included) and handing the connection back. A hung server would otherwise cost a
# statement timeout, then a rollback or reset timeout on top.
OPERATION_TIMEOUT = 4.0
RELEASE_TIMEOUT = 1.0  # resetting a healthy connection for reuse
CLOSE_TIMEOUT = 5.0  # closing the pool at shutdown
MIGRATION_TIMEOUT = 600.0  # a migration may rewrite a big table


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(f"{exc.constraint_name}: {exc}") from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"postgres: {type(exc).__name__}: {exc}") from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset of a released connection. asyncpg's default sends `RESET ALL`,
    `UNLISTEN *`, `CLOSE ALL` and an advisory unlock: one more round trip after every
    operation (issue 7: half of all PostgreSQL round trips). This store leaves no session
    state behind: no SET, LISTEN, cursor outside a transaction or session advisory lock
    (the migration lock is transaction-scoped), and asyncpg itself still rolls back an
    open transaction before calling this."""


def _is_open(conn: Any) -> bool:
    """False once the server closed the connection (asyncpg then detaches it from its
    pool proxy, whose methods raise InterfaceError)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def _count(status: str) -> int:
    """Rows touched, from a command tag such as 'UPDATE 3'."""
    return int(status.rsplit(" ", 1)[-1])


ROWS = Rows()


_TOKEN_COLUMNS = (
    "t.token_hash, t.family_id, t.created_at AS token_created_at, t.expires_at AS token_expires_at,"
    " t.replaced_by, t.replaced_at"
)
_FAMILY_AND_FIRST_TOKEN = (
    "WITH family AS (INSERT INTO refresh_families (realm, id, client_id, user_id, scope, session_id,"
    " auth_time, created_at, expires_at, revoked_at, revoked_reason, data, resources)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $18))"
    " INSERT INTO refresh_tokens (realm, token_hash, family_id, created_at, expires_at, replaced_by, replaced_at)"
    " VALUES ($1, $13, $2, $14, $15, $16, $17)"
)
_FAMILY_OF_TOKEN = "refresh_tokens t JOIN refresh_families f ON f.realm = t.realm AND f.id = t.family_id"
_TOKEN_IS = "WHERE t.realm = $1 AND t.token_hash = $2"
_TOKEN_AND_FAMILY = f"SELECT {_TOKEN_COLUMNS}, f.* FROM {_FAMILY_OF_TOKEN} {_TOKEN_IS}"
_TOKEN_FAMILY_AND_USER = (
    f"SELECT {_TOKEN_COLUMNS}, f.*, {JOINED_USER_COLUMNS} FROM {_FAMILY_OF_TOKEN}"
    f" LEFT JOIN users u ON u.realm = f.realm AND u.id = f.user_id {_TOKEN_IS}"
)
_USER_AND_CREDENTIAL_BY_EMAIL = user_and_credential_by_email(("$1", "$2", "$3"))
# $1 realm, $2 old hash, $3 new hash, $4 now, $5 family, $6 new created_at, $7 new expires_at.
# The conditions are those of `rotation_verdict` returning None, plus `check_successor`.
_ROTATE = (
    "WITH old AS ("
    " UPDATE refresh_tokens t SET replaced_by = $3, replaced_at = $4 FROM refresh_families f"
    " WHERE t.realm = $1 AND t.token_hash = $2 AND t.replaced_by IS NULL AND t.expires_at > $4"
    " AND t.family_id = $5 AND f.realm = t.realm AND f.id = t.family_id"
    " AND f.revoked_at IS NULL AND f.expires_at > $4"
    f" RETURNING {_TOKEN_COLUMNS}, f.*"
    "), successor AS ("
    " INSERT INTO refresh_tokens (realm, token_hash, family_id, created_at, expires_at)"
    " SELECT $1, $3, family_id, $6, $7 FROM old"
    ") SELECT * FROM old"
)


def _token_and_family(row: Any) -> tuple[RefreshToken, RefreshFamily]:
    token = RefreshToken(token_hash=row["token_hash"], family_id=row["family_id"], realm=row["realm"],
                         created_at=row["token_created_at"], expires_at=row["token_expires_at"],
                         replaced_by=row["replaced_by"], replaced_at=row["replaced_at"])
    return token, ROWS.family(row)


async def _delete_belongings(conn: asyncpg.Connection, realm: str, user_ids: list[str]) -> None:
    """Everything stored under these (just deleted) users, in the caller's transaction."""
    if not user_ids:
        return
    for table in ("credentials", "external_identities", "consents", "webauthn_credentials"):
        await conn.execute(f"DELETE FROM {table} WHERE realm = $1 AND user_id = ANY($2::text[])", realm, user_ids)
    # The tokens go with their families (ON DELETE CASCADE).
    await conn.execute("DELETE FROM refresh_families WHERE realm = $1 AND user_id = ANY($2::text[])",
                       realm, user_ids)
    # second factors (issue 20, mfa)
    for table in ("mfa_totp", "mfa_recovery_codes"):
        await conn.execute(f"DELETE FROM {table} WHERE realm = $1 AND user_id = ANY($2::text[])", realm, user_ids)


class PostgresDurableStore:
    """`DurableStore` on PostgreSQL. Open with `PostgresDurableStore.open(dsn)`."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = ACQUIRE_TIMEOUT):
        self._pool = pool
        self._acquire_timeout = acquire_timeout

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = COMMAND_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        acquire_timeout: float = ACQUIRE_TIMEOUT,
    ) -> PostgresDurableStore:
        with _mapped_errors():
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session,
                command_timeout=command_timeout, timeout=connect_timeout,
            )
        return cls(pool, acquire_timeout=acquire_timeout)

    @asynccontextmanager
    async def _connection(self, deadline: float = OPERATION_TIMEOUT) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one operation: waiting for it and using it take at
        most `deadline` seconds (asyncpg's own `Pool.fetch` & co. wait for a free
        connection without a limit). A connection that timed out or broke is dropped,
        not reset: resetting it would wait on the very server that does not answer."""
        conn: Any = None
        with _mapped_errors():
            try:
                async with asyncio.timeout(deadline):
                    # A timeout scope, not acquire(timeout=): that one wraps the wait in a
                    # task of its own on every operation.
                    async with asyncio.timeout(self._acquire_timeout):
                        conn = await self._pool.acquire()
                    yield conn
            except (*_UNAVAILABLE, asyncio.CancelledError):
                if conn is not None and _is_open(conn):
                    conn.terminate()
                raise
            finally:
                if conn is not None:
                    await self._release(conn)

    async def _release(self, conn: Any) -> None:
        try:
            await self._pool.release(conn, timeout=RELEASE_TIMEOUT)
        except Exception:  # asyncpg terminated it; the pool opens a new one when needed
            log.debug("a connection could not be reset; dropped", exc_info=True)

    @asynccontextmanager
    async def _tx(self, deadline: float = OPERATION_TIMEOUT) -> AsyncIterator[asyncpg.Connection]:
        """One transaction. If the connection dies inside it, the server has rolled it
        back: the original error is raised (not asyncpg's complaint that it cannot
        roll back on a closed connection)."""
        async with self._connection(deadline) as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield conn
            except BaseException:
                if _is_open(conn):
                    await transaction.rollback()
                raise
            await transaction.commit()

    async def _read(self, method: str, sql: str, *args: Any) -> Any:
        """Run an idempotent statement; once more on a new connection if the pooled one
        turns out to be dead (a restarted server closed it before we noticed)."""
        for attempt in (1, 2):
            try:
                async with self._connection() as conn:
                    return await getattr(conn, method)(sql, *args)
            except StoreUnavailable as exc:
                if attempt == 2 or not isinstance(exc.__cause__, asyncpg.ConnectionDoesNotExistError):
                    raise

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._read("fetchrow", sql, *args)  # SELECTs and idempotent UPDATEs only

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._read("fetch", sql, *args)

    async def _execute(self, sql: str, *args: Any) -> int:
        async with self._connection() as conn:
            return _count(await conn.execute(sql, *args))

    async def ping(self) -> None:
        await self._fetchrow("SELECT 1")

    async def close(self) -> None:
        """Close gracefully if the server answers; a hung one must not hold up shutdown."""
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except (TimeoutError, *_UNAVAILABLE):
            self._pool.terminate()

    async def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction under an advisory lock, so concurrent
        callers (several instances starting at once) serialise and only one applies."""
        migrations = load_migrations("postgres")
        async with self._tx(MIGRATION_TIMEOUT) as conn:
            await conn.execute(MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT)  # another instance may be migrating
            await conn.execute(CREATE_SCHEMA_MIGRATIONS["postgres"])
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for migration in pending(migrations, done):
                # no arguments: multi-statement is fine
                await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT)
                await conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", migration.version
                )
                applied.append(migration.version)
        return applied

    # users and credentials

    async def create_user(self, user: User) -> None:
        await self._execute(
            "INSERT INTO users (realm, id, email, email_lower, email_verified, profile,"
            " created_at, disabled, self_registered) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            user.realm, user.id, user.email, email_key(user.email), user.email_verified,
            user.profile, utc(user.created_at), user.disabled, user.self_registered,
        )

    async def get_user(self, realm: str, user_id: str) -> User | None:
        row = await self._fetchrow(
            "SELECT * FROM users WHERE realm = $1 AND id = $2", realm, user_id
        )
        return None if row is None else ROWS.user(row)

    async def list_users(self, realm: str, *, after: str | None = None, limit: int = 100) -> list[User]:
        rows = await self._fetch(
            "SELECT * FROM users WHERE realm = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
            realm, after, int(limit))
        return [ROWS.user(r) for r in rows]

    async def get_user_by_email(self, realm: str, email: str) -> User | None:
        row = await self._fetchrow(
            "SELECT * FROM users WHERE realm = $1 AND email_lower = $2", realm, email_key(email)
        )
        return None if row is None else ROWS.user(row)

    async def get_user_and_credential_by_email(
        self, realm: str, email: str, kind: str
    ) -> tuple[User | None, Credential | None]:
        row = await self._fetchrow(_USER_AND_CREDENTIAL_BY_EMAIL, realm, email_key(email), kind)
        return ROWS.user_and_credential(row, kind)

    async def update_user(
        self, realm: str, user_id: str, *, email_verified: bool | None = None,
        profile: dict[str, Any] | None = None, disabled: bool | None = None,
    ) -> User | None:
        changes = {
            column: value
            for column, value in (
                ("email_verified", email_verified), ("profile", profile), ("disabled", disabled)
            )
            if value is not None
        }
        if not changes:
            return await self.get_user(realm, user_id)
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=3))
        row = await self._fetchrow(
            f"UPDATE users SET {assignments} WHERE realm = $1 AND id = $2 RETURNING *",
            realm, user_id, *changes.values(),
        )
        return None if row is None else ROWS.user(row)

    async def set_credential(self, realm: str, credential: Credential) -> None:
        await self._execute(
            "INSERT INTO credentials (realm, user_id, kind, secret_hash, updated_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (realm, user_id, kind) DO UPDATE SET"
            " secret_hash = excluded.secret_hash, updated_at = excluded.updated_at",
            realm, credential.user_id, credential.kind, credential.secret_hash,
            utc(credential.updated_at),
        )

    async def get_credential(self, realm: str, user_id: str, kind: str) -> Credential | None:
        row = await self._fetchrow(
            "SELECT * FROM credentials WHERE realm = $1 AND user_id = $2 AND kind = $3",
            realm, user_id, kind,
        )
        return None if row is None else ROWS.credential(row)

    async def delete_credential(self, realm: str, user_id: str, kind: str) -> bool:
        removed = await self._execute(
            "DELETE FROM credentials WHERE realm = $1 AND user_id = $2 AND kind = $3", realm, user_id, kind)
        return removed > 0

    # external identities

    async def link_identity(self, identity: ExternalIdentity) -> None:
        await self._execute(
            "INSERT INTO external_identities (realm, issuer, subject, provider_id, user_id,"
            " email, claims, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            identity.realm, identity.issuer, identity.subject, identity.provider_id,
            identity.user_id, identity.email, identity.claims, utc(identity.created_at),
        )

    async def find_identity(self, realm: str, issuer: str, subject: str) -> ExternalIdentity | None:
        row = await self._fetchrow(
            "SELECT * FROM external_identities WHERE realm = $1 AND issuer = $2 AND subject = $3",
            realm, issuer, subject,
        )
        return None if row is None else ROWS.identity(row)

    async def list_identities(self, realm: str, user_id: str) -> list[ExternalIdentity]:
        rows = await self._fetch(
            "SELECT * FROM external_identities WHERE realm = $1 AND user_id = $2"
            " ORDER BY created_at, issuer, subject", realm, user_id,
        )
        return [ROWS.identity(r) for r in rows]

    async def unlink_identities(self, realm: str, user_id: str) -> list[ExternalIdentity]:
        async with self._connection() as conn:  # not retried: it writes
            rows = await conn.fetch(
                "DELETE FROM external_identities WHERE realm = $1 AND user_id = $2 RETURNING *", realm, user_id)
        return sorted((ROWS.identity(r) for r in rows), key=lambda i: (i.created_at, i.issuer, i.subject))

    # removing users

    async def delete_user(self, realm: str, user_id: str) -> bool:
        async with self._tx() as conn:
            gone = await conn.fetch("DELETE FROM users WHERE realm = $1 AND id = $2 RETURNING id", realm, user_id)
            await _delete_belongings(conn, realm, [r["id"] for r in gone])
        return bool(gone)

    async def delete_unverified_users(
        self, realm: str, created_before: datetime, limit: int = 1000
    ) -> list[str]:
        async with self._tx(MIGRATION_TIMEOUT) as conn:
            # Rows are locked as they are picked (SKIP LOCKED: a verification writing one
            # now is left alone) and the condition checked again in the DELETE: an account
            # verified a moment ago stays.
            rows = await conn.fetch(
                "WITH doomed AS MATERIALIZED (SELECT id FROM users WHERE realm = $1"
                " AND self_registered AND NOT email_verified AND created_at < $2"
                " ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
                " DELETE FROM users u USING doomed WHERE u.realm = $1 AND u.id = doomed.id"
                " AND u.self_registered AND NOT u.email_verified RETURNING u.id",
                realm, utc(created_before), int(limit),
            )
            ids = [r["id"] for r in rows]
            await _delete_belongings(conn, realm, ids)
        return ids

    # refresh-token families

    async def create_refresh_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        if first.realm != family.realm or first.family_id != family.id:
            raise ValueError("the first token must belong to the family it starts")
        # One statement, one round trip (BEGIN, two INSERTs and COMMIT were four): the
        # family and its first token are written together or not at all; the foreign key
        # is checked at the end of the statement, when both rows are there.
        async with self._connection() as conn:  # not retried: it writes
            await conn.execute(
                _FAMILY_AND_FIRST_TOKEN,
                family.realm, family.id, family.client_id, family.user_id, family.scope,
                family.session_id, utc(family.auth_time), utc(family.created_at),
                utc(family.expires_at), utc_or_none(family.revoked_at), family.revoked_reason,
                family.data, first.token_hash, utc(first.created_at), utc(first.expires_at),
                first.replaced_by, utc_or_none(first.replaced_at),
                None if family.resources is None else list(family.resources),
            )

    @staticmethod
    async def _insert_token(conn: asyncpg.Connection, token: RefreshToken) -> None:
        await conn.execute(
            "INSERT INTO refresh_tokens (realm, token_hash, family_id, created_at, expires_at,"
            " replaced_by, replaced_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            token.realm, token.token_hash, token.family_id, utc(token.created_at),
            utc(token.expires_at), token.replaced_by, utc_or_none(token.replaced_at),
        )

    async def get_refresh_token(
        self, realm: str, token_hash: str
    ) -> tuple[RefreshToken, RefreshFamily] | None:
        row = await self._fetchrow(_TOKEN_AND_FAMILY, realm, token_hash)  # one round trip, one statement
        return None if row is None else _token_and_family(row)

    async def get_refresh_token_and_user(
        self, realm: str, token_hash: str
    ) -> tuple[RefreshToken, RefreshFamily, User | None] | None:
        row = await self._fetchrow(_TOKEN_FAMILY_AND_USER, realm, token_hash)
        return None if row is None else (*_token_and_family(row), ROWS.joined_user(row))

    async def rotate_refresh_token(
        self, realm: str, old_hash: str, new: RefreshToken, now: datetime
    ) -> RotateResult:
        now = utc(now)
        if new.realm == realm:
            # The common case in one statement (one round trip): replace the token if it is
            # live, unreplaced and of the successor's family, and insert the successor.
            # A concurrent rotation waits on the row lock, then finds `replaced_by` set and
            # changes nothing; every other outcome is told apart below.
            async with self._connection() as conn:  # not retried: it writes
                row = await conn.fetchrow(
                    _ROTATE, realm, old_hash, new.token_hash, now, new.family_id, utc(new.created_at),
                    utc(new.expires_at),
                )
            if row is not None:
                token, family = _token_and_family(row)
                return RotateResult("rotated", token, family)
        async with self._tx() as conn:
            # The row lock serialises concurrent rotations of one token: a waiter re-reads
            # the row after the winner commits and sees replaced_by set.
            row = await conn.fetchrow(
                "SELECT * FROM refresh_tokens WHERE realm = $1 AND token_hash = $2 FOR UPDATE",
                realm, old_hash,
            )
            if row is None:
                return RotateResult("unknown")
            fam = await conn.fetchrow(
                "SELECT * FROM refresh_families WHERE realm = $1 AND id = $2",
                realm, row["family_id"],
            )
            token, family = ROWS.token(row), ROWS.family(fam)
            verdict = rotation_verdict(token, family, now)
            if verdict is not None:
                return RotateResult(verdict, token, family)
            check_successor(realm, token, new)
            changed = _count(await conn.execute(
                "UPDATE refresh_tokens SET replaced_by = $3, replaced_at = $4"
                " WHERE realm = $1 AND token_hash = $2 AND replaced_by IS NULL",
                realm, old_hash, new.token_hash, now,
            ))
            if changed != 1:  # unreachable while the row is locked; kept as the safety net
                row = await conn.fetchrow(
                    "SELECT * FROM refresh_tokens WHERE realm = $1 AND token_hash = $2",
                    realm, old_hash,
                )
                return RotateResult("already_rotated", ROWS.token(row), family)
            await self._insert_token(conn, new)
        rotated = replace(token, replaced_by=new.token_hash, replaced_at=now)
        return RotateResult("rotated", rotated, family)

    async def revoke_family(self, realm: str, family_id: str, reason: str, now: datetime) -> bool:
        changed = await self._execute(
            "UPDATE refresh_families SET revoked_at = $3, revoked_reason = $4"
            " WHERE realm = $1 AND id = $2 AND revoked_at IS NULL",
            realm, family_id, utc(now), reason,
        )
        return changed == 1

    async def revoke_families(
        self, realm: str, now: datetime, reason: str, *, user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Filters combine: with both given, only the user's families of that session."""
        if user_id is None and session_id is None:
            raise ValueError("revoke_families needs user_id and/or session_id")
        return await self._execute(
            "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3"
            " WHERE realm = $1 AND revoked_at IS NULL"
            " AND ($4::text IS NULL OR user_id = $4) AND ($5::text IS NULL OR session_id = $5)",
            realm, utc(now), reason, user_id, session_id,
        )

    # back-channel logout

    async def record_session_client(
        self, realm: str, session_id: str, client_id: str, user_id: str, now: datetime
    ) -> None:
        await self._execute(
            "INSERT INTO session_clients (realm, session_id, client_id, user_id, created_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            realm, session_id, client_id, user_id, utc(now),
        )

    async def take_session_clients(
        self, realm: str, user_id: str, session_id: str | None = None
    ) -> list[tuple[str, str]]:
        async with self._tx() as conn:
            rows = await conn.fetch(
                "DELETE FROM session_clients WHERE realm = $1 AND user_id = $2"
                " AND ($3::text IS NULL OR session_id = $3) RETURNING session_id, client_id",
                realm, user_id, session_id,
            )
        return sorted((r["session_id"], r["client_id"]) for r in rows)

    async def forget_session_clients(self, before: datetime) -> int:
        return await self._execute("DELETE FROM session_clients WHERE created_at < $1", utc(before))

    async def enqueue_logout_deliveries(self, deliveries: list[LogoutDelivery]) -> None:
        if not deliveries:
            return
        async with self._tx() as conn:
            await conn.executemany(
                "INSERT INTO logout_deliveries (id, realm, client_id, subject, session_id, created_at,"
                " next_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [(d.id, d.realm, d.client_id, d.subject, d.session_id, utc(d.created_at), utc(d.next_at),
                  d.attempts) for d in deliveries],
            )

    async def claim_logout_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[LogoutDelivery]:
        # SKIP LOCKED: two instances claiming at once take different rows, neither waits.
        async with self._tx() as conn:
            rows = await conn.fetch(
                "UPDATE logout_deliveries SET next_at = $1, attempts = attempts + 1 WHERE id IN"
                " (SELECT id FROM logout_deliveries WHERE next_at <= $2 ORDER BY next_at LIMIT $3"
                " FOR UPDATE SKIP LOCKED) RETURNING *",
                utc(lease_until), utc(now), limit,
            )
        return [ROWS.delivery(r) for r in rows]

    async def finish_logout_delivery(self, delivery_id: str) -> None:
        await self._execute("DELETE FROM logout_deliveries WHERE id = $1", delivery_id)

    async def retry_logout_delivery(self, delivery_id: str, next_at: datetime) -> None:
        await self._execute("UPDATE logout_deliveries SET next_at = $1 WHERE id = $2", utc(next_at), delivery_id)

    # consents

    async def get_consent(self, realm: str, user_id: str, client_id: str) -> Consent | None:
        row = await self._fetchrow(
            "SELECT * FROM consents WHERE realm = $1 AND user_id = $2 AND client_id = $3",
            realm, user_id, client_id,
        )
        return None if row is None else ROWS.consent(row)

    async def save_consent(self, consent: Consent) -> None:
        await self._execute(
            "INSERT INTO consents (realm, user_id, client_id, scopes, updated_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (realm, user_id, client_id) DO UPDATE SET"
            " scopes = excluded.scopes, updated_at = excluded.updated_at",
            consent.realm, consent.user_id, consent.client_id, scopes_text(consent.scopes),
            utc(consent.updated_at),
        )

    # signing keys

    async def list_signing_keys(self, realm: str) -> list[SigningKey]:
        rows = await self._fetch(
            "SELECT * FROM signing_keys WHERE realm = $1 ORDER BY created_at, kid", realm
        )
        return [ROWS.key(r) for r in rows]

    async def add_signing_key(self, key: SigningKey) -> None:
        await self._execute(
            "INSERT INTO signing_keys (realm, kid, alg, status, public_jwk, private_jwk,"
            " created_at, activated_at, retire_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            key.realm, key.kid, key.alg, key.status, key.public_jwk, bytes(key.private_jwk),
            utc(key.created_at), utc_or_none(key.activated_at), utc_or_none(key.retire_after),
        )

    async def update_signing_key(
        self, realm: str, kid: str, *, status: KeyStatus, expect_status: KeyStatus | None = None,
        activated_at: datetime | None = None, retire_after: datetime | None = None,
    ) -> bool:
        changed = await self._execute(
            "UPDATE signing_keys SET status = $3, activated_at = COALESCE($4, activated_at),"
            " retire_after = COALESCE($5, retire_after)"
            " WHERE realm = $1 AND kid = $2 AND ($6::text IS NULL OR status = $6)",
            realm, kid, status, utc_or_none(activated_at), utc_or_none(retire_after),
            expect_status,
        )
        return changed == 1

    # audit

    async def append_event(self, event: AuditEvent) -> None:
        await self._execute(
            "INSERT INTO audit_events (realm, type, at, user_id, client_id, ip, data)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            event.realm, event.type, utc(event.at), event.user_id, event.client_id, event.ip,
            event.data,
        )

    async def list_events(
        self, realm: str, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEvent]:
        rows = await self._fetch(
            "SELECT * FROM audit_events WHERE realm = $1"
            " AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY at, id LIMIT $3",
            realm, utc_or_none(since), limit,
        )
        return [ROWS.event(r) for r in rows]

    # passkeys (issue 20: WebAuthn credentials)

    async def add_passkey(self, credential: WebAuthnCredential) -> None:
        c = credential
        await self._execute(
            "INSERT INTO webauthn_credentials (realm, credential_id, user_id, public_key, sign_count, transports,"
            " aaguid, name, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            c.realm, c.credential_id, c.user_id, bytes(c.public_key), c.sign_count, " ".join(c.transports),
            c.aaguid, c.name, utc(c.created_at), utc_or_none(c.last_used_at),
        )

    async def list_passkeys(self, realm: str, user_id: str) -> list[WebAuthnCredential]:
        rows = await self._fetch(
            "SELECT * FROM webauthn_credentials WHERE realm = $1 AND user_id = $2 ORDER BY created_at, credential_id",
            realm, user_id)
        return [ROWS.webauthn(r) for r in rows]

    async def find_passkey(self, realm: str, credential_id: str) -> WebAuthnCredential | None:
        row = await self._fetchrow(
            "SELECT * FROM webauthn_credentials WHERE realm = $1 AND credential_id = $2", realm, credential_id)
        return None if row is None else ROWS.webauthn(row)

    async def use_passkey(
        self, realm: str, credential_id: str, *, expect_sign_count: int, sign_count: int, now: datetime
    ) -> bool:
        changed = await self._execute(
            "UPDATE webauthn_credentials SET sign_count = $3, last_used_at = $4"
            " WHERE realm = $1 AND credential_id = $2 AND sign_count = $5",
            realm, credential_id, int(sign_count), utc(now), int(expect_sign_count))
        return changed == 1

    async def rename_passkey(self, realm: str, user_id: str, credential_id: str, name: str) -> bool:
        changed = await self._execute(
            "UPDATE webauthn_credentials SET name = $4 WHERE realm = $1 AND user_id = $2 AND credential_id = $3",
            realm, user_id, credential_id, name)
        return changed == 1

    async def delete_passkey(self, realm: str, user_id: str, credential_id: str) -> bool:
        removed = await self._execute(
            "DELETE FROM webauthn_credentials WHERE realm = $1 AND user_id = $2 AND credential_id = $3",
            realm, user_id, credential_id)
        return removed == 1

    async def delete_passkeys(self, realm: str, user_id: str) -> int:
        return await self._execute(
            "DELETE FROM webauthn_credentials WHERE realm = $1 AND user_id = $2", realm, user_id)

    # --- second factors: TOTP and recovery codes (issue 20, engine.accounts.mfa) ---

    async def set_totp(self, realm: str, factor: TotpFactor) -> None:
        await self._execute(
            "INSERT INTO mfa_totp (realm, user_id, secret, last_step, created_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (realm, user_id) DO UPDATE SET secret = excluded.secret,"
            " last_step = excluded.last_step, created_at = excluded.created_at",
            realm, factor.user_id, factor.secret, factor.last_step, utc(factor.created_at),
        )

    async def get_totp(self, realm: str, user_id: str) -> TotpFactor | None:
        row = await self._fetchrow("SELECT * FROM mfa_totp WHERE realm = $1 AND user_id = $2", realm, user_id)
        if row is None:
            return None
        return TotpFactor(user_id=row["user_id"], secret=bytes(row["secret"]), created_at=row["created_at"],
                          last_step=row["last_step"])

    async def use_totp_step(self, realm: str, user_id: str, step: int) -> bool:
        changed = await self._execute(
            "UPDATE mfa_totp SET last_step = $1 WHERE realm = $2 AND user_id = $3"
            " AND (last_step IS NULL OR last_step < $1)", int(step), realm, user_id)
        return changed == 1

    async def delete_totp(self, realm: str, user_id: str) -> bool:
        return await self._execute("DELETE FROM mfa_totp WHERE realm = $1 AND user_id = $2", realm, user_id) > 0

    async def set_recovery_codes(self, realm: str, user_id: str, code_hashes: list[str], now: datetime) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM mfa_recovery_codes WHERE realm = $1 AND user_id = $2", realm, user_id)
            await conn.executemany(
                "INSERT INTO mfa_recovery_codes (realm, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)",
                [(realm, user_id, code_hash, utc(now)) for code_hash in dict.fromkeys(code_hashes)])

    async def use_recovery_code(self, realm: str, user_id: str, code_hash: str) -> bool:
        removed = await self._execute(
            "DELETE FROM mfa_recovery_codes WHERE realm = $1 AND user_id = $2 AND code_hash = $3",
            realm, user_id, code_hash)
        return removed == 1

    async def count_recovery_codes(self, realm: str, user_id: str) -> int:
        row = await self._fetchrow("SELECT count(*) AS n FROM mfa_recovery_codes WHERE realm = $1 AND user_id = $2",
                                   realm, user_id)
        return int(row["n"])

    async def delete_recovery_codes(self, realm: str, user_id: str) -> int:
        return await self._execute("DELETE FROM mfa_recovery_codes WHERE realm = $1 AND user_id = $2",
                                   realm, user_id)
