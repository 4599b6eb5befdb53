"""`idp plan`: what a configuration change would change, before it is deployed.

Both configurations are reduced to a comparable snapshot (secrets replaced by a short
SHA-256 fingerprint, so a rotated secret shows as changed without showing the secret) and
diffed: realms, clients, redirect URIs, scopes, providers, lifetimes, everything.
The running server writes the snapshot of what it applied (`applied-config.json` in its
data directory) once it serves (a moment after it is ready) and on every reload; `idp plan`
compares against that.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from engine.config.loader import Config
from engine.files import open_private, private_directory, write_private

SNAPSHOT_FILE = "applied-config.json"
KEYED_LISTS = {"clients": "client_id", "providers": "id"}


def _json_default(value: Any) -> Any:
    """What `model_dump()` leaves as Python objects, as the snapshot writes them."""
    if hasattr(value, "get_secret_value"):  # SecretStr, SecretBytes, Secret[...]
        secret = value.get_secret_value()
        return _fingerprint(secret if isinstance(secret, bytes) else str(secret))
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, BaseModel):
        return value.model_dump()
    if hasattr(value, "total_seconds"):  # a timedelta outside a `Duration` field
        from engine.config.durations import format_duration

        return format_duration(value)
    return str(value)


def _fingerprint(secret: str | bytes) -> str:
    digest = hashlib.sha256(secret if isinstance(secret, bytes) else secret.encode()).hexdigest()[:12]
    return f"<secret sha256:{digest}>"


def _without_url_passwords(value: Any) -> Any:
    """The server's settings with the password of every URL (storage DSNs, SMTP, often
    from `${ENV}`) replaced by its fingerprint: `idp plan` prints what changed."""
    if isinstance(value, dict):
        return {key: _without_url_passwords(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_url_passwords(item) for item in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            return value
        if password:
            userinfo, _, host = parts.netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            return urlunsplit(parts._replace(netloc=f"{user}:{_fingerprint(password)}@{host}"))
    return value


def _dumps(value: Any) -> str:
    # Compact and through the C encoder (an indented dump is pure Python).
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _parts(config: Config) -> Iterator[str]:
    """The snapshot's JSON text, a realm at a time: the same text as one `_dumps` of
    `{"realms": {...}, "server": ...}` (keys sorted), without building that whole dict.
    Perf (issue 7): each model is dumped by pydantic-core (durations through their
    `Duration` serializer); a Python walk over 10,000 realms' ~2 million values took
    seconds of the start."""
    yield '{"realms":{'
    for index, (name, realm) in enumerate(sorted(config.realms.items())):
        yield f'{"," if index else ""}{_dumps(name)}:{_dumps(realm.model_dump())}'
    yield f'}},"server":{_dumps(_without_url_passwords(config.server.model_dump()))}}}'


def snapshot_text(config: Config) -> str:
    return "".join(_parts(config))


def snapshot(config: Config) -> dict[str, Any]:
    return json.loads(snapshot_text(config))


def _temporary(data_dir: Path) -> tuple[Path, Path]:
    private_directory(data_dir)
    target = data_dir / SNAPSHOT_FILE
    # One temporary file per process: `idp serve --workers N` starts N writers at once.
    return target.with_suffix(f".{os.getpid()}.tmp"), target


def write_snapshot_text(data_dir: Path, text: str) -> None:
    temporary, target = _temporary(data_dir)
    write_private(temporary, text.encode())  # owner-only, like everything in the data directory
    temporary.replace(target)  # atomic: a reader never sees half a snapshot


async def write_snapshot_in_turns(config: Config, data_dir: Path, realms_per_turn: int = 50) -> None:
    """The snapshot for a serving process: built on the event loop a few realms at a
    time (requests are answered in between; a thread would hold the GIL against them)
    and written by a thread as it goes (never the whole text in memory at once)."""
    temporary, target = await asyncio.to_thread(_temporary, data_dir)
    file = await asyncio.to_thread(lambda: os.fdopen(open_private(temporary), "w"))
    try:
        batch: list[str] = []
        for part in _parts(config):
            batch.append(part)
            if len(batch) == realms_per_turn:
                await asyncio.to_thread(file.write, "".join(batch))
                batch = []
        await asyncio.to_thread(file.write, "".join(batch))
        await asyncio.to_thread(file.close)
        await asyncio.to_thread(temporary.replace, target)  # atomic: a reader never sees half a snapshot
    except BaseException:
        file.close()
        temporary.unlink(missing_ok=True)
        raise


def read_snapshot(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / SNAPSHOT_FILE).read_text())
    except (OSError, ValueError):
        return None


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Human-readable changes from `old` to `new`: `+ path`, `- path`, `~ path: a -> b`."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in sorted(set(old) | set(new)):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                lines.append(f"+ {where}: {_short(new[key])}")
            elif key not in new:
                lines.append(f"- {where}")
            else:
                old_value, new_value = old[key], new[key]
                if key in KEYED_LISTS and isinstance(old_value, list) and isinstance(new_value, list):
                    ident = KEYED_LISTS[key]
                    old_value = {item.get(ident): item for item in old_value}
                    new_value = {item.get(ident): item for item in new_value}
                lines += diff(old_value, new_value, where)
        return lines
    if isinstance(old, list) and isinstance(new, list) and all(
        isinstance(v, str | int | float) for v in old + new
    ):
        added = [v for v in new if v not in old]
        removed = [v for v in old if v not in new]
        lines = [f"+ {path}: {v}" for v in added] + [f"- {path}: {v}" for v in removed]
        if not lines and old != new:
            lines.append(f"~ {path}: order {old} -> {new}")
        return lines
    if old != new:
        return [f"~ {path}: {_short(old)} -> {_short(new)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."
