"""The layout the design promises (DESIGN.md, issue 17 item 2): the protocol core
(`engine/oauth/`, `engine/tokens/`, `engine/accounts/`) is framework-free, functions of a
realm and the request's data that answer an `engine.exchange.Answer`; aiohttp stays in
`engine/web/`, whose handlers are thin adapters.

Read from the source (ast), not by importing: an import inside a function or under
`TYPE_CHECKING` counts too. The modules not converted yet are named one by one below; the
list only shrinks (a listed module that no longer imports aiohttp fails the test until it
is taken off)."""

from __future__ import annotations

import ast
from pathlib import Path

import engine

SRC = Path(engine.__file__).parent
CORE_PACKAGES = ("oauth", "tokens", "accounts")
# Framework-free helpers of the core that live beside it.
CORE_MODULES = ("exchange.py", "cached_body.py", "templates.py")

# Still to convert: none (issue 17 item 2 converted the browser flows last). Kept, empty,
# so that a module added here later must still import aiohttp.
NOT_YET_CONVERTED: frozenset[str] = frozenset()


def core_modules() -> list[str]:
    found = [path.relative_to(SRC).as_posix()
             for package in CORE_PACKAGES for path in sorted((SRC / package).rglob("*.py"))]
    return found + list(CORE_MODULES)


def imported_modules(relative: str, *, top_level_only: bool = False) -> set[str]:
    """Every module an `import` or `from ... import` of the file names (relative imports
    resolved against the file's package)."""
    tree = ast.parse((SRC / relative).read_text(), filename=relative)
    nodes = _top_level(tree) if top_level_only else ast.walk(tree)
    package = ["engine", *relative.split("/")[:-1]]
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, node.module] if node.module else base))
    return names


def _top_level(tree: ast.Module):
    """Module-level statements, `if TYPE_CHECKING:` blocks included (not function bodies)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If | ast.Try):
            pending.extend(node.body + node.orelse)


def imports_aiohttp(relative: str) -> bool:
    return any(name == "aiohttp" or name.startswith("aiohttp.") for name in imported_modules(relative))


def test_the_protocol_core_does_not_import_aiohttp():
    """Issue 17 item 2: no module of the core imports aiohttp, directly or `from aiohttp`
    (a test of the test: the modules still to convert are found importing it)."""
    modules = core_modules()
    assert "oauth/token.py" in modules and "tokens/jwt.py" in modules
    offenders = [module for module in modules if module not in NOT_YET_CONVERTED and imports_aiohttp(module)]
    assert offenders == []


def test_the_list_of_modules_still_to_convert_only_shrinks():
    """A converted module leaves NOT_YET_CONVERTED, so it cannot slip back."""
    stale = [module for module in sorted(NOT_YET_CONVERTED) if not imports_aiohttp(module)]
    assert stale == []


def test_converted_api_endpoints_do_not_import_the_web_layer():
    """The API endpoints of the core (token, introspection, revocation, userinfo,
    discovery, JWKS, and what they use) depend on no module of `engine.web` at module
    level: the dependency runs from the adapters to the core, not back."""
    converted = ["oauth/token.py", "oauth/introspect.py", "oauth/revoke.py", "oauth/userinfo.py",
                 "oauth/discovery.py", "oauth/jwks.py", "oauth/clients.py", "oauth/params.py",
                 "oauth/ratelimit.py", *CORE_MODULES]
    offenders = {module: sorted(name for name in imported_modules(module, top_level_only=True)
                                if name == "engine.web" or name.startswith("engine.web."))
                 for module in converted}
    assert {module: names for module, names in offenders.items() if names} == {}


def test_the_core_does_not_import_the_web_layer():
    """Issue 17 item 2: the browser flows too (authorize, consent, sign-in, federation,
    logout, the account pages) are functions of the realm and a `Call`; no module of the
    core imports `engine.web`, not even inside a function (the adapters import the core,
    never the other way round)."""
    offenders = {module: sorted(name for name in imported_modules(module)
                                if name == "engine.web" or name.startswith("engine.web."))
                 for module in core_modules()}
    assert {module: names for module, names in offenders.items() if names} == {}
