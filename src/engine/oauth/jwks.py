"""RFC 7517 §5: the realm's JSON Web Key Set, public members only, each key with `kid`,
`alg` and `use`. Keys announced as `next` are published before they sign, and retiring
keys stay until their tokens expire (engine.tokens.keys)."""

from __future__ import annotations

from aiohttp import web

from engine.realm import Realm
from engine.web.appkeys import SERVICES


async def jwks(request: web.Request, realm: Realm) -> web.Response:
    services = request.app[SERVICES]
    algs = realm.config.signing.algs
    keys = services.keys.cached_keys(realm.name, algs) or await services.keys.realm_keys(realm.name, algs)
    # Verifiers may cache the set for at most the verifier cache TTL: rotation waits that long.
    max_age = int(services.keys.verifier_cache_ttl.total_seconds())
    return keys.jwks_body.response(request, max_age=min(max_age, 900))
