"""Issue 17 §3 (typed services): no `Any`-typed service locator in `src/engine`. A function
parameter named `services`, or a class attribute named `services`, annotated `Any` hides
what the code depends on; it is `engine.services.Services` (or, for plugins, the narrow
`engine.ProviderServices` behind `ProviderContext`). Read from the source with `ast`, the
way an architecture viewer reads it."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "src" / "engine"

# Empty since the protocol core's modules switched to `Services`; do not add to it.
TEMPORARY_ALLOW_LIST: frozenset[str] = frozenset()


def _is_any(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # "Any"
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return False
    if isinstance(annotation, ast.Name):
        return annotation.id == "Any"
    if isinstance(annotation, ast.Attribute):  # typing.Any
        return annotation.attr == "Any"
    return False


def any_typed_services(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each `services` parameter or class attribute annotated `Any`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
                if arg.arg == "services" and _is_any(arg.annotation):
                    found.append((arg.lineno, f"parameter of {node.name}()"))
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                        and statement.target.id == "services" and _is_any(statement.annotation)):
                    found.append((statement.lineno, f"attribute of class {node.name}"))
    return found


def offenders(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in TEMPORARY_ALLOW_LIST:
            continue
        for line, what in any_typed_services(ast.parse(path.read_text(), filename=str(path))):
            problems.append(f"src/engine/{relative}:{line}: `services: Any` ({what}); annotate it `Services`")
    return problems


def test_no_any_typed_services_in_engine_signatures():
    problems = offenders(ENGINE)
    assert not problems, "\n".join(problems)


def test_the_scan_sees_what_it_forbids():
    """The checker itself: each form it must catch, and the typed forms it must let pass."""
    caught = any_typed_services(ast.parse(
        "def a(services: Any): ...\n"
        "async def b(x, *, services: typing.Any = None): ...\n"
        "def c(services: 'Any'): ...\n"
        "class D:\n    services: Any = None\n"
    ))
    assert [line for line, _ in caught] == [1, 2, 3, 5]
    assert any_typed_services(ast.parse(
        "def a(services: Services): ...\n"
        "def b(services: Services | None = None, other: Any = None): ...\n"
        "class D:\n    services: Services\n"
    )) == []


def test_the_allow_list_names_only_existing_modules():
    """A stale entry would silently exempt a future module of the same name."""
    assert all((ENGINE / relative).exists() for relative in TEMPORARY_ALLOW_LIST)
