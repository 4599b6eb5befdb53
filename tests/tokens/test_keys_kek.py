"""The key-encryption key must be the same on every instance sharing a store (issue 16,
item 11; OWASP Key Management Cheat Sheet, "Key Compromise and Recovery": a key store
never silently forks). An instance that cannot decrypt the stored keys refuses to start,
naming the realm and the kid; it never creates a key set of its own beside keys it cannot
read (one would split the realm's verifiers); `/readyz` reports a realm whose keys it
cannot use. Both backends."""

from __future__ import annotations

import asyncio
import base64

import pytest

from engine.clock import FrozenClock
from engine.tokens.keys import CHECK_REALM, KeyEncryption, KeyManager, KeysUnusable
from tests.oauth.conftest import ACME, OTHER, write_config

ALGS = ["RS256", "EdDSA"]


def manager(durable, kek: bytes) -> KeyManager:
    return KeyManager(durable, KeyEncryption(kek), FrozenClock())


async def kids(durable, realm: str = "acme") -> set[str]:
    return {row.kid for row in await durable.list_signing_keys(realm)}


async def test_an_instance_with_another_kek_is_refused_naming_realm_and_kid(durable):
    first = manager(durable, b"a" * 32)
    await first.verify_store(["acme"])
    created = (await first.realm_keys("acme", ALGS)).signers["RS256"][0]

    second = manager(durable, b"b" * 32)
    with pytest.raises(KeysUnusable) as refused:
        await second.verify_store(["acme", "other"])
    message = str(refused.value)
    assert "realm acme" in message and "wrong or missing IDP_KEY_ENCRYPTION_KEY" in message
    assert refused.value.realm == "acme" and refused.value.kid in await kids(durable)
    assert created in await kids(durable)


async def test_no_second_key_set_beside_undecryptable_keys(durable):
    """Before: the second instance imported nothing, created nothing, but failed each
    request with an empty InvalidTag; or, on a realm it read first, made its own keys."""
    first = manager(durable, b"a" * 32)
    await first.realm_keys("acme", ALGS)
    before = await kids(durable)

    second = manager(durable, b"b" * 32)
    for attempt in (second.realm_keys("acme", ALGS), second.realm_keys("acme", [*ALGS, "ES256"]),
                    second.rotate("acme", ALGS, max_token_lifetime=first.verifier_cache_ttl)):
        with pytest.raises(KeysUnusable):
            await attempt
    assert await kids(durable) == before  # nothing created, nothing rotated
    assert second.unusable == {"acme": next(iter(second.unusable.values()))} and second.unusable["acme"] in before


async def test_a_store_made_before_the_check_row_is_checked_realm_by_realm(durable):
    first = manager(durable, b"a" * 32)
    await first.realm_keys("acme", ALGS)  # keys, but no check row yet (an older store)
    assert await durable.list_signing_keys(CHECK_REALM) == []

    with pytest.raises(KeysUnusable) as refused:
        await manager(durable, b"b" * 32).verify_store(["acme"])
    assert refused.value.realm == "acme"
    assert await durable.list_signing_keys(CHECK_REALM) == []  # the wrong KEK wrote nothing

    await first.verify_store(["acme"])  # the right one passes and records its check
    assert len(await durable.list_signing_keys(CHECK_REALM)) == 1
    await manager(durable, b"a" * 32).verify_store(["acme"])  # and again, from the row alone

    # A realm without keys yet: the check row alone refuses the wrong KEK.
    with pytest.raises(KeysUnusable, match="wrong or missing IDP_KEY_ENCRYPTION_KEY"):
        await manager(durable, b"b" * 32).verify_store(["other"])


async def test_two_instances_starting_at_once_with_different_keks_one_wins(durable):
    results = await asyncio.gather(
        manager(durable, b"a" * 32).verify_store(["acme"]),
        manager(durable, b"b" * 32).verify_store(["acme"]),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["KeysUnusable", "NoneType"], results


def kek_env(kek: bytes) -> dict[str, str]:
    return {"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(kek).decode()}


async def test_app_start_refuses_a_wrong_kek_and_readyz_names_unusable_realms(tmp_path, backend, aiohttp_client,
                                                                          unused_tcp_port_factory):
    from engine.web.app import create_app
    from engine.web.appkeys import SERVICES

    port = unused_tcp_port_factory()
    config = write_config(tmp_path, backend, {"acme": ACME, "other": OTHER}, f"http://127.0.0.1:{port}")
    prefix = backend.ephemeral_prefix
    client = await aiohttp_client(create_app(config, environ=kek_env(b"a" * 32), ephemeral_prefix=prefix))
    assert (await client.get("/jwks.json")).status == 200  # acme's keys exist now
    assert (await client.get("/readyz")).status == 200

    # A second instance with another KEK does not start (aiohttp's start-up raises).
    second = create_app(config, environ=kek_env(b"b" * 32), ephemeral_prefix=prefix)
    with pytest.raises(KeysUnusable, match="realm acme"):
        await aiohttp_client(second)

    # Keys of a realm written with another KEK after this instance started (as an
    # instance of the old code would have): 503 on that realm, /readyz names it.
    services = client.app[SERVICES]
    intruder = manager(services.durable, b"c" * 32)
    await intruder.realm_keys("other", ALGS)
    jwks = await client.get("/realms/other/jwks.json")
    assert jwks.status == 503 and (await jwks.json())["error"] == "temporarily_unavailable"
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 503 and "keys" in body["unavailable"], body
    assert [entry["realm"] for entry in body["unusable_keys"]] == ["other"]
    assert (await client.get("/jwks.json")).status == 200  # acme is still served
