"""The API endpoints (token, introspection, revocation, userinfo, discovery, JWKS) as
aiohttp handlers: thin adapters over the protocol core (engine.oauth), which answers from
the realm and the request's data alone (engine.exchange). Errors propagate to the one
middleware that renders them."""

from __future__ import annotations

from aiohttp import web

from engine.oauth import discovery as discovery_core
from engine.oauth import jwks as jwks_core
from engine.oauth.device import device_authorization as device_authorization_core
from engine.oauth.introspect import introspect as introspect_core
from engine.oauth.revoke import revoke as revoke_core
from engine.oauth.token import token as token_core
from engine.oauth.userinfo import userinfo as userinfo_core
from engine.realm import Realm
from engine.web.adapter import adapt, response
from engine.web.appkeys import SERVICES

token = adapt(token_core)
introspect = adapt(introspect_core)
revoke = adapt(revoke_core)
userinfo = adapt(userinfo_core)
device_authorization = adapt(device_authorization_core)


async def discovery(request: web.Request, realm: Realm) -> web.Response:
    return response(discovery_core.discovery(realm, request.headers.get("If-None-Match")))


async def jwks(request: web.Request, realm: Realm) -> web.Response:
    services, if_none_match = request.app[SERVICES], request.headers.get("If-None-Match")
    # the keys at hand: no coroutine; else read first
    return response(jwks_core.jwks_now(services, realm, if_none_match)
                    or await jwks_core.jwks(services, realm, if_none_match))
