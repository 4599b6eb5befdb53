"""`idp plan`: what a configuration change would change, before it is deployed.

Both configurations are reduced to a comparable snapshot (secrets replaced by a short
SHA-256 fingerprint, so a rotated secret shows as changed without showing the secret) and
diffed: realms, clients, redirect URIs, scopes, providers, lifetimes, everything.
The running server writes the snapshot of what it applied (`applied-config.json` in its
data directory) on start and on every reload; `idp plan` compares against that.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from engine.config.loader import Config

SNAPSHOT_FILE = "applied-config.json"
KEYED_LISTS = {"clients": "client_id", "providers": "id"}


_SCALARS = frozenset({str, int, float, bool, type(None)})
# Field names per model class; weak, since every load builds its realm model anew.
_FIELDS: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _plain(value: Any) -> Any:
    # Perf (issue 7): a server with 10,000 realms snapshots ~2 million values at start, so
    # the common kinds are told apart by exact type before any isinstance.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        names = _FIELDS.get(kind)
        if names is None:
            names = _FIELDS[kind] = tuple(kind.model_fields)
        fields = value.__dict__
        return {name: _plain(fields[name]) for name in names}
    if isinstance(value, SecretStr):
        digest = hashlib.sha256(value.get_secret_value().encode()).hexdigest()[:12]
        return f"<secret sha256:{digest}>"
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if hasattr(value, "total_seconds"):
        from engine.config.durations import format_duration

        return format_duration(value)
    return value


def snapshot(config: Config) -> dict[str, Any]:
    return {
        "server": _plain(config.server),
        "realms": {name: _plain(realm) for name, realm in sorted(config.realms.items())},
    }


def write_snapshot(config: Config, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / SNAPSHOT_FILE
    # One temporary file per process: `idp serve --workers N` starts N writers at once.
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    # Compact: the C encoder (an indented dump is pure Python, ~1.7 s for 10,000 realms).
    temporary.write_text(json.dumps(snapshot(config), sort_keys=True, separators=(",", ":")))
    temporary.replace(target)  # atomic: a reader never sees half a snapshot


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
