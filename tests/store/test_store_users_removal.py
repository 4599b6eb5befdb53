"""Conformance suite of the durable tier, removing users (issue 23 item 13): a removed user
takes its credentials, external identities, consents and refresh families with it, in one
transaction; the unverified-account sweep touches only self-registered, never-verified
accounts older than the cut-off. Run against SQLite and PostgreSQL (`durable` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.store import Consent, Credential, DurableStore, ExternalIdentity, RefreshFamily, RefreshToken, User

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _user_with_belongings(durable: DurableStore, user_id: str, *, realm: str = "main",
                                verified: bool = False, self_registered: bool = True,
                                created_at: datetime = T0) -> None:
    await durable.create_user(User(id=user_id, realm=realm, email=f"{user_id}@example.com",
                                   email_verified=verified, profile={}, created_at=created_at,
                                   self_registered=self_registered))
    await durable.set_credential(realm, Credential(user_id=user_id, kind="password", secret_hash="$argon2id$x",
                                                   updated_at=T0))
    await durable.link_identity(ExternalIdentity(realm=realm, provider_id="google", issuer="https://g",
                                                 subject=f"sub-{user_id}", user_id=user_id, email=None,
                                                 claims={}, created_at=T0))
    await durable.save_consent(Consent(realm=realm, user_id=user_id, client_id="app",
                                       scopes=frozenset({"openid"}), updated_at=T0))
    family = RefreshFamily(id=f"fam-{user_id}", realm=realm, client_id="app", user_id=user_id, scope="openid",
                           session_id=None, auth_time=T0, created_at=T0, expires_at=T0 + timedelta(days=30))
    await durable.create_refresh_family(family, RefreshToken(token_hash=f"h-{user_id}", family_id=family.id,
                                                             realm=realm, created_at=T0,
                                                             expires_at=T0 + timedelta(days=1)))


async def _has_anything(durable: DurableStore, user_id: str, realm: str = "main") -> dict[str, bool]:
    return {
        "user": await durable.get_user(realm, user_id) is not None,
        "credential": await durable.get_credential(realm, user_id, "password") is not None,
        "identity": await durable.find_identity(realm, "https://g", f"sub-{user_id}") is not None,
        "consent": await durable.get_consent(realm, user_id, "app") is not None,
        "refresh": await durable.get_refresh_token(realm, f"h-{user_id}") is not None,
    }


NOTHING = {"user": False, "credential": False, "identity": False, "consent": False, "refresh": False}
EVERYTHING = {k: True for k in NOTHING}


async def test_delete_user_removes_everything_of_the_user(durable: DurableStore):
    """A deleted user leaves no credential, identity, consent or refresh family behind (a
    later account with the same email or upstream identity starts clean); others stay."""
    await _user_with_belongings(durable, "gone")
    await _user_with_belongings(durable, "kept")
    assert await durable.delete_user("main", "gone") is True
    assert await _has_anything(durable, "gone") == NOTHING
    assert await _has_anything(durable, "kept") == EVERYTHING
    assert await durable.delete_user("main", "gone") is False
    assert await durable.delete_user("other", "kept") is False
    assert await _has_anything(durable, "kept") == EVERYTHING


async def test_delete_unverified_users_only_takes_old_self_registered_unverified(durable: DurableStore):
    """Only self-registered accounts still unverified and made before the cut-off go;
    verified ones, operator-made (or federated) ones, young ones and other realms stay."""
    cutoff = T0 + timedelta(days=7)
    await _user_with_belongings(durable, "stale")
    await _user_with_belongings(durable, "stale2", created_at=T0 + timedelta(days=1))
    await _user_with_belongings(durable, "verified", verified=True)
    await _user_with_belongings(durable, "operator", self_registered=False)
    await _user_with_belongings(durable, "young", created_at=cutoff + timedelta(seconds=1))
    await _user_with_belongings(durable, "elsewhere", realm="other")

    assert await durable.delete_unverified_users("main", cutoff, limit=1) == ["stale"]  # oldest first
    assert await durable.delete_unverified_users("main", cutoff) == ["stale2"]
    assert await durable.delete_unverified_users("main", cutoff) == []
    assert await _has_anything(durable, "stale") == NOTHING
    assert await _has_anything(durable, "stale2") == NOTHING
    for kept in ("verified", "operator", "young"):
        assert await _has_anything(durable, kept) == EVERYTHING, kept
    assert await _has_anything(durable, "elsewhere", realm="other") == EVERYTHING


async def test_self_registered_round_trips(durable: DurableStore):
    """The user's origin is stored and read back (default: not self-registered)."""
    await durable.create_user(User(id="a", realm="main", email="a@example.com", email_verified=False,
                                   profile={}, created_at=T0, self_registered=True))
    await durable.create_user(User(id="b", realm="main", email="b@example.com", email_verified=False,
                                   profile={}, created_at=T0))
    assert (await durable.get_user("main", "a")).self_registered is True
    assert (await durable.get_user("main", "b")).self_registered is False
    assert (await durable.get_user_by_email("main", "A@example.com")).self_registered is True
