"""`${VAR}` and `${VAR:-default}` interpolation over parsed YAML values (never raw text),
confined to the fields that hold secrets, credentials and endpoints.

Expanding after parsing means a secret containing `:` or a newline cannot change the
structure of the document (api-notes §7, pitfall 2). A missing variable is a problem that
names the variable and the `file:line` of the value that references it.

A realm file may be generated from a tenant's input, and much of a realm is shown on
public pages (display names, scope descriptions, logos, claims). So a reference is expanded
only in a field its model marks `Annotated[..., ENV]` (may come from the environment) or
`Annotated[..., SECRET]` (must come from the environment: never written in clear); a
reference anywhere else is a `file:line` problem, and the host's environment (the KEK, a
database password, another realm's secret) can never reach a page. Plugins mark their own
settings the same way (`from engine import ENV, SECRET`); an unmarked `SecretStr` field
counts as SECRET. The marks also appear in the JSON Schema (`"x-env": "allowed" | "required"`).

Secrets from files (Docker and Kubernetes secrets, issue 18 item 12): `${VAR}` takes the
content of the file named by `VAR_FILE` when `VAR` is unset or empty (one trailing newline
stripped, read at load time, so a reload reads it again). `VAR` and `VAR_FILE` both set
is a problem, as in the official Docker images' `file_env`: which one wins would otherwise
be a silent guess, and a stale `VAR` would hide the secret just rotated in the file. A
file that cannot be read is a `file:line` problem naming the variable and the path; the
content is never shown.
"""

from __future__ import annotations

import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from engine.config.yaml_source import MAX_SCALAR_CHARS, Loc, Source

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# In the JSON Schema: a string with a reference in it (a `pattern` matches anywhere).
REFERENCE_SCHEMA = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
                    "description": "a ${VAR} or ${VAR:-default} reference (VAR_FILE: read from a file)"}


@dataclass(frozen=True)
class FromEnv:
    """Field marker (pydantic `Annotated` metadata): the value may be a `${VAR}` reference;
    with `secret`, it must be one (a secret written in clear is a configuration problem)."""

    secret: bool = False

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        # A marked field also accepts a reference where its type is not text (`port:
        # ${PORT}`) or its text has a pattern (`ephemeral_prefix: ${PREFIX:-tessera:}`):
        # the file is valid against the schema as written, before expansion.
        schema = handler(core_schema)
        if list(schema) == ["anyOf"]:
            schema["anyOf"].append(dict(REFERENCE_SCHEMA))
        else:
            schema = {"anyOf": [schema, dict(REFERENCE_SCHEMA)]}
        schema["x-env"] = "required" if self.secret else "allowed"
        if self.secret:
            schema["writeOnly"] = True  # a secret: editors and documentation tools hide it
        return schema


ENV = FromEnv()
SECRET = FromEnv(secret=True)

Origin = Literal["environment", "default", "clear"]


@dataclass(frozen=True)
class SecretValue:
    """Where a SECRET field's value came from: the environment, the `:-default` of its
    reference (written in the file), or the file itself (in clear)."""

    loc: Loc
    origin: Origin
    value: str = field(repr=False)


@dataclass
class Expansion:
    """What `expand_env` found: every SECRET field's value and origin, and how many
    referenced variables were unset (their values are empty: validating them would
    only add noise to the problem that names the variable)."""

    secrets: list[SecretValue] = field(default_factory=list)
    unset: int = 0


# The server's own variables (the KEK, the database and Redis URLs): a realm file never
# needs them, and a realm file generated from a tenant's input must not reach them even in
# a field that may hold a reference (a provider's client_id travels to the upstream).
SERVER_VARIABLES = ("IDP_", "TESSERA_")


def expand_env(source: Source, environ: Mapping[str, str], model: type[BaseModel] | None = None,
               *, references: bool = True, refused: tuple[str, ...] = ()) -> Expansion:
    """Expand references in the marked fields of `source.data` (per `model`), in place;
    a reference elsewhere is a problem (and stays as written), and so is a variable whose
    name starts with one of `refused`. `references=False` says the file has no `${` at all
    (only secrets are looked at). Without a model every string value is expanded."""
    walker = _Walker(source, environ, everything=references, refused=refused)
    if model is None:
        source.data = walker.walk(source.data, Any, ENV, ())
    else:
        source.data = walker.walk(source.data, model, None, ())
    return walker.found


