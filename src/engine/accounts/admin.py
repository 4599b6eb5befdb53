"""An administrator's everyday work on users (`idp users ...`, issue 18 item 9): find,
list, disable, enable, delete, hand out a password-reset link, see and end sessions.

Disabling or deleting a user ends everything the user holds at once, on every instance:
browser sessions and access tokens (the user's cutoff, engine.accounts.sessions), refresh
families (revoked in the durable store). Every change is an audit event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.accounts import recovery
from engine.accounts.emails import parse_email
from engine.accounts.sessions import end_user_sessions, user_sessions
from engine.realm import Realm
from engine.store.protocols import User

if TYPE_CHECKING:
    from engine.services import Services

USER_DISABLED = "user_disabled"
USER_ENABLED = "user_enabled"
USER_DELETED = "user_deleted"
SESSIONS_REVOKED = "sessions_revoked"
RESET_LINK_ISSUED = "password_reset_link_issued"
ADMIN = {"via": "admin"}


async def find_user(services: Services, realm: Realm, who: str) -> User | None:
    """A user by id (`usr_...`) or by email address."""
    if who.startswith("usr_"):
        return await services.durable.get_user(realm.name, who)
    email = parse_email(who)
    return await services.durable.get_user_by_email(realm.name, email) if email else None


def describe(user: User) -> dict[str, Any]:
    """What `users list|show --json` prints of a user (never a credential)."""
    return {"id": user.id, "email": user.email, "email_verified": user.email_verified,
            "name": user.profile.get("name"), "disabled": user.disabled,
            "self_registered": user.self_registered, "created_at": user.created_at.isoformat()}


async def end_everything(services: Services, realm: Realm, user_id: str, reason: str) -> int:
    """End the user's sessions and access tokens, revoke the refresh families; how many
    families were revoked."""
    await end_user_sessions(services, realm, user_id)
    return await services.durable.revoke_families(realm.name, services.clock.now(), reason, user_id=user_id)


async def set_disabled(services: Services, realm: Realm, user: User, disabled: bool) -> User:
    updated = await services.durable.update_user(realm.name, user.id, disabled=disabled) or user
    if disabled:
        revoked = await end_everything(services, realm, user.id, USER_DISABLED)
        await services.audit(realm.name, USER_DISABLED, user_id=user.id, families_revoked=revoked, **ADMIN)
    else:
        await services.audit(realm.name, USER_ENABLED, user_id=user.id, **ADMIN)
    return updated


async def delete(services: Services, realm: Realm, user: User) -> None:
    await end_everything(services, realm, user.id, USER_DELETED)
    await services.durable.delete_user(realm.name, user.id)
    await services.audit(realm.name, USER_DELETED, user_id=user.id, **ADMIN)


async def reset_link(services: Services, realm: Realm, user: User) -> str:
    """A password-reset link for the operator to hand over (valid `lifetimes.password_reset`,
    single use, dead once the password changes)."""
    token = await recovery.issue_reset_token(services, realm, user, flow_id=None)
    await services.audit(realm.name, RESET_LINK_ISSUED, user_id=user.id, **ADMIN)
    return f"{realm.issuer}/reset-password?token={token}"


async def sessions(services: Services, realm: Realm, user: User) -> list[dict[str, Any]]:
    """The user's live browser sessions: when each started and when it ends at the latest."""
    return [{"started_at": datetime.fromtimestamp(created, UTC).isoformat(),
             "ends_by": datetime.fromtimestamp(ends, UTC).isoformat()}
            for created, ends in await user_sessions(services, realm, user.id)]


async def revoke_sessions(services: Services, realm: Realm, user: User) -> int:
    revoked = await end_everything(services, realm, user.id, SESSIONS_REVOKED)
    await services.audit(realm.name, SESSIONS_REVOKED, user_id=user.id, families_revoked=revoked, **ADMIN)
    return revoked
