"""Versioned plain-SQL migrations shared by the SQL backends.

Files live in `engine/store/sql/migrations/<dialect>/NNNN_name.sql` (package data) and are
applied in version order; the applied versions are recorded in `schema_migrations`. Each
backend runs every pending file of one `migrate()` call inside a single transaction, so a
failing file leaves the database as it was.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Dialect = Literal["sqlite", "postgres"]

_FILE_NAME = re.compile(r"^(?P<version>\d{4}_[a-z0-9_]+)\.sql$")

CREATE_SCHEMA_MIGRATIONS = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
    "postgres": "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # the file name without `.sql`, e.g. "0001_init"
    sql: str


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every migration of `dialect`, oldest first. A stray `.sql` name is an error."""
    directory = resources.files("engine.store.sql.migrations").joinpath(dialect)
    migrations = []
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise RuntimeError(f"migration file name {entry.name!r} is not NNNN_name.sql")
        migrations.append(Migration(match["version"], entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda m: m.version)
    if not migrations:
        raise RuntimeError(f"no migrations found for {dialect!r}")
    return migrations


def pending(migrations: list[Migration], applied: set[str]) -> list[Migration]:
    return [m for m in migrations if m.version not in applied]


def split_statements(script: str) -> list[str]:
    """Split an SQLite script into single statements (sqlite3 runs one per `execute`).

    Needed because `executescript` commits any open transaction first; executing the
    statements one by one keeps a whole migration run in one transaction. Lines that are
    only a `--` comment are dropped.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"unterminated SQL statement: {buffer.strip()[:80]!r}")
    return statements
