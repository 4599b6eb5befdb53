"""Federation mapping (seed): an upstream identity (issuer, subject) → a user of the realm.

An account never holds an email that nobody proved (issue 16 items 1–3):

1. A link for (issuer, subject) exists: that user. Their profile claims are refreshed
   from the upstream (the upstream is the source of truth for the claims it maps; with
   two linked upstreams, the latest login wins). If the upstream now verifies the very
   address of an unverified account, that is a proof of the address
   (engine.accounts.proof): what others set on the account before is removed.
2. No link, and the upstream asserts a **verified** email:
   - no user has it: provision one, `email_verified: true`;
   - a verified user has it: link to that user (unless the provider's
     `link_by_verified_email` is false: refused);
   - an *unverified* user has it (someone registered the address and never proved it):
     the upstream has just proven the address, so its owner owns the account. The
     password and links set before, the sessions and refresh families are removed
     (engine.accounts.proof), then the identity is linked.
3. The upstream asserts an email it did **not** verify (OIDC `email_verified` false or
   absent; a GitHub address that is not a verified one): per the provider's
   `unverified_email`, the user is provisioned **without** an email (`no_email`, the
   default) and never linked by email, or the sign-in is refused (`refuse`).
4. No email at all: a user without an email is provisioned.

Every refusal shows the same page whatever its cause (it must not tell whether an account
exists for an address, or whether it is verified); the cause goes to the log and to the
`federation_refused` audit event. Audit events: `user_provisioned`, `identity_linked`.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from engine import errors, events
from engine.accounts.emails import email_identity, parse_email
from engine.accounts.proof import address_proven
from engine.accounts.users import create_user
from engine.errors import OAuthError
from engine.providers import ExternalIdentity
from engine.realm import Realm
from engine.secrets_util import random_token
from engine.store.protocols import AlreadyExists, User
from engine.store.protocols import ExternalIdentity as IdentityLink

if TYPE_CHECKING:
    from engine.services import Services

# Claims that describe the account, not the person's profile: never copied into `profile`.
NOT_PROFILE = frozenset({"sub", "iss", "aud", "email", "email_verified"})

FEDERATION_REFUSED = "federation_refused"
REFUSED_MESSAGE = ("You could not be signed in with this account. Choose another way to sign in,"
                   " or contact the service's support if this keeps happening.")


class LinkRefused(OAuthError):
    """The identity cannot be mapped to a user (shown to the user as a page). The page says
    the same thing for every cause; `cause` is for the log and the audit trail only."""

    error = errors.ACCESS_DENIED
    status = 403

    def __init__(self, cause: str):
        super().__init__(REFUSED_MESSAGE)
        self.cause = cause


# What an upstream asserts is input like any other (issue 23 item 8): bounded, and no
# control characters or lone surrogates in what is stored and later released in tokens.
UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
MAX_SUBJECT = 255
MAX_CLAIM_NAME = 64
MAX_CLAIM_VALUE = 2048
MAX_CLAIMS = 32
MAX_LIST = 64
MAX_JSON_INT = 2**53 - 1


def _safe_text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and not UNSAFE_TEXT.search(value)


def _safe_value(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):  # read alike by every JSON parser (RFC 7493 §2.2), signed in tokens
        return -MAX_JSON_INT <= value <= MAX_JSON_INT
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return len(value) <= MAX_LIST and all(_safe_text(v, MAX_CLAIM_VALUE) for v in value)
    return _safe_text(value, MAX_CLAIM_VALUE)


def profile_claims(identity: ExternalIdentity) -> dict[str, Any]:
    """The upstream's profile claims worth keeping: plain values (text, numbers, lists of
    text) without control characters, bounded in size and number; the rest is dropped."""
    claims: dict[str, Any] = {}
    for name, value in identity.claims.items():
        if (name not in NOT_PROFILE and value is not None and _safe_text(name, MAX_CLAIM_NAME)
                and _safe_value(value)):
            claims[name] = value
            if len(claims) == MAX_CLAIMS:
                break
    return claims


def _acceptable(identity: ExternalIdentity) -> str | None:
    """Why the upstream's identity cannot be used at all, or None."""
    if not identity.subject or not _safe_text(identity.subject, MAX_SUBJECT):
        return "the upstream subject is empty, too long or has control characters"
    if identity.email is not None and (not isinstance(identity.email, str) or UNSAFE_TEXT.search(identity.email)):
        return "the upstream email has control characters"
    return None


