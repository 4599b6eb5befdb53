"""Jinja2 pages, overridable per realm: a realm's `templates:` directory is searched
first, then the engine's templates, then the templates of the realm's providers.

A realm's templates are input from whoever writes the realm file: they are read only from
inside the configuration directory (symlinks resolved, so a link cannot reach `/etc`) and
rendered in Jinja2's `SandboxedEnvironment` (no attribute walks to `__globals__`, no unsafe
calls), the pages and the mails alike (issue 23 item 7).

Framework-free (issue 17 item 2): a page renders to an `engine.exchange.Answer`; the web
layer only sends it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from multidict import CIMultiDict, CIMultiDictProxy

from engine.config.models import origin_of
from engine.exchange import Answer
from engine.realm import Realm

if TYPE_CHECKING:
    from engine.services import Services

ENGINE_TEMPLATES = Path(__file__).parent / "web" / "templates"
_environments: WeakKeyDictionary[Realm, jinja2.Environment] = WeakKeyDictionary()


def realm_loader(realm: Realm, base_dir: Path, *, providers: bool = True) -> jinja2.BaseLoader:
    """The realm's template search path: its `templates:` directory, the engine's, then
    (for pages) its providers' own templates."""
    search: list[jinja2.BaseLoader] = []
    if realm.config.templates:
        search.append(ConfinedLoader(base_dir / realm.config.templates, root=base_dir))
    search.append(jinja2.FileSystemLoader(ENGINE_TEMPLATES))
    if providers:
        for provider in realm.providers.values():
            if (directory := getattr(provider, "templates_dir", None)) is not None:
                search.append(jinja2.FileSystemLoader(directory))
    return jinja2.ChoiceLoader(search)


class ConfinedLoader(jinja2.FileSystemLoader):
    """A `FileSystemLoader` that serves only files whose real path (symlinks resolved) is
    inside `root`: a template outside it is not found (and never opened)."""

    def __init__(self, searchpath: Path, *, root: Path) -> None:
        self.root = os.path.realpath(root)
        real = os.path.realpath(searchpath)
        inside = real == self.root or real.startswith(self.root + os.sep)
        super().__init__([real] if inside else [], followlinks=False)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        pieces = jinja2.loaders.split_template_path(template)  # refuses `..`
        for searchpath in self.searchpath:
            candidate = os.path.realpath(os.path.join(searchpath, *pieces))
            if os.path.isfile(candidate):
                if not candidate.startswith(self.root + os.sep):
                    raise jinja2.TemplateNotFound(template)
                break
        return super().get_source(environment, template)

    def list_templates(self) -> list[str]:
        return [name for name in super().list_templates()
                if os.path.realpath(os.path.join(self.searchpath[0], name)).startswith(self.root + os.sep)]


def environment(realm: Realm, base_dir: Path) -> jinja2.Environment:
    """The realm's pages. A template is read once per loaded configuration: no file check
    on every page (`auto_reload` stats every template on every render); a reload builds
    new realms, so edited templates apply with `idp reload`, like the rest of a realm."""
    env = _environments.get(realm)
    if env is None:
        env = SandboxedEnvironment(loader=realm_loader(realm, base_dir), autoescape=True, auto_reload=False)
        _environments[realm] = env
    return env


def render(realm: Realm, services: Services, name: str, *, status: int = 200, **context: Any) -> Answer:
    """The page `name` of the realm as an HTML answer no cache keeps and no frame shows."""
    env = environment(realm, services.runtime.config.path.parent)
    body = env.get_template(name).render(realm=realm, **context)
    headers = CIMultiDict({
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": content_security_policy(realm),
        "Referrer-Policy": "no-referrer",
        "Content-Type": "text/html; charset=utf-8",
    })
    return Answer(status, body.encode(), CIMultiDictProxy(headers))


PAGE_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"


def content_security_policy(realm: Realm) -> str:
    """The pages' CSP; a realm whose `logo_url` is on another (https) origin gets exactly
    that origin added to `img-src`, so the logo the configuration allows also loads."""
    origin = origin_of(realm.config.logo_url) if realm.config.logo_url else None
    if origin is None:
        return PAGE_CSP
    return f"{PAGE_CSP}; img-src 'self' {origin}"
