"""Storage: the durable and ephemeral tiers (DESIGN.md "Storage").

`open_durable(url)` and `open_ephemeral(url)` pick the backend from the URL scheme:

- durable: `sqlite:///relative/path`, `sqlite:////absolute/path`, `sqlite://:memory:`,
  `postgresql://user@host:5432/db` (or `postgres://`)
- ephemeral: `memory://`, `redis://host:6379/0` (or `rediss://`)

Backends are imported lazily, so the embedded mode never imports asyncpg or redis.
"""

from __future__ import annotations

from engine.store.protocols import (
    AlreadyExists,
    AuditEvent,
    Consent,
    Credential,
    DurableStore,
    EphemeralStore,
    ExternalIdentity,
    KeyStatus,
    RefreshFamily,
    RefreshToken,
    RotateResult,
    RotateStatus,
    SigningKey,
    StoreError,
    StoreUnavailable,
    TotpFactor,
    User,
    WebAuthnCredential,
)

__all__ = [
    "AlreadyExists",
    "AuditEvent",
    "Consent",
    "Credential",
    "TotpFactor",
    "DurableStore",
    "EphemeralStore",
    "ExternalIdentity",
    "KeyStatus",
    "RefreshFamily",
    "RefreshToken",
    "RotateResult",
    "RotateStatus",
    "SigningKey",
    "StoreError",
    "StoreUnavailable",
    "User",
    "WebAuthnCredential",
    "open_durable",
    "open_ephemeral",
    "sqlite_path",
]


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite://` URL (SQLAlchemy style: three slashes, then the path,
    so `sqlite:////abs` is absolute and `sqlite:///rel` is relative to the working dir)."""
    if _scheme(url) != "sqlite":
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    rest = url.partition("://")[2]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/") or rest == "/" or "?" in rest:
        raise ValueError(
            f"bad SQLite URL {url!r}: use sqlite:///relative/path, sqlite:////absolute/path "
            "or sqlite://:memory:"
        )
    return rest[1:]


async def open_durable(url: str) -> DurableStore:
    """Open (connect) the durable store named by `url`; call `migrate()` before use."""
    scheme = _scheme(url)
    if scheme == "sqlite":
        from engine.store.sql.sqlite import SqliteDurableStore

        return await SqliteDurableStore.open(sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        from engine.store.sql.postgres import PostgresDurableStore

        return await PostgresDurableStore.open(url)
    raise ValueError(
        f"unsupported durable storage URL {url!r}: expected sqlite:///path or "
        "postgresql://user@host:port/database"
    )


async def open_ephemeral(url: str, *, prefix: str = "tessera:") -> EphemeralStore:
    """Open (connect) the ephemeral store named by `url`. `prefix` namespaces Redis keys."""
    scheme = _scheme(url)
    if scheme == "memory":
        if url.partition("://")[2] not in ("", "/"):
            raise ValueError(f"bad memory URL {url!r}: use memory://")
        from engine.store.ephemeral.memory import MemoryEphemeralStore

        return MemoryEphemeralStore()
    if scheme in ("redis", "rediss"):
        from engine.store.ephemeral.redis import RedisEphemeralStore

        return await RedisEphemeralStore.open(url, prefix=prefix)
    raise ValueError(
        f"unsupported ephemeral storage URL {url!r}: expected memory:// or redis://host:port/db"
    )
