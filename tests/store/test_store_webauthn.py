"""Conformance suite of the durable tier, passkeys (issue 20; WebAuthn Level 3 §6.1.1 for
the signature counter): WebAuthn credentials added, listed, found by credential id,
used (compare-and-set of the counter), renamed and removed, one by one or all of a user,
and removed with their user. Run against SQLite and PostgreSQL (`durable` fixture)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from engine.store import AlreadyExists, DurableStore, User, WebAuthnCredential

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def passkey(credential_id: str, user_id: str = "u1", *, realm: str = "main", created_at: datetime = T0,
            **kw) -> WebAuthnCredential:
    fields = dict(realm=realm, credential_id=credential_id, user_id=user_id,
                  public_key=b"\xa5\x01\x02\x03&\x00\xff" + credential_id.encode(), sign_count=0,
                  transports=("hybrid", "internal"), aaguid="00000000-0000-0000-0000-000000000000",
                  name="Laptop", created_at=created_at)
    return WebAuthnCredential(**{**fields, **kw})


async def test_added_passkey_reads_back_field_for_field(durable: DurableStore):
    """What is added is found by credential id and listed for its user, bytes and times intact."""
    key = passkey("cred-A", sign_count=7, last_used_at=T0 + timedelta(hours=1))
    await durable.add_passkey(key)
    found = await durable.find_passkey("main", "cred-A")
    assert found == key
    assert found.created_at.utcoffset() == timedelta(0)
    assert await durable.list_passkeys("main", "u1") == [key]
    assert await durable.find_passkey("other", "cred-A") is None
    assert await durable.find_passkey("main", "cred-B") is None
    assert await durable.list_passkeys("main", "u2") == []


async def test_a_credential_id_is_registered_once_per_realm(durable: DurableStore):
    """The same credential id cannot be added twice (to the same or another user); another
    realm is another relying party's namespace."""
    await durable.add_passkey(passkey("cred-A"))
    with pytest.raises(AlreadyExists):
        await durable.add_passkey(passkey("cred-A", "u2"))
    await durable.add_passkey(passkey("cred-A", realm="other"))


async def test_list_is_oldest_first_and_per_user(durable: DurableStore):
    await durable.add_passkey(passkey("late", created_at=T0 + timedelta(days=2)))
    await durable.add_passkey(passkey("early", created_at=T0))
    await durable.add_passkey(passkey("bobs", "u2"))
    assert [c.credential_id for c in await durable.list_passkeys("main", "u1")] == ["early", "late"]


async def test_use_moves_the_counter_only_from_the_expected_value(durable: DurableStore):
    """WebAuthn §6.1.1: the counter recorded is the one verified against; a sign-in
    checked against a counter that has moved meanwhile records nothing."""
    await durable.add_passkey(passkey("cred-A", sign_count=3))
    used_at = T0 + timedelta(minutes=5)
    assert await durable.use_passkey("main", "cred-A", expect_sign_count=3, sign_count=4, now=used_at)
    found = await durable.find_passkey("main", "cred-A")
    assert (found.sign_count, found.last_used_at) == (4, used_at)
    assert not await durable.use_passkey("main", "cred-A", expect_sign_count=3, sign_count=5,
                                                     now=used_at)
    assert (await durable.find_passkey("main", "cred-A")).sign_count == 4
    assert not await durable.use_passkey("main", "nope", expect_sign_count=0, sign_count=1, now=used_at)


async def test_concurrent_uses_of_one_counter_have_one_winner(durable: DurableStore):
    """Two assertions verified against the same stored counter (a cloned authenticator
    racing the original): exactly one is recorded."""
    await durable.add_passkey(passkey("cred-A", sign_count=10))
    results = await asyncio.gather(*(
        durable.use_passkey("main", "cred-A", expect_sign_count=10, sign_count=11 + i, now=T0)
        for i in range(5)))
    assert sorted(results) == [False] * 4 + [True]


async def test_rename_and_delete_touch_only_the_owners_passkey(durable: DurableStore):
    """Another user cannot rename or remove a passkey by naming its credential id."""
    await durable.add_passkey(passkey("cred-A"))
    assert not await durable.rename_passkey("main", "u2", "cred-A", "Mine now")
    assert not await durable.delete_passkey("main", "u2", "cred-A")
    assert await durable.rename_passkey("main", "u1", "cred-A", "Phone")
    assert (await durable.find_passkey("main", "cred-A")).name == "Phone"
    assert await durable.delete_passkey("main", "u1", "cred-A")
    assert await durable.find_passkey("main", "cred-A") is None
    assert not await durable.delete_passkey("main", "u1", "cred-A")


async def test_delete_all_of_a_user(durable: DurableStore):
    for name in ("a", "b", "c"):
        await durable.add_passkey(passkey(name))
    await durable.add_passkey(passkey("bobs", "u2"))
    await durable.add_passkey(passkey("elsewhere", realm="other"))
    assert await durable.delete_passkeys("main", "u1") == 3
    assert await durable.list_passkeys("main", "u1") == []
    assert await durable.delete_passkeys("main", "u1") == 0
    assert [c.credential_id for c in await durable.list_passkeys("main", "u2")] == ["bobs"]
    assert await durable.find_passkey("other", "elsewhere") is not None


async def test_removing_a_user_removes_its_passkeys(durable: DurableStore):
    """A removed account leaves no key that could sign in (its credential ids free again)."""
    await durable.create_user(User(id="u1", realm="main", email="a@example.com", email_verified=True,
                                   profile={}, created_at=T0))
    await durable.add_passkey(passkey("cred-A"))
    await durable.add_passkey(replace(passkey("cred-B"), user_id="u2"))
    assert await durable.delete_user("main", "u1")
    assert await durable.find_passkey("main", "cred-A") is None
    assert await durable.find_passkey("main", "cred-B") is not None
