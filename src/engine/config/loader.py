"""Load `idp.yaml` and every realm file into validated models, or report every problem.

Problems are collected across all files and returned together, each `file:line: message`
(never a traceback): YAML syntax, duplicate keys, missing `${VAR}`s, model errors, and the
cross-references a model cannot see (a client asking for an undeclared scope, a grant its
type may not use, duplicate client ids or realm names, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.config.checks import passkeys_problems, realm_problems, templates_problems
from engine.config.env import SERVER_VARIABLES, Expansion, SecretValue, expand_env
from engine.config.messages import data_loc, describe
from engine.config.models import RealmBase, ServerConfig, build_realm_model
from engine.config.values import is_loopback_url
from engine.config.yaml_source import ConfigError, Loc, Source, load_yaml

__all__ = ["Config", "ConfigError", "load_config", "realm_problems"]


@dataclass(frozen=True)
class Config:
    """The whole validated configuration: server settings and realms by name."""

    path: Path
    server: ServerConfig
    realms: dict[str, RealmBase]
    realm_files: dict[str, Path]

    def issuer(self, realm: str) -> str:
        if realm == self.server.root_realm:
            return self.server.base_url
        return f"{self.server.base_url}/realms/{realm}"


def _validate(model: type[BaseModel], source: Source, provider_types: list[str]) -> Any:
    """The validated model, or None with every error in `source.problems` (product words)."""
    try:
        return model.model_validate(source.data if source.data is not None else {})
    except ValidationError as exc:
        _report(exc, model, source, provider_types)
        return None


def _report(exc: ValidationError, model: type[BaseModel], source: Source, provider_types: list[str]) -> None:
    for error in exc.errors(include_url=False):
        loc, message = describe(error, model, source.data, provider_types)
        shown = ".".join(str(part) for part in loc) or "(top level)"
        source.problems.append(f"{source.where(loc)}: {shown}: {message}")


@dataclass(frozen=True)
class _Partial:
    """The parts of a realm that validated, for the cross-reference checks: `incomplete`
    names the top-level keys left out (or, for lists, partly left out), `kept` maps the
    index of each kept client / provider back to its index in the file."""

    realm: RealmBase
    incomplete: frozenset[str]
    kept: dict[str, list[int]]

    def problems(self) -> list[tuple[Loc, str]]:
        found = []
        for loc, message in realm_problems(self.realm, self.incomplete):
            if len(loc) > 1 and loc[0] in self.kept and isinstance(loc[1], int):
                loc = (loc[0], self.kept[str(loc[0])][loc[1]], *loc[2:])
            found.append((loc, message))
        return found


def _without(data: Any, loc: Loc) -> Any:
    """`data` without the key at `loc` (the containers on the way copied, not changed)."""
    if not loc or not isinstance(data, (dict, list)):
        return data
    head, tail = loc[0], loc[1:]
    if isinstance(data, dict):
        if head not in data:
            return data
        if not tail:
            return {key: value for key, value in data.items() if key != head}
        return {**data, head: _without(data[head], tail)}
    if not isinstance(head, int) or not 0 <= head < len(data) or not tail:
        return data
    return [*data[:head], _without(data[head], tail), *data[head + 1:]]


LISTS = ("clients", "providers")  # validated item by item: one bad client hides no other's problems


def _validate_realm(model: type[RealmBase], source: Source, provider_types: list[str]) -> RealmBase | _Partial | None:
    """The realm; or, when some of it does not validate (reported), the rest of it."""
    data = source.data if source.data is not None else {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _report(exc, model, source, provider_types)
        errors = exc.errors(include_url=False)
    if not isinstance(data, dict):
        return None
    failed: set[str] = set()
    failed_items: dict[str, set[int]] = {name: set() for name in LISTS}
    rest: Any = data
    for error in errors:
        loc = data_loc(model, data, tuple(error["loc"]))[0]
        if not loc:
            return None
        if error["type"] == "extra_forbidden":  # an unknown key changes nothing: leave it out
            rest = _without(rest, loc)
            continue
        top = str(loc[0])
        if top in failed_items and len(loc) > 1 and isinstance(loc[1], int) and isinstance(data.get(top), list):
            failed_items[top].add(loc[1])
        else:
            failed.add(top)
    rest = {key: value for key, value in rest.items() if key not in failed}
    kept: dict[str, list[int]] = {}
    for name in LISTS:
        if name in rest and failed_items[name]:
            kept[name] = [i for i in range(len(rest[name])) if i not in failed_items[name]]
            rest[name] = [rest[name][i] for i in kept[name]]
            failed.add(name)
    rest.setdefault("name", "invalid")  # a missing or bad name: the checks do not read it
    try:
        realm = model.model_validate(rest)
    except ValidationError:
        return None  # parts that fail only together: their problems are reported already
    return _Partial(realm, frozenset(failed), kept)


def load_config(
    path: str | Path,
    provider_models: list[type[BaseModel]],
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate everything; raise ConfigError listing every problem found.
    (No garbage-collector tuning here: this also runs in a reload, while serving; the
    command line pauses the collector around its own first load, engine.cli_support.)"""
    environ = os.environ if environ is None else environ
    path = Path(path)
    provider_types = sorted(m.model_fields["type"].annotation.__args__[0] for m in provider_models)
    problems: list[str] = []

    server_source = load_yaml(path)
    server_env = Expansion()
    parsed = not server_source.problems
    if parsed:
        server_env = expand_env(server_source, environ, ServerConfig)
    server = None
    if parsed and not server_env.unset:
        server = _validate(ServerConfig, server_source, provider_types)
    # The realms are checked even when idp.yaml has problems (every problem in one pass):
    # with what validated, else with what the file says where it can be read.
    raw = server_source.data if parsed and isinstance(server_source.data, dict) else None
    settings = _server_settings(server, raw)
    if server is not None:
        server_source.problems += _secret_problems(server_source, server_env.secrets, settings.loopback)
        if server_source.problems:
            server = None
    if settings.realms is None:
        raise ConfigError(_by_line(server_source))

    realm_model = build_realm_model(provider_models)
    realms_dir = Path(settings.realms)
    if not realms_dir.is_absolute():
        realms_dir = (path.parent / realms_dir).resolve()
    realms: dict[str, RealmBase] = {}
    realm_files: dict[str, Path] = {}
    names: set[str] = set()  # every realm name written, valid or not (for root_realm)
    if not realms_dir.is_dir():
        server_source.problems.append(
            f"{server_source.where(('realms',))}: realms directory {realms_dir} does not exist")
    else:
        cwd = Path.cwd()
        for file in sorted(realms_dir.glob("*.yaml")) + sorted(realms_dir.glob("*.yml")):
            source = load_yaml(_display(file, cwd))
            realm = _load_realm(source, file, realm_model, provider_types, environ, settings.loopback, path.parent,
                                settings.base_url)
            if isinstance(source.data, dict) and isinstance(source.data.get("name"), str):
                names.add(source.data["name"])
            elif not isinstance(source.data, dict):  # unreadable: its name should be its file's
                names.add(file.stem)
            if realm is not None:
                if realm.name in realm_files:
                    source.problems.append(
                        f"{source.where(('name',))}: duplicate realm name {realm.name!r}"
                        f" (also in {realm_files[realm.name]})"
                    )
                else:
                    realm_files[realm.name] = source.path
                    if not source.problems:
                        realms[realm.name] = realm
            problems += _by_line(source)
        if settings.root_realm is not None and settings.root_realm not in names:
            server_source.problems.append(
                f"{server_source.where(('root_realm',))}: root_realm {settings.root_realm!r} is not a realm"
                f" (realms: {', '.join(sorted(names)) or f'none in {realms_dir}'})")
    problems = _by_line(server_source) + problems
    if problems or server is None:
        raise ConfigError(problems)
    return Config(path=path, server=server, realms=realms, realm_files=realm_files)


