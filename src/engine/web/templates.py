"""The realm's pages (engine.templates) as aiohttp responses, for the handlers of the web
layer itself (the error page of engine.web.middleware, the device pages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.realm import Realm
from engine.templates import render as render_page
from engine.web.adapter import response

if TYPE_CHECKING:
    from engine.services import Services


def render(request: web.Request, realm: Realm, services: Services, name: str, *, status: int = 200,
           **context: Any) -> web.Response:
    return response(render_page(realm, services, name, status=status, **context))
