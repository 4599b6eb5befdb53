"""Load `idp.yaml` and every realm file into validated models, or report every problem.

Problems are collected across all files and returned together, each `file:line: message`
(never a traceback): YAML syntax, duplicate keys, missing `${VAR}`s, model errors, and the
cross-references a model cannot see (a client asking for an undeclared scope, a grant its
type may not use, duplicate client ids or realm names, ...).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.config.env import SERVER_VARIABLES, Expansion, SecretValue, expand_env
from engine.config.models import Client, RealmBase, ServerConfig, build_realm_model
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
    try:
        return model.model_validate(source.data if source.data is not None else {})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc: Loc = tuple(error["loc"])
            shown = ".".join(str(part) for part in loc) or "(top level)"
            message = error["msg"]
            if error["type"] == "union_tag_invalid":
                tag = error.get("ctx", {}).get("tag")
                message = f"unknown provider type {tag!r}; installed types: {', '.join(provider_types)}"
            elif error["type"] == "union_tag_not_found":
                message = f"missing 'type'; installed types: {', '.join(provider_types)}"
            elif error["type"] == "extra_forbidden":
                message = "unknown key"
            elif message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            source.problems.append(f"{source.where(loc)}: {shown}: {message}")
        return None


def realm_problems(realm: RealmBase) -> list[tuple[Loc, str]]:
    """Cross-reference checks inside one realm; each (location, message)."""
    problems: list[tuple[Loc, str]] = []
    scopes = realm.all_scopes()
    seen_clients: dict[str, int] = {}
    for i, client in enumerate(realm.clients):
        at: Loc = ("clients", i)
        if client.client_id in seen_clients:
            problems.append(((*at, "client_id"), f"duplicate client_id {client.client_id!r}"))
        seen_clients.setdefault(client.client_id, i)
        for j, scope in enumerate(client.scopes):
            if scope not in scopes:
                problems.append(((*at, "scopes", j), f"scope {scope!r} is not declared in the realm's scopes"))
        if client.type == "public":
            if "client_credentials" in client.grant_types:
                j = client.grant_types.index("client_credentials")
                problems.append(((*at, "grant_types", j), "a public client may not use client_credentials"))
            if client.secret is not None or client.secret_sha256 is not None:
                problems.append(((*at, "type"), "a public client has no secret"))
        else:
            if client.secret is None and client.secret_sha256 is None:
                problems.append((at, "a confidential client needs `secret` (${ENV}) or `secret_sha256`"))
            if client.secret is not None and client.secret_sha256 is not None:
                problems.append(((*at, "secret"), "give either `secret` or `secret_sha256`, not both"))
            if client.secret is not None and len(client.secret.get_secret_value()) < 16:
                problems.append(((*at, "secret"), "client secret is shorter than 16 characters"))
        if "authorization_code" in client.grant_types and not client.redirect_uris:
            problems.append((at, "authorization_code needs at least one redirect_uri"))
        if "refresh_token" in client.grant_types and "authorization_code" not in client.grant_types:
            if "urn:ietf:params:oauth:grant-type:device_code" not in client.grant_types:
                problems.append(((*at, "grant_types"), "refresh_token needs a grant that issues one"))
        problems += _token_exchange_problems(realm, client, at)
        for field in ("access_token_alg", "id_token_alg"):
            alg = getattr(client, field)
            if alg is not None and alg not in realm.signing.algs:
                problems.append(((*at, field), f"{alg} is not in the realm's signing.algs"))
    if realm.signing.default_alg not in realm.signing.algs:
        problems.append((("signing", "default_alg"), "default_alg must be one of signing.algs"))
    if "RS256" not in realm.signing.algs:
        problems.append((("signing", "algs"), "RS256 is required by OpenID Connect Core §15.1"))
    for scope in realm.claims:
        if scope not in scopes:
            problems.append((("claims", scope), f"claims for undeclared scope {scope!r}"))
    seen_providers: set[str] = set()
    for i, provider in enumerate(getattr(realm, "providers", [])):
        if provider.id in seen_providers:
            problems.append((("providers", i, "id"), f"duplicate provider id {provider.id!r}"))
        seen_providers.add(provider.id)
    problems += _sign_in_problems(realm)
    return problems


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def _token_exchange_problems(realm: RealmBase, client: Client, at: Loc) -> list[tuple[Loc, str]]:
    """RFC 8693: the grant and its policy go together, for a confidential client, and the
    policy names clients of this realm."""
    listed = TOKEN_EXCHANGE in client.grant_types
    policy = client.token_exchange
    if listed and policy is None:
        return [((*at, "grant_types", client.grant_types.index(TOKEN_EXCHANGE)),
                 "token exchange needs a `token_exchange` policy (from_clients, audiences)")]
    if policy is None:
        return []
    problems: list[tuple[Loc, str]] = []
    if not listed:
        problems.append(((*at, "token_exchange"),
                         f"`token_exchange` is set but {TOKEN_EXCHANGE} is not in grant_types"))
    if client.type == "public":
        problems.append(((*at, "token_exchange"), "a public client may not use token exchange"))
    known = {c.client_id for c in realm.clients}
    for j, name in enumerate(policy.from_clients):
        if name not in known:
            problems.append(((*at, "token_exchange", "from_clients", j), f"no client {name!r} in this realm"))
    return problems


USER_GRANTS = ("authorization_code", "urn:ietf:params:oauth:grant-type:device_code")


def _sign_in_problems(realm: RealmBase) -> list[tuple[Loc, str]]:
    """A realm must be able to issue something: users sign in through a provider; without
    one, only confidential clients using client_credentials get tokens (a machine-to-machine
    realm). A client whose grant needs a user, in a realm without a provider, can never
    succeed: that is a mistake, not a configuration."""
    if getattr(realm, "providers", []):
        return []
    problems: list[tuple[Loc, str]] = []
    machine = False
    for i, client in enumerate(realm.clients):
        if any(grant in client.grant_types for grant in USER_GRANTS):
            problems.append((("clients", i, "grant_types"),
                             "this client signs users in, but the realm has no provider to sign in with"))
        elif client.type == "confidential" and "client_credentials" in client.grant_types:
            machine = True
    if not problems and not machine:
        problems.append((("name",), "the realm has no way to sign in: add a provider (users) or a"
                                    " confidential client_credentials client (machines)"))
    return problems


def _templates_problems(realm: RealmBase, config_dir: Path) -> list[tuple[Loc, str]]:
    """`templates:` is a directory inside the configuration directory, symlinks resolved."""
    if realm.templates is None:
        return []
    root = config_dir.resolve()
    directory = (root / realm.templates).resolve()
    if not directory.is_relative_to(root):
        return [(("templates",), f"templates: {realm.templates!r} resolves outside the configuration directory")]
    if not directory.is_dir():
        return [(("templates",), f"templates: directory {realm.templates!r} does not exist")]
    return []


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading allocates millions of objects that all live on: with 10,000 realms the
    cyclic collector would rescan the growing heap again and again (a third of the load
    time). Nothing here makes reference cycles worth collecting mid-load."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            # What was loaded goes straight to the oldest generation (freeze, then unfreeze:
            # no scan) instead of being scanned by the next young collections (~0.4 s).
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def load_config(
    path: str | Path,
    provider_models: list[type[BaseModel]],
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate everything; raise ConfigError listing every problem found."""
    with _collector_paused():
        return _load_config(path, provider_models, environ)


