"""Durable-tier backends: SQLite (embedded) and PostgreSQL (production).

Helpers shared by both backends live here so the two behave identically.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.store.protocols import RefreshFamily, RefreshToken, RotateStatus


def utc(value: datetime) -> datetime:
    """`value` converted to UTC; a naive datetime is a caller bug and raises ValueError."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes aware UTC datetimes")
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def email_key(email: str | None) -> str | None:
    """The case-insensitive uniqueness key of an email (unique per realm)."""
    return None if email is None else email.lower()


def scopes_text(scopes: frozenset[str]) -> str:
    """Scopes as stored: sorted, space-separated (a scope token never contains a space)."""
    return " ".join(sorted(scopes))


def rotation_verdict(token: RefreshToken, family: RefreshFamily, now: datetime) -> RotateStatus | None:
    """Why `token` cannot be rotated at `now` (None: it can). Order: revoked, expired, replaced."""
    now = utc(now)
    if family.revoked_at is not None:
        return "revoked"
    if now >= token.expires_at or now >= family.expires_at:
        return "expired"
    if token.replaced_by is not None:
        return "already_rotated"
    return None


def check_successor(realm: str, old: RefreshToken, new: RefreshToken) -> None:
    """The new token must stay in the realm and the family of the token it replaces."""
    if new.realm != realm or new.family_id != old.family_id:
        raise ValueError(
            f"rotated token must belong to realm {realm!r} and family {old.family_id!r}, "
            f"got realm {new.realm!r} and family {new.family_id!r}"
        )
