"""Files Tessera writes hold secrets or lead to them (the SQLite database with password
hashes and encrypted keys, outbox mail with live reset links, the generated key-encryption
key, the applied configuration): each is created owner-only, 0600, in directories created
0700, whatever the process umask (OWASP ASVS 4.0 §14.1.3 / CWE-276). Modes are given to
`open(2)`/`mkdir(2)` at creation, so the file is never readable by others, not even for an
instant; the umask can only take permissions away, never add them."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> Path:
    """`mkdir -p` with the directories it creates 0700 (existing ones are the operator's)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:  # another process made it meanwhile
            continue
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """A descriptor on `path`, created 0600 if it is new."""
    return os.open(path, flags, FILE_MODE)


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path` (created 0600; `exclusive`: fail if it exists)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(open_private(path, flags), "wb") as handle:
        handle.write(data)


def touch_private(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists (before a library creates it with
    its own idea of a mode: SQLite gives its -wal and -shm files the database's mode)."""
    try:
        os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        pass