@dataclass(frozen=True)
class _ServerSettings:
    """What the realms' checks need from idp.yaml, read even from an invalid one."""

    realms: str | None  # None: unknown (the realms are not checked)
    root_realm: str | None
    loopback: bool
    base_url: str | None = None  # None: unknown (checks that need it are skipped)


def _server_settings(server: ServerConfig | None, raw: dict[str, Any] | None) -> _ServerSettings:
    if server is not None:
        return _ServerSettings(server.realms, server.root_realm, is_loopback_url(server.base_url), server.base_url)
    if raw is None:
        return _ServerSettings(None, None, True)
    defaults = ServerConfig.model_fields
    realms = raw.get("realms", defaults["realms"].default)
    root = raw.get("root_realm", defaults["root_realm"].default)
    base_url = raw.get("base_url", defaults["base_url"].default)
    return _ServerSettings(
        realms if isinstance(realms, str) and realms else None,
        root if isinstance(root, str) else None,
        # An invalid base_url is its own problem: the realms' secrets are not judged by it.
        not isinstance(base_url, str) or is_loopback_url(base_url) or not base_url.startswith("http"),
    )


def _load_realm(source: Source, file: Path, realm_model: type[RealmBase], provider_types: list[str],
                environ: Mapping[str, str], loopback: bool, config_dir: Path,
                base_url: str | None = None) -> RealmBase | None:
    """Validate one realm file, its problems into `source.problems`; the realm if it validated."""
    expansion = Expansion()
    parsed = not source.problems
    if parsed:
        expansion = expand_env(source, environ, realm_model, references=_has_references(source),
                               refused=SERVER_VARIABLES)
    source.problems += _secret_problems(source, expansion.secrets, loopback)
    # A reference where none may be stays as written: the file's other problems are
    # reported with it. An unset variable leaves an empty value: that one problem is enough.
    if not parsed or expansion.unset:
        return None
    result = _validate_realm(realm_model, source, provider_types)
    if result is None:
        return None
    realm = result.realm if isinstance(result, _Partial) else result
    found = result.problems() if isinstance(result, _Partial) else realm_problems(realm)
    if not isinstance(result, _Partial) or "templates" not in result.incomplete:
        found += templates_problems(realm, config_dir)
    if not isinstance(result, _Partial):
        found += passkeys_problems(realm, base_url)
    name = source.data.get("name") if isinstance(source.data, dict) else None
    if isinstance(name, str) and name != file.stem and (not isinstance(result, _Partial) or
                                                         "name" not in result.incomplete):
        found.append((("name",), f"the realm is named {name!r} but its file is {file.name}: name the file"
                                 f" {name}{file.suffix} (or the realm {file.stem!r})"))
    for loc, message in found:
        source.problems.append(f"{source.where(loc)}: {message}")
    return None if isinstance(result, _Partial) else realm


