"""Every audit event type the engine records is listed in `engine.events.ENGINE_TYPES`
(what `idp audit --type` checks names against): each `audit(realm, TYPE, ...)` and
`_emit(realm, TYPE, ...)` call in `src/engine` is read from the source and its TYPE
resolved in its module."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from engine.events import ENGINE_TYPES

SRC = Path(__file__).resolve().parents[1] / "src"


def _recorded_types() -> dict[str, str]:
    """type -> where it is recorded."""
    found: dict[str, str] = {}
    for path in sorted((SRC / "engine").rglob("*.py")):
        module_name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        module = None
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("audit", "audit_soon", "_emit") and len(node.args) >= 2):
                continue
            argument = node.args[1]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                value = argument.value
            else:
                module = module or importlib.import_module(module_name.removesuffix(".__init__"))
                if isinstance(argument, ast.Name):
                    value = getattr(module, argument.id, None)
                elif isinstance(argument, ast.Attribute) and isinstance(argument.value, ast.Name):
                    value = getattr(getattr(module, argument.value.id, None), argument.attr, None)
                else:
                    value = None
            if isinstance(value, str):
                found[value] = f"{path.relative_to(SRC)}:{node.lineno}"
    return found


def test_every_recorded_type_is_known():
    recorded = _recorded_types()
    assert len(recorded) > 20  # the scan finds the engine's calls
    unknown = {t: where for t, where in recorded.items() if t not in ENGINE_TYPES}
    assert unknown == {}
