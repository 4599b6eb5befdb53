"""Signing keys: created on first use, private parts encrypted at rest, rotation that
publishes a key before it signs and keeps the old one until its tokens expire."""

from __future__ import annotations

import asyncio
import json

import pytest
from cryptography.exceptions import InvalidTag

from engine.tokens.keys import KeyEncryption


async def published_kids(idp, prefix=""):
    resp = await idp.client.get(f"{prefix}/.well-known/jwks.json")
    return {k["kid"]: k["alg"] for k in (await resp.json())["keys"]}


async def signing_kid(idp, alg="RS256"):
    keys = await idp.services.keys.realm_keys("acme", ["RS256", "EdDSA"])
    return keys.signers[alg][0]


async def test_private_keys_are_stored_encrypted(idp):
    await idp.client.get("/jwks.json")
    rows = await idp.services.durable.list_signing_keys("acme")
    assert rows
    for row in rows:
        # Ciphertext, not the JWK (random bytes may start with "{" or hold '"d"' by chance;
        # they are never a JSON document).
        with pytest.raises(ValueError):
            json.loads(row.private_jwk)
        plain = json.loads(idp.services.keys.encryption.decrypt("acme", row.kid, row.private_jwk))
        assert "d" in plain
        # Bound to realm and kid: a row copied to another realm does not decrypt.
        with pytest.raises(InvalidTag):
            idp.services.keys.encryption.decrypt("other", row.kid, row.private_jwk)


async def test_wrong_key_encryption_key_cannot_decrypt(idp):
    await idp.client.get("/jwks.json")
    row = (await idp.services.durable.list_signing_keys("acme"))[0]
    with pytest.raises(InvalidTag):
        KeyEncryption(b"z" * 32).decrypt("acme", row.kid, row.private_jwk)


async def test_rotation_publishes_next_before_it_signs_then_retires_old(idp):
    """The new key is in JWKS for the verifier cache TTL before signing; the old key stays
    published until tokens it signed have expired (access/ID lifetime 10 min)."""
    keys = idp.services.keys
    old = await signing_kid(idp)
    changes = await keys.rotate("acme", ["RS256"], max_token_lifetime=idp.realm().config.lifetimes.access_token)
    assert any(c.startswith("published next RS256") for c in changes)
    published = await published_kids(idp)
    new = next(kid for kid, alg in published.items() if kid != old and alg == "RS256")
    assert await signing_kid(idp) == old  # published, not signing yet
    idp.clock.advance(keys.verifier_cache_ttl.total_seconds() - 1)
    await keys.rotate("acme", ["RS256"], max_token_lifetime=idp.realm().config.lifetimes.access_token)
    assert await signing_kid(idp) == old
    minted = await idp.services.tokens.access_token(idp.realm(), idp.realm().clients["worker"],
                                                    subject="w", scope="videos.read")
    idp.clock.advance(2)
    changes = await keys.rotate("acme", ["RS256"], max_token_lifetime=idp.realm().config.lifetimes.access_token)
    assert f"activated RS256 {new}" in changes
    keys.invalidate()
    assert await signing_kid(idp) == new
    published = await published_kids(idp)
    assert old in published and new in published
    # The token signed by the old key still verifies at the introspection path.
    assert (await idp.services.tokens.verify_access_token(idp.realm(), minted.token))["sub"] == "w"
    idp.clock.advance(601)
    await keys.rotate("acme", ["RS256"], max_token_lifetime=idp.realm().config.lifetimes.access_token)
    keys.invalidate()
    assert old not in await published_kids(idp)


async def test_concurrent_rotations_have_one_winner(idp):
    keys = idp.services.keys
    await signing_kid(idp)
    lifetime = idp.realm().config.lifetimes.access_token
    await keys.rotate("acme", ["RS256"], max_token_lifetime=lifetime)
    idp.clock.advance(keys.verifier_cache_ttl.total_seconds() + 1)
    results = await asyncio.gather(*(keys.rotate("acme", ["RS256"], max_token_lifetime=lifetime)
                                     for _ in range(5)))
    activations = [c for changes in results for c in changes if c.startswith("activated")]
    assert len(activations) == 1
    rows = await idp.services.durable.list_signing_keys("acme")
    assert sum(1 for r in rows if r.alg == "RS256" and r.status == "active") == 1
