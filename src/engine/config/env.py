"""`${VAR}` and `${VAR:-default}` interpolation over parsed YAML values (never raw text).

Expanding after parsing means a secret containing `:` or a newline cannot change the
structure of the document (api-notes §7, pitfall 2). A missing variable is a problem that
names the variable and the `file:line` of the value that references it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.config.yaml_source import Loc, Source

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(source: Source, environ: Mapping[str, str]) -> None:
    """Replace references in every string value of `source.data`, in place."""
    source.data = _expand(source.data, (), source, environ)


def _expand(value: Any, loc: Loc, source: Source, environ: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, k), source, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), source, environ) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        source.problems.append(
            f"{source.where(loc)}: environment variable {name} is not set"
            f" (referenced by {'.'.join(str(p) for p in loc)})"
        )
        return ""

    return _REFERENCE.sub(substitute, value)