DEMO_SECRET_PREFIX = "change-me"  # the shipped examples' secrets (realms/acme.yaml, compose.yaml)


def _secret_problems(source: Source, secrets: list[SecretValue], loopback: bool) -> list[str]:
    """Secrets are `${ENV}` references, never written in the file (DESIGN.md). The one
    exception is development: with a loopback `base_url`, a reference's `:-default` (the
    shipped demo secret) may stand in for an unset variable."""
    problems = []
    for secret in secrets:
        shown = ".".join(str(p) for p in secret.loc)
        if secret.origin == "clear":
            problems.append(f"{source.where(secret.loc)}: {shown}: a secret must be a ${{ENV}} reference"
                            " (or, for a client, `secret_sha256`), never written in clear")
        elif loopback:
            continue
        elif secret.origin == "default":
            problems.append(f"{source.where(secret.loc)}: {shown}: the variable is not set and its `:-default`"
                            " is a secret written in the file, allowed only when base_url is loopback")
        elif secret.value.startswith(DEMO_SECRET_PREFIX):
            problems.append(f"{source.where(secret.loc)}: {shown}: this is the shipped demo secret, allowed only"
                            " when base_url is loopback; set a real one")
    return problems


def _by_line(source: Source) -> list[str]:
    """A file's problems in the order of its lines (stable: one line's keep their order)."""
    prefix = f"{source.path}:"

    def line(problem: str) -> int:
        number = problem[len(prefix):].partition(":")[0] if problem.startswith(prefix) else ""
        return int(number) if number.isdigit() else 0

    return sorted(source.problems, key=line)


def _has_references(source: Source) -> bool:
    """Whether `${...}` may occur in the values (a file without it in its text has none)."""
    return source.text is None or "${" in source.text


def _display(file: Path, cwd: Path) -> Path:
    """Paths relative to the working directory when possible: shorter error lines."""
    try:
        return file.relative_to(cwd)
    except ValueError:
        return file