def _load_config(
    path: str | Path,
    provider_models: list[type[BaseModel]],
    environ: Mapping[str, str] | None = None,
) -> Config:
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
    if server is not None:
        loopback = is_loopback_url(server.base_url)
        server_source.problems += _secret_problems(server_source, server_env.secrets, loopback)
        if server_source.problems:
            server = None
    problems += server_source.problems
    if server is None:
        raise ConfigError(problems)

    realm_model = build_realm_model(provider_models)
    realms_dir = Path(server.realms)
    if not realms_dir.is_absolute():
        realms_dir = (path.parent / realms_dir).resolve()
    realms: dict[str, RealmBase] = {}
    realm_files: dict[str, Path] = {}
    if not realms_dir.is_dir():
        problems.append(f"{server_source.where(('realms',))}: realms directory {realms_dir} does not exist")
    else:
        cwd = Path.cwd()
        for file in sorted(realms_dir.glob("*.yaml")) + sorted(realms_dir.glob("*.yml")):
            source = load_yaml(_display(file, cwd))
            expansion = Expansion()
            parsed = not source.problems
            if parsed:
                expansion = expand_env(source, environ, realm_model, references=_has_references(source),
                                       refused=SERVER_VARIABLES)
            source.problems += _secret_problems(source, expansion.secrets, loopback)
            realm = None
            # A reference where none may be stays as written: the file's other problems are
            # reported with it. An unset variable leaves an empty value: that one problem is enough.
            if parsed and not expansion.unset:
                realm = _validate(realm_model, source, provider_types)
            if realm is not None:
                for loc, message in realm_problems(realm) + _templates_problems(realm, path.parent):
                    source.problems.append(f"{source.where(loc)}: {message}")
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
    if server.root_realm is not None and realms_dir.is_dir() and not problems and server.root_realm not in realms:
        problems.append(f"{server_source.where(('root_realm',))}: root_realm {server.root_realm!r} is not a realm")
    if problems:
        raise ConfigError(problems)
    return Config(path=path, server=server, realms=realms, realm_files=realm_files)


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