class _Walker:
    def __init__(self, source: Source, environ: Mapping[str, str], everything: bool,
                 refused: tuple[str, ...] = ()) -> None:
        self.source, self.environ, self.everything, self.refused = source, environ, everything, refused
        self.found = Expansion()
        self.secrets = self.found.secrets

    def walk(self, value: Any, annotation: Any, marker: FromEnv | None, loc: Loc) -> Any:
        shape = _shape(annotation)
        if shape.marker is not None:
            marker = shape.marker
        if isinstance(value, dict):
            model = shape.model_for(value)
            if model is not None:
                plan = _plan(model)
                result = {}
                for key, item in value.items():
                    field_plan = plan.get(key)
                    if field_plan is None:  # an unknown key: the model reports it; no marker here
                        result[key] = self.walk(item, Any, None, (*loc, key)) if self.everything else item
                        continue
                    field_type, own, may_hold = field_plan
                    own = own or marker
                    if not self.everything and own is None and not may_hold:
                        result[key] = item
                        continue
                    result[key] = self.walk(item, field_type, own, (*loc, key))
                return result
            return {key: self.walk(item, shape.dict_value, marker, (*loc, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, shape.list_item, marker, (*loc, i)) for i, item in enumerate(value)]
        if not isinstance(value, str):
            return value
        return self.leaf(value, marker, loc)

    def leaf(self, value: str, marker: FromEnv | None, loc: Loc) -> str:
        has_reference = "${" in value and _REFERENCE.search(value) is not None
        if not has_reference:
            if marker is not None and marker.secret:
                self.secrets.append(SecretValue(loc, "clear", value))
            return value
        shown = ".".join(str(p) for p in loc) or "(top level)"
        if marker is None:
            self.source.problems.append(
                f"{self.source.where(loc)}: {shown}: ${{...}} is not allowed here: only fields that hold"
                " secrets, credentials or endpoints may reference the environment")
            return value
        origins: list[Origin] = []

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if self.refused and name.startswith(self.refused):
                self.found.unset += 1
                self.source.problems.append(
                    f"{self.source.where(loc)}: {shown}: ${{{name}}} is one of the server's own variables"
                    f" ({', '.join(p + '*' for p in self.refused)}), which realm files may not read")
                return ""
            if self.environ.get(f"{name}_FILE"):
                return from_file(name)
            if name in self.environ:
                origins.append("environment")
                return self.environ[name]
            if default is not None:
                origins.append("default")
                return default
            self.found.unset += 1
            self.source.problems.append(
                f"{self.source.where(loc)}: environment variable {name} is not set (referenced by {shown})")
            return ""

        def from_file(name: str) -> str:
            path = self.environ[f"{name}_FILE"]
            if self.environ.get(name):
                problem = f"both {name} and {name}_FILE are set: set only one"
            else:
                try:
                    origins.append("environment")
                    return read_secret_file(path)
                except (OSError, ValueError) as exc:
                    origins.pop()
                    problem = f"{name}_FILE: cannot read {path}: {_reason(exc)}"
            self.found.unset += 1
            self.source.problems.append(f"{self.source.where(loc)}: {shown}: ${{{name}}}: {problem}")
            return ""

        expanded = _REFERENCE.sub(substitute, value)
        if len(expanded) > MAX_SCALAR_CHARS:
            self.source.problems.append(
                f"{self.source.where(loc)}: {shown}: value longer than {MAX_SCALAR_CHARS} characters")
        if marker.secret:
            whole = _REFERENCE.fullmatch(value) is not None
            origin: Origin = "clear" if not whole else origins[0] if origins else "environment"
            self.secrets.append(SecretValue(loc, origin, expanded))
        return expanded


def read_secret_file(path: str) -> str:
    """The content of a secret file (`VAR_FILE`), one trailing newline stripped. Only a
    regular file (symlinks followed, as Kubernetes mounts them), at most MAX_SCALAR_CHARS;
    a FIFO is refused rather than waited on."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ValueError("not a regular file")
        data = file.read(4 * MAX_SCALAR_CHARS + 1)
    if len(data) > 4 * MAX_SCALAR_CHARS:
        raise ValueError(f"longer than {MAX_SCALAR_CHARS} characters")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if len(text) > MAX_SCALAR_CHARS:
        raise ValueError(f"longer than {MAX_SCALAR_CHARS} characters")
    return text


def _reason(exc: Exception) -> str:
    """Why a file could not be read, without its content."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def _unwrap(annotation: Any, marker: FromEnv | None) -> tuple[Any, FromEnv | None]:
    """Strip `Annotated` layers (picking up a marker on the way)."""
    while typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        marker = next((m for m in args[1:] if isinstance(m, FromEnv)), marker)
        annotation = args[0]
    return annotation, marker


def _is_secret(annotation: Any) -> bool:
    """A `SecretStr` field is a secret even unmarked (a plugin written before the marks)."""
    return any(_unwrap(member, None)[0] is SecretStr for member in _union_members(_unwrap(annotation, None)[0]))


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


@dataclass(frozen=True)
class _Shape:
    """What the walk needs to know about one annotation, computed once per annotation."""

    marker: FromEnv | None
    models: tuple[type[BaseModel], ...]
    tags: dict[Any, type[BaseModel]]
    list_item: Any
    dict_value: Any

    def model_for(self, value: dict[str, Any]) -> type[BaseModel] | None:
        """The model a mapping is validated as: the one model, or the union member its
        `type` discriminator names (providers), else the first model of the union."""
        if not self.models:
            return None
        if self.tags:
            tag = value.get("type")
            if isinstance(tag, str) and tag in self.tags:
                return self.tags[tag]
        return self.models[0]


_SHAPES: dict[int, tuple[Any, _Shape]] = {}  # by id(annotation); the annotation is kept alive


def _shape(annotation: Any) -> _Shape:
    cached = _SHAPES.get(id(annotation))
    if cached is not None and cached[0] is annotation:
        return cached[1]
    unwrapped, marker = _unwrap(annotation, None)
    models, list_item, dict_value = [], Any, Any
    for member in _union_members(unwrapped):
        member = _unwrap(member, None)[0]
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            models.append(member)
        elif isinstance(origin, type) and issubclass(origin, list):
            list_item = (typing.get_args(member) or (Any,))[0]
        elif isinstance(origin, type) and issubclass(origin, dict):
            args = typing.get_args(member)
            dict_value = args[1] if len(args) > 1 else Any
    tags: dict[Any, type[BaseModel]] = {}
    if len(models) > 1:
        for model in models:
            tag_field = model.model_fields.get("type")
            for tag in typing.get_args(tag_field.annotation) if tag_field is not None else ():
                tags.setdefault(tag, model)
    shape = _Shape(marker, tuple(models), tags, list_item, dict_value)
    if len(_SHAPES) > 4096:  # each load builds a new realm model: keep the cache bounded
        _SHAPES.clear()
    _SHAPES[id(annotation)] = (annotation, shape)
    return shape


_PLANS: dict[type[BaseModel], dict[str, tuple[Any, FromEnv | None, bool]]] = {}


def _plan(model: type[BaseModel]) -> dict[str, tuple[Any, FromEnv | None, bool]]:
    """Per field of a model: its type, its own mark (SECRET for an unmarked `SecretStr`),
    and whether anything marked can be inside it. Computed once per model class."""
    plan = _PLANS.get(model)
    if plan is None:
        plan = {}
        for name, info in model.model_fields.items():
            own = next((m for m in info.metadata if isinstance(m, FromEnv)), None)
            if own is None and _is_secret(info.annotation):
                own = SECRET
            plan[name] = (info.annotation, own, own is not None or _may_hold_marks(info.annotation))
        if len(_PLANS) > 1024:
            _PLANS.clear()
        _PLANS[model] = plan
    return plan


_MAY_HOLD: dict[Any, bool] = {}


def _may_hold_marks(annotation: Any) -> bool:
    """Whether a value of this type can contain a marked field (cached per type): files
    without `${` only need the walk where secrets can be."""
    try:
        return _MAY_HOLD[annotation]
    except KeyError:
        pass
    except TypeError:  # unhashable metadata: walk it
        return True
    _MAY_HOLD[annotation] = True  # recursion guard (self-referencing models)
    result = _compute_may_hold(annotation)
    _MAY_HOLD[annotation] = result
    return result


def _compute_may_hold(annotation: Any) -> bool:
    annotation, marker = _unwrap(annotation, None)
    if marker is not None or _is_secret(annotation):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(any(isinstance(m, FromEnv) for m in info.metadata) or _may_hold_marks(info.annotation)
                   for info in annotation.model_fields.values())
    args = typing.get_args(annotation)
    return any(_may_hold_marks(arg) for arg in args if not isinstance(arg, (str, int, FieldInfo)))
