"""RFC 7517 §5: the realm's JSON Web Key Set, public members only, each key with `kid`,
`alg` and `use`. Keys announced as `next` are published before they sign, and retiring
keys stay until their tokens expire (engine.tokens.keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.exchange import Answer
from engine.realm import Realm

if TYPE_CHECKING:
    from engine.services import Services

PATHS = ("/.well-known/jwks.json", "/jwks.json")


def _max_age(services: Services) -> int:
    # Verifiers may cache the set for at most the verifier cache TTL: rotation waits that long.
    return min(int(services.keys.verifier_cache_ttl.total_seconds()), 900)


def jwks_now(services: Services, realm: Realm, if_none_match: str | None) -> Answer | None:
    """`jwks` without waiting, if this instance holds the realm's keys (keys due for a
    re-read are served while it runs: `KeyManager.keys_now`); else None."""
    keys = services.keys.keys_now(realm.name, realm.config.signing.algs)
    return None if keys is None else keys.jwks_body.answer(if_none_match, _max_age(services))


async def jwks(services: Services, realm: Realm, if_none_match: str | None) -> Answer:
    """The set, or 304 for a caller holding it (`If-None-Match`)."""
    answer = jwks_now(services, realm, if_none_match)
    if answer is not None:
        return answer
    keys = await services.keys.realm_keys(realm.name, realm.config.signing.algs)
    return keys.jwks_body.answer(if_none_match, _max_age(services))
