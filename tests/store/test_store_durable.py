"""Conformance suite of the durable tier, run against SQLite (embedded) and PostgreSQL
(production) through the `durable` fixture."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from engine.store import (
    AlreadyExists,
    AuditEvent,
    Consent,
    Credential,
    DurableStore,
    ExternalIdentity,
    SigningKey,
    User,
    open_durable,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
_ids = itertools.count(1)

ALL_MIGRATIONS = ["0001_init", "0002_family_resources_user_origin", "0003_logout_deliveries",
                  "0004_mfa", "0005_webauthn_credentials"]


def user(realm: str = "main", email: str | None = "Alice@Example.com", **kw) -> User:
    fields = dict(
        id=f"u{next(_ids)}",
        realm=realm,
        email=email,
        email_verified=False,
        profile={"name": "Alice", "address": {"country": "FR"}},
        created_at=T0,
    )
    return User(**{**fields, **kw})


def key(kid: str, status="next", *, realm: str = "main", created_at: datetime = T0) -> SigningKey:
    return SigningKey(
        realm=realm,
        kid=kid,
        alg="ES256",
        status=status,
        public_jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": kid},
        private_jwk=b"\x00encrypted\xff" + kid.encode(),
        created_at=created_at,
    )


# users and credentials


async def test_create_and_get_user_round_trips(durable: DurableStore):
    """A created user reads back field for field, with an aware UTC created_at."""
    alice = user()
    await durable.create_user(alice)
    got = await durable.get_user("main", alice.id)
    assert got == alice
    assert got.created_at.utcoffset() == timedelta(0)
    assert await durable.get_user("other", alice.id) is None
    assert await durable.get_user("main", "nobody") is None


async def test_get_user_by_email_is_case_insensitive_and_per_realm(durable: DurableStore):
    """Email lookup ignores case, keeps the stored spelling, and stays inside the realm."""
    alice = user(email="Alice@Example.com")
    await durable.create_user(alice)
    assert await durable.get_user_by_email("main", "aLICE@example.COM") == alice
    assert await durable.get_user_by_email("other", "alice@example.com") is None
    assert await durable.get_user_by_email("main", "bob@example.com") is None


async def test_duplicate_email_in_realm_raises_already_exists(durable: DurableStore):
    """A second user with the same email in any case is refused; other realms and
    users without email are not affected."""
    await durable.create_user(user(email="alice@example.com"))
    with pytest.raises(AlreadyExists):
        await durable.create_user(user(email="ALICE@example.com"))
    await durable.create_user(user(realm="other", email="alice@example.com"))
    await durable.create_user(user(email=None))
    await durable.create_user(user(email=None))


async def test_duplicate_user_id_raises_already_exists(durable: DurableStore):
    """The (realm, id) pair is unique."""
    alice = user()
    await durable.create_user(alice)
    with pytest.raises(AlreadyExists):
        await durable.create_user(replace(alice, email="other@example.com"))


async def test_list_users_pages_through_one_realm_in_id_order(durable: DurableStore):
    made = [user(email=f"p{n}@example.com") for n in range(5)]
    for u in made:
        await durable.create_user(u)
    await durable.create_user(user(realm="elsewhere", email="x@example.com"))
    first = await durable.list_users("main", limit=3)
    rest = await durable.list_users("main", after=first[-1].id, limit=3)
    assert [u.id for u in first + rest] == sorted(u.id for u in made)
    assert first[0] == sorted(made, key=lambda u: u.id)[0]
    assert await durable.list_users("nowhere") == []


async def test_update_user_changes_only_given_fields(durable: DurableStore):
    """update_user writes the given fields, keeps the others, and returns the new user."""
    alice = user()
    await durable.create_user(alice)
    updated = await durable.update_user(
        "main", alice.id, email_verified=True, profile={"name": "Alice B."}
    )
    assert updated == replace(alice, email_verified=True, profile={"name": "Alice B."})
    assert await durable.get_user("main", alice.id) == updated
    disabled = await durable.update_user("main", alice.id, disabled=True)
    assert disabled == replace(updated, disabled=True)
    assert await durable.update_user("main", alice.id) == disabled
    assert await durable.update_user("main", "nobody", disabled=True) is None
    assert await durable.update_user("other", alice.id, disabled=False) is None


async def test_credentials_set_replace_get(durable: DurableStore):
    """set_credential inserts, then replaces the credential of the same kind."""
    first = Credential("u1", "password", "$argon2id$v=19$first", T0)
    await durable.set_credential("main", first)
    assert await durable.get_credential("main", "u1", "password") == first
    second = Credential("u1", "password", "$argon2id$v=19$second", T0 + timedelta(hours=1))
    await durable.set_credential("main", second)
    assert await durable.get_credential("main", "u1", "password") == second
    assert await durable.get_credential("main", "u1", "totp") is None
    assert await durable.get_credential("other", "u1", "password") is None


async def test_delete_credential_removes_one_kind_of_one_user(durable: DurableStore):
    """delete_credential (a password set before the address was proven, issue 16 item 2)
    removes exactly that credential and says whether there was one."""
    await durable.set_credential("main", Credential("u1", "password", "h1", T0))
    await durable.set_credential("main", Credential("u1", "totp", "t1", T0))
    await durable.set_credential("main", Credential("u2", "password", "h2", T0))
    await durable.set_credential("other", Credential("u1", "password", "h3", T0))
    assert await durable.delete_credential("main", "u1", "password") is True
    assert await durable.delete_credential("main", "u1", "password") is False
    assert await durable.get_credential("main", "u1", "password") is None
    assert await durable.get_credential("main", "u1", "totp") is not None
    assert await durable.get_credential("main", "u2", "password") is not None
    assert await durable.get_credential("other", "u1", "password") is not None


async def test_user_and_credential_by_email_in_one_read(durable: DurableStore):
    """A sign-in's read: the user by case-insensitive email, with its credential of the
    kind asked for (None when it has none of that kind; (None, None) for no user)."""
    alice = user()
    await durable.create_user(alice)
    read = durable.get_user_and_credential_by_email
    assert await read("main", "ALICE@example.com", "password") == (alice, None)
    credential = Credential(alice.id, "password", "$argon2id$v=19$hash", T0)
    await durable.set_credential("main", credential)
    await durable.set_credential("main", Credential(alice.id, "totp", "other", T0))
    assert await read("main", "alice@example.com", "password") == (alice, credential)
    assert await read("main", "alice@example.com", "webauthn") == (alice, None)
    assert await read("other", "alice@example.com", "password") == (None, None)
    assert await read("main", "bob@example.com", "password") == (None, None)


# external identities


async def test_identities_link_find_list_and_duplicate(durable: DurableStore):
    """Identities are found by (issuer, subject), listed per user, and linked only once."""
    google = ExternalIdentity(
        "main",
        "google",
        "https://accounts.google.com",
        "g-1",
        "u1",
        "a@gmail.com",
        {"hd": "example.com", "groups": ["a"]},
        T0,
    )
    github = ExternalIdentity(
        "main", "github", "https://github.com", "42", "u1", None, {}, T0 + timedelta(seconds=1)
    )
    await durable.link_identity(google)
    await durable.link_identity(github)
    await durable.link_identity(replace(google, subject="g-2", user_id="u2"))
    assert await durable.find_identity("main", "https://accounts.google.com", "g-1") == google
    assert await durable.find_identity("other", "https://accounts.google.com", "g-1") is None
    assert await durable.find_identity("main", "https://github.com", "43") is None
    assert await durable.list_identities("main", "u1") == [google, github]
    assert await durable.list_identities("main", "nobody") == []
    with pytest.raises(AlreadyExists):
        await durable.link_identity(replace(google, user_id="u3"))


async def test_unlink_identities_removes_every_link_of_one_user(durable: DurableStore):
    """unlink_identities (federated links made before the address was proven, issue 16
    item 2) removes and returns every link of the user, oldest first, and nothing else;
    the identity can then be linked again."""
    google = ExternalIdentity("main", "google", "https://accounts.google.com", "g-1", "u1", None, {}, T0)
    github = ExternalIdentity("main", "github", "https://github.com", "42", "u1", None, {"a": 1},
                              T0 + timedelta(seconds=1))
    other_user = replace(google, subject="g-2", user_id="u2")
    other_realm = replace(google, realm="other")
    for link in (github, google, other_user, other_realm):
        await durable.link_identity(link)
    assert await durable.unlink_identities("main", "u1") == [google, github]
    assert await durable.unlink_identities("main", "u1") == []
    assert await durable.list_identities("main", "u1") == []
    assert await durable.find_identity("main", "https://accounts.google.com", "g-1") is None
    assert await durable.list_identities("main", "u2") == [other_user]
    assert await durable.list_identities("other", "u1") == [other_realm]
    await durable.link_identity(replace(google, user_id="u3"))  # free to link again


# consents


async def test_consents_save_replace_get(durable: DurableStore):
    """save_consent stores the full scope set and replaces it on the next save."""
    assert await durable.get_consent("main", "u1", "app") is None
    first = Consent("main", "u1", "app", frozenset({"openid", "email", "profile"}), T0)
    await durable.save_consent(first)
    assert await durable.get_consent("main", "u1", "app") == first
    second = Consent("main", "u1", "app", frozenset({"openid"}), T0 + timedelta(days=1))
    await durable.save_consent(second)
    assert await durable.get_consent("main", "u1", "app") == second
    empty = Consent("main", "u1", "other-app", frozenset(), T0)
    await durable.save_consent(empty)
    assert await durable.get_consent("main", "u1", "other-app") == empty
    assert await durable.get_consent("other", "u1", "app") is None


# signing keys


async def test_signing_keys_add_list_and_duplicate(durable: DurableStore):
    """Keys list oldest first with their encrypted bytes intact; a duplicate kid is refused."""
    newer = key("k2", created_at=T0 + timedelta(days=1))
    older = replace(
        key("k1", "active", created_at=T0), activated_at=T0, retire_after=T0 + timedelta(days=90)
    )
    await durable.add_signing_key(newer)
    await durable.add_signing_key(older)
    await durable.add_signing_key(key("k1", realm="other"))
    assert await durable.list_signing_keys("main") == [older, newer]
    with pytest.raises(AlreadyExists):
        await durable.add_signing_key(key("k1"))
    assert await durable.list_signing_keys("empty") == []


async def test_update_signing_key_compare_and_set(durable: DurableStore):
    """The status changes only when the key is in `expect_status`; times given are set,
    times not given are kept."""
    await durable.add_signing_key(key("k1", "next"))
    assert not await durable.update_signing_key(
        "main", "k1", status="retired", expect_status="active"
    )
    assert (await durable.list_signing_keys("main"))[0].status == "next"
    assert await durable.update_signing_key(
        "main", "k1", status="active", expect_status="next", activated_at=T0 + timedelta(hours=1)
    )
    assert await durable.update_signing_key(
        "main", "k1", status="retiring", retire_after=T0 + timedelta(days=2)
    )
    [k1] = await durable.list_signing_keys("main")
    assert (k1.status, k1.activated_at, k1.retire_after) == (
        "retiring",
        T0 + timedelta(hours=1),
        T0 + timedelta(days=2),
    )
    assert not await durable.update_signing_key("main", "missing", status="active")
    assert not await durable.update_signing_key("other", "k1", status="active")


async def test_concurrent_key_compare_and_set_has_one_winner(durable: DurableStore):
    """Of 50 concurrent next->active compare-and-sets exactly one succeeds."""
    await durable.add_signing_key(key("k1", "next"))
    results = await asyncio.gather(
        *(
            durable.update_signing_key(
                "main",
                "k1",
                status="active",
                expect_status="next",
                activated_at=T0 + timedelta(seconds=i),
            )
            for i in range(50)
        )
    )
    assert results.count(True) == 1
    [k1] = await durable.list_signing_keys("main")
    assert k1.status == "active"
    assert k1.activated_at == T0 + timedelta(seconds=results.index(True))


# audit


async def test_audit_events_append_and_list(durable: DurableStore):
    """Events list oldest first per realm, `since` is inclusive, `limit` caps the count."""
    times = [T0 + timedelta(minutes=m) for m in (3, 0, 2, 1, 4)]
    for i, at in enumerate(times):
        await durable.append_event(
            AuditEvent(
                "main",
                f"e{i}",
                at,
                user_id="u1",
                client_id="app",
                ip="203.0.113.9",
                data={"n": i, "ok": True},
            )
        )
    await durable.append_event(AuditEvent("other", "x", T0))
    events = await durable.list_events("main")
    assert [e.at for e in events] == sorted(times)
    assert [e.type for e in events] == ["e1", "e3", "e2", "e0", "e4"]
    assert all(e.id is not None for e in events)
    assert events[0] == AuditEvent(
        "main", "e1", T0, "u1", "app", "203.0.113.9", {"n": 1, "ok": True}, events[0].id
    )
    since = await durable.list_events("main", since=T0 + timedelta(minutes=2))
    assert [e.type for e in since] == ["e2", "e0", "e4"]
    assert [
        e.type for e in await durable.list_events("main", since=T0 + timedelta(minutes=2), limit=2)
    ] == ["e2", "e0"]
    assert [e.type for e in await durable.list_events("other")] == ["x"]


async def test_naive_datetimes_are_refused(durable: DurableStore):
    """Times must be aware: a naive datetime is a caller bug, on every backend."""
    with pytest.raises(ValueError):
        await durable.create_user(user(created_at=datetime(2025, 1, 1)))
    assert await durable.get_user_by_email("main", "alice@example.com") is None


# migrations


async def test_migrate_is_idempotent(blank_durable_url: str):
    """The first migrate() applies every migration, a second applies nothing."""
    store = await open_durable(blank_durable_url)
    try:
        assert await store.migrate() == ALL_MIGRATIONS
        assert await store.migrate() == []
        await store.create_user(user())  # the schema is there
    finally:
        await store.close()
    reopened = await open_durable(blank_durable_url)
    try:
        assert await reopened.migrate() == []
    finally:
        await reopened.close()


async def test_concurrent_migrate_applies_once(blank_durable_url: str):
    """Three instances migrating at once: one applies everything, the others get []."""
    stores = [await open_durable(blank_durable_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()
    assert sorted(results) == [[], [], ALL_MIGRATIONS]
