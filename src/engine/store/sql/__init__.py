"""Durable-tier backends: SQLite (embedded) and PostgreSQL (production).

Helpers shared by both backends live here so the two behave identically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from engine.store.protocols import (
    AuditEvent,
    Consent,
    Credential,
    ExternalIdentity,
    LogoutDelivery,
    RefreshFamily,
    RefreshToken,
    RotateStatus,
    SigningKey,
    User,
    WebAuthnCredential,
)


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


def rotation_verdict(
    token: RefreshToken, family: RefreshFamily, now: datetime
) -> RotateStatus | None:
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


def _same(value: Any) -> Any:
    return value


# A user joined to another row (`LEFT JOIN users u`), its columns prefixed: `Rows.joined_user`.
JOINED_USER_COLUMNS = (
    "u.id AS u_id, u.realm AS u_realm, u.email AS u_email, u.email_verified AS u_email_verified,"
    " u.profile AS u_profile, u.created_at AS u_created_at, u.disabled AS u_disabled,"
    " u.self_registered AS u_self_registered"
)


def user_and_credential_by_email(placeholders: tuple[str, str, str]) -> str:
    """A user (by realm and lower-cased email) and its credential of one kind, in one
    query; `placeholders` are the driver's for realm, email and kind."""
    realm, email, kind = placeholders
    return ("SELECT u.*, c.secret_hash AS c_secret_hash, c.updated_at AS c_updated_at FROM users u"
            f" LEFT JOIN credentials c ON c.realm = u.realm AND c.user_id = u.id AND c.kind = {kind}"
            f" WHERE u.realm = {realm} AND u.email_lower = {email}")


class Rows:
    """Database row -> dataclass, given how the backend stores times (`dt` decodes one) and
    JSON (`js` decodes one); PostgreSQL's driver already returns both decoded."""

    def __init__(self, dt: Callable[[Any], Any] = _same, js: Callable[[Any], Any] = _same):
        self.dt, self.js = dt, js

    def user(self, r: Mapping[str, Any]) -> User:
        return User(id=r["id"], realm=r["realm"], email=r["email"],
                    email_verified=bool(r["email_verified"]), profile=self.js(r["profile"]),
                    created_at=self.dt(r["created_at"]), disabled=bool(r["disabled"]),
                    self_registered=bool(r["self_registered"]))

    def joined_user(self, r: Mapping[str, Any]) -> User | None:
        """The user of a row selected with `JOINED_USER_COLUMNS` (None: no such user)."""
        if r["u_id"] is None:
            return None
        return self.user({"id": r["u_id"], "realm": r["u_realm"], "email": r["u_email"],
                          "email_verified": r["u_email_verified"], "profile": r["u_profile"],
                          "created_at": r["u_created_at"], "disabled": r["u_disabled"],
                          "self_registered": r["u_self_registered"]})

    def user_and_credential(self, r: Mapping[str, Any] | None, kind: str) -> tuple[User | None, Credential | None]:
        """A row of the `user_and_credential_by_email` query (None: no such user)."""
        if r is None:
            return None, None
        user = self.user(r)
        if r["c_secret_hash"] is None:
            return user, None
        return user, self.credential({"user_id": user.id, "kind": kind, "secret_hash": r["c_secret_hash"],
                                      "updated_at": r["c_updated_at"]})

    def credential(self, r: Mapping[str, Any]) -> Credential:
        return Credential(user_id=r["user_id"], kind=r["kind"], secret_hash=r["secret_hash"],
                          updated_at=self.dt(r["updated_at"]))

    def identity(self, r: Mapping[str, Any]) -> ExternalIdentity:
        return ExternalIdentity(realm=r["realm"], provider_id=r["provider_id"],
                                issuer=r["issuer"], subject=r["subject"], user_id=r["user_id"],
                                email=r["email"], claims=self.js(r["claims"]),
                                created_at=self.dt(r["created_at"]))

    def family(self, r: Mapping[str, Any]) -> RefreshFamily:
        dt = self.dt
        return RefreshFamily(id=r["id"], realm=r["realm"], client_id=r["client_id"],
                             user_id=r["user_id"], scope=r["scope"], session_id=r["session_id"],
                             auth_time=dt(r["auth_time"]), created_at=dt(r["created_at"]),
                             expires_at=dt(r["expires_at"]), revoked_at=dt(r["revoked_at"]),
                             revoked_reason=r["revoked_reason"], data=self.js(r["data"]),
                             resources=self.resources(r["resources"]))

    def resources(self, value: Any) -> tuple[str, ...] | None:
        """The `resources` column: NULL (a family from before it existed), or a list
        (PostgreSQL `text[]`; SQLite JSON text)."""
        if value is None:
            return None
        return tuple(self.js(value) if isinstance(value, str) else value)

    def token(self, r: Mapping[str, Any]) -> RefreshToken:
        return RefreshToken(token_hash=r["token_hash"], family_id=r["family_id"],
                            realm=r["realm"], created_at=self.dt(r["created_at"]),
                            expires_at=self.dt(r["expires_at"]), replaced_by=r["replaced_by"],
                            replaced_at=self.dt(r["replaced_at"]))

    def delivery(self, r: Mapping[str, Any]) -> LogoutDelivery:
        return LogoutDelivery(id=r["id"], realm=r["realm"], client_id=r["client_id"], subject=r["subject"],
                              session_id=r["session_id"], created_at=self.dt(r["created_at"]),
                              next_at=self.dt(r["next_at"]), attempts=r["attempts"])

    def consent(self, r: Mapping[str, Any]) -> Consent:
        return Consent(realm=r["realm"], user_id=r["user_id"], client_id=r["client_id"],
                       scopes=frozenset(r["scopes"].split()), updated_at=self.dt(r["updated_at"]))

    def key(self, r: Mapping[str, Any]) -> SigningKey:
        dt = self.dt
        return SigningKey(realm=r["realm"], kid=r["kid"], alg=r["alg"], status=r["status"],
                          public_jwk=self.js(r["public_jwk"]), private_jwk=bytes(r["private_jwk"]),
                          created_at=dt(r["created_at"]), activated_at=dt(r["activated_at"]),
                          retire_after=dt(r["retire_after"]))

    def event(self, r: Mapping[str, Any]) -> AuditEvent:
        return AuditEvent(id=r["id"], realm=r["realm"], type=r["type"], at=self.dt(r["at"]),
                          user_id=r["user_id"], client_id=r["client_id"], ip=r["ip"],
                          data=self.js(r["data"]))

    # passkeys (issue 20)

    def webauthn(self, r: Mapping[str, Any]) -> WebAuthnCredential:
        return WebAuthnCredential(realm=r["realm"], credential_id=r["credential_id"], user_id=r["user_id"],
                                  public_key=bytes(r["public_key"]), sign_count=int(r["sign_count"]),
                                  transports=tuple(r["transports"].split()), aaguid=r["aaguid"], name=r["name"],
                                  created_at=self.dt(r["created_at"]), last_used_at=self.dt(r["last_used_at"]))
