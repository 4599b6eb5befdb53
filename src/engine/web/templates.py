"""Jinja2 pages, overridable per realm: a realm's `templates:` directory is searched
first, then the engine's templates, then the templates of the realm's providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import jinja2
from aiohttp import web

from engine.realm import Realm

ENGINE_TEMPLATES = Path(__file__).parent / "templates"
_environments: WeakKeyDictionary[Realm, jinja2.Environment] = WeakKeyDictionary()


def realm_loader(realm: Realm, base_dir: Path, *, providers: bool = True) -> jinja2.BaseLoader:
    """The realm's template search path: its `templates:` directory, the engine's, then
    (for pages) its providers' own templates."""
    search: list[jinja2.BaseLoader] = []
    if realm.config.templates:
        search.append(jinja2.FileSystemLoader(base_dir / realm.config.templates))
    search.append(jinja2.FileSystemLoader(ENGINE_TEMPLATES))
    if providers:
        for provider in realm.providers.values():
            if (directory := getattr(provider, "templates_dir", None)) is not None:
                search.append(jinja2.FileSystemLoader(directory))
    return jinja2.ChoiceLoader(search)


def environment(realm: Realm, base_dir: Path) -> jinja2.Environment:
    """The realm's pages. A template is read once per loaded configuration: no file check
    on every page (`auto_reload` stats every template on every render); a reload builds
    new realms, so edited templates apply with `idp reload`, like the rest of a realm."""
    env = _environments.get(realm)
    if env is None:
        env = jinja2.Environment(loader=realm_loader(realm, base_dir), autoescape=True, auto_reload=False)
        _environments[realm] = env
    return env


def render(request: web.Request, realm: Realm, services: Any, name: str, *, status: int = 200,
           **context: Any) -> web.Response:
    env = environment(realm, services.runtime.config.path.parent)
    body = env.get_template(name).render(realm=realm, **context)
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer",
    }
    return web.Response(text=body, status=status, content_type="text/html", headers=headers)
