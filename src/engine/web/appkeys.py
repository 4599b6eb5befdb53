"""Typed keys for what the application and a request hold (no globals, STYLE.md §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from engine.realm import Realm
    from engine.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", object)  # type: ignore[arg-type]
REALM: web.RequestKey[Realm] = web.RequestKey("realm", object)  # type: ignore[arg-type]
