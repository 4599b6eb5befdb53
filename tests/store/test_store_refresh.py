"""Conformance suite of the durable tier, refresh-token families: run against SQLite
(embedded) and PostgreSQL (production) through the `durable` fixture."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from engine.store import (
    AlreadyExists,
    DurableStore,
    RefreshFamily,
    RefreshToken,
    open_durable,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def family(
    fid: str = "fam1",
    *,
    realm: str = "main",
    user_id: str = "u1",
    session_id: str | None = "s1",
    expires_at: datetime = T0 + timedelta(days=30),
) -> RefreshFamily:
    return RefreshFamily(
        id=fid,
        realm=realm,
        client_id="app",
        user_id=user_id,
        scope="openid offline_access",
        session_id=session_id,
        auth_time=T0 - timedelta(minutes=5),
        created_at=T0,
        expires_at=expires_at,
        data={"amr": ["pwd"], "acr": "1"},
    )


def token(
    token_hash: str,
    fid: str = "fam1",
    *,
    realm: str = "main",
    expires_at: datetime = T0 + timedelta(days=1),
) -> RefreshToken:
    return RefreshToken(
        token_hash=token_hash, family_id=fid, realm=realm, created_at=T0, expires_at=expires_at
    )


# refresh-token families


async def test_refresh_family_create_and_get(durable: DurableStore):
    """A family and its first token read back together; duplicates are refused."""
    fam, first = family(), token("h1")
    await durable.create_refresh_family(fam, first)
    assert await durable.get_refresh_token("main", "h1") == (first, fam)
    assert await durable.get_refresh_token("other", "h1") is None
    assert await durable.get_refresh_token("main", "nope") is None
    with pytest.raises(AlreadyExists):
        await durable.create_refresh_family(fam, token("h2"))
    with pytest.raises(AlreadyExists):
        await durable.create_refresh_family(family("fam2"), token("h1", "fam2"))
    assert await durable.get_refresh_token("main", "h2") is None  # the failed insert left nothing
    # nor did the family whose first token was refused: it can still be created as new
    await durable.create_refresh_family(family("fam2"), token("h3", "fam2"))
    assert (await durable.get_refresh_token("main", "h3"))[1] == family("fam2")


async def test_rotate_replaces_live_token(durable: DurableStore):
    """Rotation marks the old token replaced and stores the live successor."""
    await durable.create_refresh_family(family(), token("h1"))
    now = T0 + timedelta(minutes=10)
    result = await durable.rotate_refresh_token("main", "h1", token("h2"), now)
    assert result.status == "rotated"
    assert result.token == replace(token("h1"), replaced_by="h2", replaced_at=now)
    assert result.family == family()
    old, _ = await durable.get_refresh_token("main", "h1")
    assert (old.replaced_by, old.replaced_at) == ("h2", now)
    new, fam = await durable.get_refresh_token("main", "h2")
    assert new == token("h2") and fam == family()
    again = await durable.rotate_refresh_token("main", "h2", token("h3"), now)
    assert again.status == "rotated"


async def test_rotate_twice_reports_already_rotated(durable: DurableStore):
    """A second rotation of the same token writes nothing and shows the first successor."""
    await durable.create_refresh_family(family(), token("h1"))
    first_at = T0 + timedelta(minutes=1)
    await durable.rotate_refresh_token("main", "h1", token("h2"), first_at)
    result = await durable.rotate_refresh_token(
        "main", "h1", token("h3"), first_at + timedelta(seconds=5)
    )
    assert result.status == "already_rotated"
    assert (result.token.replaced_by, result.token.replaced_at) == ("h2", first_at)
    assert result.family == family()
    assert await durable.get_refresh_token("main", "h3") is None


async def test_rotate_in_revoked_family_reports_revoked(durable: DurableStore):
    """Tokens of a revoked family cannot rotate, replaced or not."""
    await durable.create_refresh_family(family(), token("h1"))
    await durable.rotate_refresh_token("main", "h1", token("h2"), T0)
    assert await durable.revoke_family("main", "fam1", "reuse", T0 + timedelta(seconds=1))
    for old in ("h1", "h2"):
        result = await durable.rotate_refresh_token(
            "main", old, token("h3"), T0 + timedelta(seconds=2)
        )
        assert result.status == "revoked"
        assert result.family.revoked_reason == "reuse"
    assert await durable.get_refresh_token("main", "h3") is None


async def test_rotate_expired_token_or_family_reports_expired(durable: DurableStore):
    """A token past its own expiry, or in a family past its expiry, cannot rotate."""
    await durable.create_refresh_family(family(), token("h1", expires_at=T0 + timedelta(hours=1)))
    at_expiry = await durable.rotate_refresh_token(
        "main", "h1", token("x"), T0 + timedelta(hours=1)
    )
    assert at_expiry.status == "expired"
    assert at_expiry.token.replaced_by is None
    just_before = T0 + timedelta(hours=1) - timedelta(microseconds=1)
    assert (
        await durable.rotate_refresh_token("main", "h1", token("h2"), just_before)
    ).status == "rotated"

    await durable.create_refresh_family(
        family("fam2", expires_at=T0 + timedelta(hours=2)),
        token("f2", "fam2", expires_at=T0 + timedelta(days=1)),
    )
    late = await durable.rotate_refresh_token(
        "main", "f2", token("f3", "fam2"), T0 + timedelta(hours=3)
    )
    assert late.status == "expired"
    assert await durable.get_refresh_token("main", "f3") is None
    assert await durable.get_refresh_token("main", "x") is None


async def test_rotate_unknown_token(durable: DurableStore):
    """An unknown hash, or one of another realm, is `unknown`."""
    await durable.create_refresh_family(family(), token("h1"))
    result = await durable.rotate_refresh_token("main", "nope", token("h2"), T0)
    assert (result.status, result.token, result.family) == ("unknown", None, None)
    assert (
        await durable.rotate_refresh_token("other", "h1", token("h2", realm="other"), T0)
    ).status == "unknown"


async def test_rotate_refuses_a_successor_in_another_family(durable: DurableStore):
    """The successor must stay in the family; a mismatch raises and writes nothing."""
    await durable.create_refresh_family(family(), token("h1"))
    with pytest.raises(ValueError):
        await durable.rotate_refresh_token("main", "h1", token("h2", "elsewhere"), T0)
    old, _ = await durable.get_refresh_token("main", "h1")
    assert old.replaced_by is None


async def test_concurrent_rotations_have_exactly_one_winner(durable: DurableStore, backend):
    """100 concurrent rotations of one token, over two store instances (two connections
    or pools): exactly one `rotated`, 99 `already_rotated`, one successor stored."""
    await durable.create_refresh_family(family(), token("h0"))
    second = await open_durable(backend.durable_url)
    try:
        stores = [durable, second]
        results = await asyncio.gather(
            *(
                stores[i % 2].rotate_refresh_token("main", "h0", token(f"n{i}"), T0)
                for i in range(100)
            )
        )
    finally:
        await second.close()
    winners = [i for i, r in enumerate(results) if r.status == "rotated"]
    assert len(winners) == 1
    assert sorted({r.status for r in results}) == ["already_rotated", "rotated"]
    assert {r.token.replaced_by for r in results} == {f"n{winners[0]}"}
    stored = [i for i in range(100) if await durable.get_refresh_token("main", f"n{i}")]
    assert stored == winners


async def test_revoke_family(durable: DurableStore):
    """revoke_family records when and why, and is True only for a live family."""
    await durable.create_refresh_family(family(), token("h1"))
    assert await durable.revoke_family("main", "fam1", "logout", T0 + timedelta(seconds=3))
    assert not await durable.revoke_family("main", "fam1", "again", T0 + timedelta(seconds=4))
    assert not await durable.revoke_family("main", "unknown", "logout", T0)
    _, fam = await durable.get_refresh_token("main", "h1")
    assert (fam.revoked_at, fam.revoked_reason) == (T0 + timedelta(seconds=3), "logout")


async def _families(durable: DurableStore) -> None:
    specs = [
        ("a", "main", "u1", "s1"),
        ("b", "main", "u1", "s2"),
        ("c", "main", "u2", "s1"),
        ("d", "main", "u2", None),
        ("e", "other", "u1", "s1"),
    ]
    for fid, realm, uid, sid in specs:
        await durable.create_refresh_family(
            family(fid, realm=realm, user_id=uid, session_id=sid),
            token(f"t-{fid}", fid, realm=realm),
        )


async def _revoked(durable: DurableStore) -> set[str]:
    out = set()
    for fid, realm in [("a", "main"), ("b", "main"), ("c", "main"), ("d", "main"), ("e", "other")]:
        _, fam = await durable.get_refresh_token(realm, f"t-{fid}")
        if fam.revoked_at is not None:
            out.add(fid)
    return out


async def test_revoke_families_by_user(durable: DurableStore):
    """Every live family of the user in the realm is revoked; others are untouched."""
    await _families(durable)
    assert await durable.revoke_families("main", T0, "password_changed", user_id="u1") == 2
    assert await _revoked(durable) == {"a", "b"}
    assert await durable.revoke_families("main", T0, "again", user_id="u1") == 0
    _, fam = await durable.get_refresh_token("main", "t-a")
    assert fam.revoked_reason == "password_changed"


async def test_revoke_families_by_session(durable: DurableStore):
    """Every live family of the browser session in the realm is revoked; others untouched."""
    await _families(durable)
    assert await durable.revoke_families("main", T0, "logout", session_id="s1") == 2
    assert await _revoked(durable) == {"a", "c"}


async def test_revoke_families_with_both_filters_needs_both(durable: DurableStore):
    """With user and session, only families matching both are revoked; no filter is an error."""
    await _families(durable)
    assert await durable.revoke_families("main", T0, "logout", user_id="u1", session_id="s1") == 1
    assert await _revoked(durable) == {"a"}
    with pytest.raises(ValueError):
        await durable.revoke_families("main", T0, "everything")


async def test_refresh_token_and_its_user_in_one_read(durable: DurableStore):
    """What a refresh needs (token, family, user) read together; the user as stored now
    (disabled included), None once it is gone, and nothing for an unknown token."""
    from engine.store import User

    user = User(id="u1", realm="main", email="ada@example.com", email_verified=True,
                profile={"name": "Ada"}, created_at=T0)
    await durable.create_user(user)
    fam, first = family(), token("h1")
    await durable.create_refresh_family(fam, first)
    assert await durable.get_refresh_token_and_user("main", "h1") == (first, fam, user)
    await durable.update_user("main", "u1", disabled=True)
    _, _, now = await durable.get_refresh_token_and_user("main", "h1")
    assert now == replace(user, disabled=True)
    await durable.create_refresh_family(family("fam2", user_id="gone"), token("h2", "fam2"))
    assert await durable.get_refresh_token_and_user("main", "h2") == (
        token("h2", "fam2"), family("fam2", user_id="gone"), None)
    assert await durable.get_refresh_token_and_user("main", "nope") is None
    assert await durable.get_refresh_token_and_user("other", "h1") is None


@pytest.mark.parametrize("resources", [("videos-api",), ("videos-api", "photos-api"), (), None])
async def test_family_keeps_its_granted_resources(durable: DurableStore, resources):
    """RFC 8707 §2.2 / RFC 9700 §2.3: the resources a family was granted are stored with it
    and come back on every read and rotation, so a refresh issues for exactly those. None is
    a family stored before they were recorded (the engine then falls back to the client's
    audiences); an empty grant stays empty, distinct from None."""
    from engine.store import User

    await durable.create_user(User(id="u1", realm="main", email=None, email_verified=True, profile={},
                                   created_at=T0))
    fam = replace(family(), resources=resources)
    await durable.create_refresh_family(fam, token("h1"))
    assert (await durable.get_refresh_token("main", "h1"))[1].resources == resources
    assert (await durable.get_refresh_token_and_user("main", "h1"))[1].resources == resources
    result = await durable.rotate_refresh_token("main", "h1", token("h2"), T0 + timedelta(minutes=1))
    assert result.status == "rotated" and result.family.resources == resources
    assert (await durable.get_refresh_token("main", "h2"))[1] == fam
