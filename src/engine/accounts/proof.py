"""Whoever proves the address owns the account (issue 16 item 2; OWASP "account
pre-hijacking", Sudhodanan & Paverd 2022).

An account whose email nobody has proven may have been made by someone else: an attacker
registers the victim's address with a password of their own, or links an upstream
identity to it, and waits for the victim to verify. So the moment an address is proven —
the verification link, the reset link, or an upstream that verified this very address
signing in — everything set on the account before, by whoever made it, stops working:

- the password is deleted (the owner chooses one through the reset flow; the verification
  page leads straight there);
- every federated link is removed;
- every second factor is removed (TOTP, recovery codes, passkeys: a passkey alone signs in)
  and no browser stays remembered for them;
- every browser session and the access tokens issued up to now end, and every refresh
  family is revoked;

then the address is marked verified. Audit: `password_cleared`, `identities_unlinked`
(with the provider ids), and `email_verified` (with `via`, the second factors removed and
the families revoked).
An account already verified is left alone: what was set on it after its proof was set by
someone who could read the mailbox, or by an upstream that verified it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.accounts.lockout import end_trust
from engine.accounts.mfa import remove_factors
from engine.accounts.sessions import end_user_sessions
from engine.accounts.users import PASSWORD
from engine.realm import Realm
from engine.store.protocols import ExternalIdentity as IdentityLink
from engine.store.protocols import User

if TYPE_CHECKING:
    from engine.services import Services

EMAIL_VERIFIED = "email_verified"
PASSWORD_CLEARED = "password_cleared"
IDENTITIES_UNLINKED = "identities_unlinked"
REVOKE_REASON = "address_proven"


async def address_proven(
    services: Services,
    realm: Realm,
    user: User,
    *,
    via: str,
    ip: str | None = None,
    keep: IdentityLink | None = None,
    signing_in_now: bool = False,
) -> User:
    """`user`'s address has just been proven (`via`: how). If it was not verified yet, remove
    what was set before the proof and mark it verified; return the user as it now is.

    `keep`: the link of the upstream identity that is proving the address itself (it stays);
    `signing_in_now`: the caller signs the user in within this request
    (engine.accounts.sessions.end_user_sessions)."""
    if user.email_verified or user.email is None:
        return user
    durable = services.durable
    # Credentials first, then what they gave: no new session can be started with them once
    # the sessions are ended.
    password_cleared = await durable.delete_credential(realm.name, user.id, PASSWORD)
    removed = []
    for link in await durable.unlink_identities(realm.name, user.id):
        if keep is not None and (link.issuer, link.subject) == (keep.issuer, keep.subject):
            await durable.link_identity(link)  # the prover's own link, as it was
        else:
            removed.append(link)
    factors = await remove_factors(services, realm, user.id)
    await end_user_sessions(services, realm, user.id, signing_in_now=signing_in_now)
    await end_trust(services, realm, user.email)  # the pre-registrant's device cookies too
    families = await durable.revoke_families(realm.name, services.clock.now(), REVOKE_REASON, user_id=user.id)
    updated = await durable.update_user(realm.name, user.id, email_verified=True)
    if password_cleared:
        await services.audit(realm.name, PASSWORD_CLEARED, user_id=user.id, ip=ip, via=via)
    if removed:
        await services.audit(realm.name, IDENTITIES_UNLINKED, user_id=user.id, ip=ip, via=via,
                             providers=[link.provider_id for link in removed],
                             issuers=[link.issuer for link in removed])
    await services.audit(realm.name, EMAIL_VERIFIED, user_id=user.id, ip=ip, via=via,
                         password_cleared=password_cleared, identities_unlinked=len(removed),
                         factors_removed={kind: n for kind, n in factors.items() if n},
                         sessions_ended=True, families_revoked=families)
    return updated or user
