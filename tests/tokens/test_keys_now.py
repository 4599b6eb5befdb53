"""`KeyManager.keys_now` (the JWKS fast path cannot await): fresh keys as they are; keys
due for a re-read served while one background re-read runs; nothing when too old. And
what a re-read costs: only keys not seen before are decrypted and imported."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from engine.clock import FrozenClock
from engine.store import open_durable
from engine.tokens import jwt
from engine.tokens.keys import CACHE_TTL, KeyEncryption, KeyManager, generate_key, import_private


async def test_keys_now_serves_stale_keys_once_while_re_reading(tmp_path):
    store = await open_durable(f"sqlite:///{tmp_path}/keys.db")
    await store.migrate()
    clock = FrozenClock()
    manager = KeyManager(store, KeyEncryption(b"k" * 32), clock)
    algs = ["ES256"]
    assert manager.keys_now("acme", algs) is None  # never read: the awaiting path reads them
    first = await manager.realm_keys("acme", algs)
    assert manager.keys_now("acme", algs) is first
    clock.advance(CACHE_TTL.total_seconds() + 1)
    assert manager.keys_now("acme", algs) is first  # stale, served; one re-read started
    assert len(manager._reading) == 1
    assert manager.keys_now("acme", algs) is first and len(manager._reading) == 1  # not a second one
    await asyncio.gather(*manager._reading.values())
    fresh = manager.keys_now("acme", algs)
    assert fresh is not first and fresh.jwks == first.jwks  # re-read, same keys
    clock.advance((2 * CACHE_TTL + timedelta(seconds=1)).total_seconds())
    assert manager.keys_now("acme", algs) is None  # too old to serve without waiting
    await store.close()


async def test_a_re_read_imports_only_keys_it_has_not_seen(tmp_path):
    """The keys are read again every CACHE_TTL; a key whose stored (encrypted) JWK is
    unchanged is not decrypted and imported again (an RSA import would stop the event
    loop for ~40 ms per realm in use); a key made active by a rotation is."""
    store = await open_durable(f"sqlite:///{tmp_path}/keys.db")
    await store.migrate()
    clock = FrozenClock()
    manager = KeyManager(store, KeyEncryption(b"k" * 32), clock)
    algs = ["RS256", "ES256"]
    first = await manager.realm_keys("acme", algs)
    decrypted: list[str] = []
    decrypt = manager.encryption.decrypt
    manager.encryption.decrypt = lambda realm, kid, blob: decrypted.append(kid) or decrypt(realm, kid, blob)
    clock.advance(CACHE_TTL.total_seconds() + 1)
    second = await manager.realm_keys("acme", algs)
    assert second is not first and decrypted == []
    assert all(second.signers[alg][1] is first.signers[alg][1] for alg in algs)

    lifetime = timedelta(minutes=10)
    await manager.rotate("acme", ["RS256"], max_token_lifetime=lifetime)  # publishes `next`
    clock.advance(manager.verifier_cache_ttl.total_seconds() + 1)
    await manager.rotate("acme", ["RS256"], max_token_lifetime=lifetime)  # activates it
    manager.invalidate("acme")
    third = await manager.realm_keys("acme", algs)
    new_kid, old_kid = third.signers["RS256"][0], first.signers["RS256"][0]
    assert new_kid != old_kid and decrypted == [new_kid]
    assert third.signers["ES256"][1] is first.signers["ES256"][1]
    assert set(manager._imported["acme"]) == {new_kid, first.signers["ES256"][0]}  # the old one forgotten
    await store.close()


def test_trusted_rsa_import_is_the_same_key():
    """The import that skips OpenSSL's RSA consistency check (keys this IdP made and read
    back through authenticated encryption) gives the same key: same JWK, and what it
    signs verifies under the original's public key."""
    key = generate_key("RS256")
    jwk = key.as_dict(private=True)
    trusted = import_private(jwk, trusted=True)
    assert trusted.as_dict(private=True) == jwk and trusted.kid == key.kid
    token = jwt.sign({"sub": "s"}, trusted, trusted.kid, "RS256")
    assert jose_jwt.decode(token, RSAKey.import_key(key.as_dict(private=False))).claims == {"sub": "s"}
    assert import_private(jwk).as_dict(private=True) == jwk  # the checked import, for comparison


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def _gated(tmp_path, algs):
    """A manager whose store reads of the keys wait for `gate`; `reads` counts them."""
    store = await open_durable(f"sqlite:///{tmp_path}/keys.db")
    await store.migrate()
    clock = FrozenClock()
    manager = KeyManager(store, KeyEncryption(b"k" * 32), clock)
    first = await manager.realm_keys("acme", algs)
    gate, reads = asyncio.Event(), []
    list_keys = store.list_signing_keys

    async def gated_list(realm):
        reads.append(realm)
        await gate.wait()
        return await list_keys(realm)

    store.list_signing_keys = gated_list
    clock.advance(CACHE_TTL.total_seconds() + 1)
    return store, manager, first, gate, reads


async def test_callers_of_an_expired_read_share_one_read_and_wake_together(tmp_path):
    """64 requests needing the keys at once: one store read, and all 64 go on in the same
    event-loop turn once it is done (not one per turn, behind everything else)."""
    store, manager, _, gate, reads = await _gated(tmp_path, ["ES256"])
    waiting = [asyncio.create_task(manager.realm_keys("acme", ["ES256"])) for _ in range(64)]
    await _turns(3)
    assert reads == ["acme"]
    reading = manager._reading["acme"]
    gate.set()
    await asyncio.wait_for(asyncio.shield(reading), 10)  # the store answers (a thread for SQLite)
    await _turns(3)  # everybody wakes (through a lock: one waiter per turn)
    assert all(task.done() for task in waiting)
    assert len({id(task.result()) for task in waiting}) == 1 and reads == ["acme"]
    await store.close()


async def test_a_caller_giving_up_does_not_cancel_the_shared_read(tmp_path):
    store, manager, _, gate, reads = await _gated(tmp_path, ["ES256"])
    impatient = asyncio.create_task(manager.realm_keys("acme", ["ES256"]))
    patient = asyncio.create_task(manager.realm_keys("acme", ["ES256"]))
    await _turns(3)
    impatient.cancel()
    gate.set()
    keys = await patient
    assert impatient.cancelled() and keys.signers["ES256"] and reads == ["acme"]
    await store.close()


async def test_signing_does_not_wait_for_a_re_read(tmp_path):
    """Keys due for a re-read still sign while the store is slow to answer (the re-read
    runs in the background); keys never read must be waited for."""
    store, manager, first, gate, reads = await _gated(tmp_path, ["ES256"])
    assert manager.keys_now("acme", ["ES256"]) is first and reads == []
    await _turns(3)
    assert reads == ["acme"]  # the background re-read started and waits on the store
    assert manager.keys_now("acme", ["ES256"]) is first  # still served meanwhile
    assert manager.keys_now("other", ["ES256"]) is None
    gate.set()
    await asyncio.gather(*manager._reading.values())
    assert manager.cached_keys("acme", ["ES256"]) is not first
    await store.close()
