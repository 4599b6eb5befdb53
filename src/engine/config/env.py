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
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from engine.config.yaml_source import MAX_SCALAR_CHARS, Loc, Source

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class FromEnv:
    """Field marker (pydantic `Annotated` metadata): the value may be a `${VAR}` reference;
    with `secret`, it must be one (a secret written in clear is a configuration problem)."""

    secret: bool = False

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        schema["x-env"] = "required" if self.secret else "allowed"
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


def expand_env(source: Source, environ: Mapping[str, str], model: type[BaseModel] | None = None,
               *, references: bool = True) -> Expansion:
    """Expand references in the marked fields of `source.data` (per `model`), in place;
    a reference elsewhere is a problem (and stays as written). `references=False` says
    the file has no `${` at all (only secrets are looked at). Without a model every
    string value is expanded (no confinement)."""
    walker = _Walker(source, environ, everything=references)
    if model is None:
        source.data = walker.walk(source.data, Any, ENV, ())
    else:
        source.data = walker.walk(source.data, model, None, ())
    return walker.found


class _Walker:
    def __init__(self, source: Source, environ: Mapping[str, str], everything: bool) -> None:
        self.source, self.environ, self.everything = source, environ, everything
        self.found = Expansion()
        self.secrets = self.found.secrets

    def walk(self, value: Any, annotation: Any, marker: FromEnv | None, loc: Loc) -> Any:
        annotation, marker = _unwrap(annotation, marker)
        if isinstance(value, dict):
            model = _model_for(annotation, value)
            if model is not None:
                fields = model.model_fields
                result = {}
                for key, item in value.items():
                    info = fields.get(key)
                    if info is None:  # an unknown key: the model reports it; no marker here
                        result[key] = self.walk(item, Any, None, (*loc, key)) if self.everything else item
                        continue
                    own = next((m for m in info.metadata if isinstance(m, FromEnv)), None)
                    if own is None:
                        own = SECRET if _is_secret(info.annotation) else marker
                    if not self.everything and own is None and not _may_hold_marks(info.annotation):
                        result[key] = item
                        continue
                    result[key] = self.walk(item, info.annotation, own, (*loc, key))
                return result
            item_type = _container_arg(annotation, dict, 1)
            return {key: self.walk(item, item_type, marker, (*loc, key)) for key, item in value.items()}
        if isinstance(value, list):
            item_type = _container_arg(annotation, list, 0)
            return [self.walk(item, item_type, marker, (*loc, i)) for i, item in enumerate(value)]
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

        expanded = _REFERENCE.sub(substitute, value)
        if len(expanded) > MAX_SCALAR_CHARS:
            self.source.problems.append(
                f"{self.source.where(loc)}: {shown}: value longer than {MAX_SCALAR_CHARS} characters")
        if marker.secret:
            whole = _REFERENCE.fullmatch(value) is not None
            origin: Origin = "clear" if not whole else origins[0] if origins else "environment"
            self.secrets.append(SecretValue(loc, origin, expanded))
        return expanded


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


def _model_for(annotation: Any, value: dict[str, Any]) -> type[BaseModel] | None:
    """The model a mapping is validated as: the one model, or the union member its
    `type` discriminator names (providers), else the first model of the union."""
    models = []
    for member in _union_members(annotation):
        member = _unwrap(member, None)[0]
        if isinstance(member, type) and issubclass(member, BaseModel):
            models.append(member)
    if len(models) > 1:
        for model in models:
            tag = model.model_fields.get("type")
            if tag is not None and value.get("type") in typing.get_args(tag.annotation):
                return model
    return models[0] if models else None


def _container_arg(annotation: Any, kind: type, index: int) -> Any:
    for member in _union_members(annotation):
        member = _unwrap(member, None)[0]
        origin = typing.get_origin(member)
        if isinstance(origin, type) and issubclass(origin, kind):
            args = typing.get_args(member)
            return args[index] if len(args) > index else Any
    return Any


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
