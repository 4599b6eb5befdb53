"""Federation mapping (seed): an upstream identity (issuer, subject) → a user of the realm.

1. A link for (issuer, subject) exists: that user. Their profile claims are refreshed
   from the upstream (the upstream is the source of truth for the claims it maps; with
   two linked upstreams, the latest login wins).
2. No link, and the upstream asserts a **verified** email that belongs to a user of the
   realm: link to that user, when the provider's `link_by_verified_email` (default true)
   allows it and the local account's own email is verified too. Linking to an account
   whose email nobody has proven would hand it to whoever created it (account
   pre-hijacking), so that case is refused until the owner verifies it.
3. No link and no user with that email: provision a user, `email_verified` as the
   upstream says.

An email the upstream did **not** verify never links to an existing account (account
takeover defence), and since emails are unique in a realm it cannot provision a second
account with it either: such a login is refused with a page that says why, and nothing is
written. Audit events: `user_provisioned`, `identity_linked`.
"""

from __future__ import annotations

from typing import Any

from engine import errors, events
from engine.accounts.users import create_user
from engine.errors import OAuthError
from engine.providers import ExternalIdentity
from engine.realm import Realm
from engine.secrets_util import random_token
from engine.store.protocols import AlreadyExists, User
from engine.store.protocols import ExternalIdentity as IdentityLink

# Claims that describe the account, not the person's profile: never copied into `profile`.
NOT_PROFILE = frozenset({"sub", "iss", "aud", "email", "email_verified"})


class LinkRefused(OAuthError):
    """The identity cannot be mapped to a user (shown to the user as a page)."""

    error = errors.ACCESS_DENIED
    status = 409


def profile_claims(identity: ExternalIdentity) -> dict[str, Any]:
    return {k: v for k, v in identity.claims.items() if k not in NOT_PROFILE and v is not None}


async def user_for_identity(
    services: Any,
    realm: Realm,
    provider_id: str,
    settings: Any,
    identity: ExternalIdentity,
    *,
    client_id: str | None = None,
    ip: str | None = None,
    _retry: bool = True,
) -> User:
    """The realm's user for `identity`, linking or provisioning as the rules above say."""
    durable = services.durable
    link = await durable.find_identity(realm.name, identity.issuer, identity.subject)
    if link is not None:
        user = await durable.get_user(realm.name, link.user_id)
        if user is None:
            raise LinkRefused("the account linked to this sign-in no longer exists")
        return await _refresh(services, realm, user, identity)

    audit = {"client_id": client_id, "ip": ip, "provider": provider_id, "issuer": identity.issuer}
    existing = await durable.get_user_by_email(realm.name, identity.email) if identity.email else None
    if existing is not None:
        if not identity.email_verified:
            raise LinkRefused(
                f"An account with the email {identity.email} already exists, and the sign-in provider"
                " has not verified that this address is yours, so the two cannot be joined."
                " Sign in with your existing account instead.")
        if not getattr(settings, "link_by_verified_email", True):
            raise LinkRefused(
                f"An account with the email {identity.email} already exists and this sign-in method"
                " is not allowed to join it. Sign in with your existing account instead.")
        if not existing.email_verified:
            raise LinkRefused(
                f"An account with the email {identity.email} already exists but its address has not"
                " been verified yet. Sign in to it and verify the address (or reset its password),"
                " then try again.")
        try:
            await _link(services, realm, provider_id, identity, existing.id)
        except AlreadyExists:  # the same identity, linked concurrently
            return await user_for_identity(services, realm, provider_id, settings, identity,
                                           client_id=client_id, ip=ip, _retry=False)
        await services.audit(realm.name, events.IDENTITY_LINKED, user_id=existing.id, **audit,
                             via="verified_email")
        return await _refresh(services, realm, existing, identity)

    try:
        user = await _provision(services, realm, identity)
    except AlreadyExists:  # the email was taken concurrently: decide again
        if not _retry:
            raise LinkRefused("this account could not be created; try again") from None
        return await user_for_identity(services, realm, provider_id, settings, identity,
                                       client_id=client_id, ip=ip, _retry=False)
    await services.audit(realm.name, events.USER_PROVISIONED, user_id=user.id, **audit)
    try:
        await _link(services, realm, provider_id, identity, user.id)
    except AlreadyExists:  # a concurrent first login of the same identity won
        link = await durable.find_identity(realm.name, identity.issuer, identity.subject)
        winner = await durable.get_user(realm.name, link.user_id) if link else None
        if winner is None:
            raise
        return winner
    await services.audit(realm.name, events.IDENTITY_LINKED, user_id=user.id, **audit, via="provisioned")
    return user


async def _provision(services: Any, realm: Realm, identity: ExternalIdentity) -> User:
    profile = profile_claims(identity)
    if identity.email:
        return await create_user(services, realm, email=identity.email,
                                 email_verified=identity.email_verified, profile=profile)
    user = User(id="usr_" + random_token(12), realm=realm.name, email=None, email_verified=False,
                profile=profile, created_at=services.clock.now())
    await services.durable.create_user(user)
    return user


async def _link(services: Any, realm: Realm, provider_id: str, identity: ExternalIdentity,
                user_id: str) -> None:
    await services.durable.link_identity(IdentityLink(
        realm=realm.name, provider_id=provider_id, issuer=identity.issuer, subject=identity.subject,
        user_id=user_id, email=identity.email, claims=profile_claims(identity),
        created_at=services.clock.now(),
    ))


async def _refresh(services: Any, realm: Realm, user: User, identity: ExternalIdentity) -> User:
    """Store the upstream's current profile claims; mark the email verified when the
    upstream verified this very address."""
    profile = {**user.profile, **profile_claims(identity)}
    verify = (not user.email_verified and identity.email_verified and identity.email is not None
              and user.email is not None and identity.email.casefold() == user.email.casefold())
    if profile == user.profile and not verify:
        return user
    updated = await services.durable.update_user(
        realm.name, user.id, profile=profile, email_verified=True if verify else None)
    return updated or user
