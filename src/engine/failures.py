"""What the `idp` command says when it cannot go on: one line a person can act on (and a
hint), never a traceback (issue 18 item 4). `--debug` shows the traceback instead.

`explain` knows the failures an operator meets in the first hour: the database does not
exist, PostgreSQL or Redis unreachable, the port in use, a malformed key-encryption key.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import re

from engine.store.protocols import StoreUnavailable


def _database_missing(exc: BaseException) -> str | None:
    try:
        from asyncpg.exceptions import InvalidCatalogNameError
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return None
    if isinstance(exc, InvalidCatalogNameError):
        return str(exc)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its causes/contexts, outermost first (bounded: chains can loop)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def explain(exc: BaseException) -> tuple[str, str] | None:
    """(message, hint) for a failure a person can act on, or None (a bug: show the traceback)."""
    from engine.tokens.keys import KeyEncryptionKeyError, KeysUnusable  # the keys module loads late

    for cause in _chain(exc):
        missing = _database_missing(cause)
        if missing is not None:
            named = re.search(r'database "([^"]+)"', missing)
            database = named.group(1) if named else "<database>"
            return (f"PostgreSQL answered: {missing}",
                    f"create it first, e.g. `createdb -h <host> -U <user> {database}` or"
                    f" `psql -c 'CREATE DATABASE \"{database}\"'`, then run `idp migrate`")
        if isinstance(cause, KeysUnusable):  # issue 16 item 11
            return str(cause), ("every instance sharing the store needs the key-encryption key that created its"
                                " keys: set IDP_KEY_ENCRYPTION_KEY to it (the embedded default keeps it in"
                                " var/key-encryption-key)")
        if isinstance(cause, StoreUnavailable):
            store = str(cause).split(":", 1)[0]
            hint = ("is PostgreSQL running, and does storage.durable (IDP_DURABLE_URL) name it?" if store == "postgres"
                    else "is Redis running, and does storage.ephemeral (IDP_EPHEMERAL_URL) name it?"
                    if store == "redis" else "check the storage settings in idp.yaml")
            return f"a store does not answer: {cause}", hint
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return (f"the port is in use: {cause.strerror or cause}",
                    "another server (maybe another idp serve) listens there; stop it, or use --port")
        if isinstance(cause, KeyEncryptionKeyError):
            return str(cause), "IDP_KEY_ENCRYPTION_KEY is 32 random bytes, base64url-encoded (see README)"
    return None