async def user_for_identity(
    services: Services,
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
    if (problem := _acceptable(identity)) is not None:
        raise LinkRefused(problem)
    unverified_email = identity.email is not None and not identity.email_verified
    if unverified_email and getattr(settings, "unverified_email", "no_email") == "refuse":
        raise LinkRefused("the upstream has not verified the email (unverified_email: refuse)")
    link = await durable.find_identity(realm.name, identity.issuer, identity.subject)
    if link is not None:
        user = await durable.get_user(realm.name, link.user_id)
        if user is None:
            raise LinkRefused("the account linked to this identity no longer exists")
        return await _refresh(services, realm, user, identity, link, provider_id=provider_id, ip=ip)

    audit = {"client_id": client_id, "ip": ip, "provider": provider_id, "issuer": identity.issuer}
    # An address the upstream did not verify is never looked up, linked or stored; nor is
    # one that is no address Tessera accepts (a hostile upstream's "a@b.example, c@d.example").
    email = parse_email(identity.email) if identity.email_verified and identity.email else None
    existing = await durable.get_user_by_email(realm.name, email) if email else None
    if existing is not None:
        if not getattr(settings, "link_by_verified_email", True):
            raise LinkRefused("an account has this email and link_by_verified_email is false")
        if existing.disabled:  # an operator's decision stands: nothing changes, the sign-in is denied
            return existing
        if not existing.email_verified:  # pre-registered: the upstream has just proven the address
            existing = await address_proven(services, realm, existing, via=f"upstream:{provider_id}", ip=ip,
                                            signing_in_now=True)
        try:
            await _link(services, realm, provider_id, identity, existing.id)
        except AlreadyExists:  # the same identity, linked concurrently
            if not _retry:
                raise LinkRefused("the identity was linked concurrently") from None
            return await user_for_identity(services, realm, provider_id, settings, identity,
                                           client_id=client_id, ip=ip, _retry=False)
        await services.audit(realm.name, events.IDENTITY_LINKED, user_id=existing.id, **audit,
                             via="verified_email")
        return await _refresh(services, realm, existing, identity, None, provider_id=provider_id, ip=ip)

    try:
        user = await _provision(services, realm, identity, email)
    except AlreadyExists:  # the email was taken concurrently: decide again
        if not _retry:
            raise LinkRefused("the account could not be created (email taken concurrently)") from None
        return await user_for_identity(services, realm, provider_id, settings, identity,
                                       client_id=client_id, ip=ip, _retry=False)
    await services.audit(realm.name, events.USER_PROVISIONED, user_id=user.id, **audit,
                         email="verified" if email else ("unverified_dropped" if unverified_email else "none"))
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


async def _provision(services: Services, realm: Realm, identity: ExternalIdentity, email: str | None) -> User:
    """A new user; `email` only when the upstream verified it."""
    profile = profile_claims(identity)
    if email:
        return await create_user(services, realm, email=email, email_verified=True, profile=profile)
    user = User(id="usr_" + random_token(12), realm=realm.name, email=None, email_verified=False,
                profile=profile, created_at=services.clock.now())
    await services.durable.create_user(user)
    return user


async def _link(services: Services, realm: Realm, provider_id: str, identity: ExternalIdentity,
                user_id: str) -> None:
    await services.durable.link_identity(IdentityLink(
        realm=realm.name, provider_id=provider_id, issuer=identity.issuer, subject=identity.subject,
        user_id=user_id, email=parse_email(identity.email) if identity.email_verified and identity.email else None,
        claims=profile_claims(identity),
        created_at=services.clock.now(),
    ))


async def _refresh(services: Services, realm: Realm, user: User, identity: ExternalIdentity,
                   link: IdentityLink | None, *, provider_id: str, ip: str | None) -> User:
    """Store the upstream's current profile claims. When the upstream verified the very
    address of an account that is not verified yet, that proves the address."""
    if (link is not None and not user.email_verified and identity.email_verified
            and identity.email is not None and user.email is not None
            and email_identity(identity.email) == email_identity(user.email)):
        user = await address_proven(services, realm, user, via=f"upstream:{provider_id}", ip=ip, keep=link,
                                    signing_in_now=True)
    profile = {**user.profile, **profile_claims(identity)}
    if profile == user.profile:
        return user
    updated = await services.durable.update_user(realm.name, user.id, profile=profile)
    return updated or user
