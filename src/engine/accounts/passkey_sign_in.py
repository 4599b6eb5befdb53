"""Signing in with a passkey (issue 20), framework-free: as the FIRST factor on the login
page ("Sign in with a passkey": a discoverable credential, no email typed) and as the
SECOND factor on the second-factor page after a password or an upstream.

    POST {issuer}/passkeys/sign-in/options        flow, csrf -> options (JSON)
    POST {issuer}/passkeys/sign-in                flow, csrf, ceremony, credential
    POST {issuer}/passkeys/second-factor/options  csrf (the pending state's) -> options (JSON)
    POST {issuer}/passkeys/second-factor          csrf, ceremony, credential

A passkey verified with user verification (WebAuthn §6.2.3) is two factors on its own
(something held, and the PIN or biometric that unlocked it): the first-factor path hands
engine.accounts.mfa `amr` = [hwk|swk, user, mfa], and no second factor is asked. As a
second factor it adds [hwk|swk, user] to what the first proved.

The options are bound to the authorization flow (itself bound to this browser by its
cookie, and its CSRF token checked) or to the pending second factor of this browser;
requesting them is rate limited per address (first factor) or per account (second).
A failed second factor counts against the pending state like a wrong code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine import events
from engine.accounts import mfa, passkeys
from engine.errors import InvalidRequest, NotFound, RateLimited
from engine.exchange import Answer, Call
from engine.oauth.flows import Flow, load_flow, realm_base
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger(__name__)

PROVIDER = "passkey"  # the session's `provider` after a passkey sign-in
METHOD = "passkey"  # the second-factor method in audit events and `mfa_attempts_total`


def _offered(realm: Realm) -> None:
    if not passkeys.enabled(realm):
        raise NotFound("passkeys are not offered in this realm")


async def _flow(services: Services, realm: Realm, call: Call) -> tuple[Flow, dict[str, str]]:
    _offered(realm)
    params = await form_params(call)
    flow = await load_flow(call.cookies, services, realm, params.get("flow"), csrf=params.get("csrf"),
                           check_csrf=True)
    return flow, params


async def sign_in_options(services: Services, realm: Realm, call: Call) -> Answer:
    """Options for `navigator.credentials.get()` with no allow-list (§5.5: the
    authenticator offers this site's discoverable credentials)."""
    flow, _ = await _flow(services, realm, call)
    wait = await hit(services, realm, "login_ip", call.ip, realm.config.rate_limits.login_per_ip)
    if wait is not None:
        raise RateLimited(wait, "too many sign-in attempts; wait a moment and try again")
    return Answer.no_store_json(await passkeys.authentication_options(services, realm, bound_to=flow.id,
                                                                      purpose="sign-in"))


async def sign_in(services: Services, realm: Realm, call: Call) -> Answer:
    from engine.accounts.login import login_page_with_error

    flow, params = await _flow(services, realm, call)
    client_id = flow.data["client_id"]
    try:
        signed = await passkeys.authenticate(services, realm, params.get("ceremony", ""),
                                             params.get("credential", ""), purpose="sign-in", bound_to=flow.id)
        user = await services.accounts.get(realm.name, signed.user_id)
        if user is None or user.disabled:
            raise passkeys.PasskeyFailed("disabled", "this account cannot sign in", user_id=signed.user_id)
    except passkeys.PasskeyFailed as failed:
        log.info("passkey sign-in refused: %s", failed.reason)
        await services.audit(realm.name, events.LOGIN_FAILED, user_id=failed.user_id, ip=call.ip,
                             client_id=client_id, provider=PROVIDER, reason=failed.reason.split(":")[0])
        return login_page_with_error(call, services, realm, flow, failed.description)
    await services.audit(realm.name, events.LOGIN, user_id=user.id, ip=call.ip, client_id=client_id,
                         provider=PROVIDER)
    return await mfa.finish_first_factor(services, realm, call, flow, user.id, amr=[*signed.method_amr, mfa.MFA],
                                         provider=PROVIDER, user=user)


async def _pending(services: Services, realm: Realm, call: Call) -> tuple[mfa.Pending, dict[str, str]]:
    _offered(realm)
    params = await form_params(call)
    pending = await mfa.pending_of(services, realm, call)
    if pending is None or pending.stage != "verify":  # asked for a second factor (not enrolling one)
        raise mfa.PendingExpired()
    if not mfa.check_csrf(pending, params.get("csrf")):
        raise InvalidRequest("the form was not submitted from this sign-in page; start again")
    return pending, params


async def second_factor_options(services: Services, realm: Realm, call: Call) -> Answer:
    """Options for `navigator.credentials.get()` listing the user's passkeys (§5.5 allowCredentials)."""
    pending, _ = await _pending(services, realm, call)
    keys = await services.durable.list_passkeys(realm.name, pending.user_id)
    if not keys:
        raise InvalidRequest("you have no passkey; use another way to confirm it is you")
    wait = await hit(services, realm, "mfa_passkey", pending.user_id, realm.config.rate_limits.login_per_account)
    if wait is not None:
        raise RateLimited(wait, "too many attempts; wait a moment and try again")
    return Answer.no_store_json(await passkeys.authentication_options(
        services, realm, bound_to=pending.key, purpose="second-factor", allow=keys))


async def second_factor(services: Services, realm: Realm, call: Call) -> Answer:
    pending, params = await _pending(services, realm, call)
    try:
        signed = await passkeys.authenticate(services, realm, params.get("ceremony", ""),
                                             params.get("credential", ""), purpose="second-factor",
                                             bound_to=pending.key, user_id=pending.user_id)
    except passkeys.PasskeyFailed as failed:
        log.info("passkey second factor refused: %s", failed.reason)
        await services.audit(realm.name, events.MFA_FAILED, user_id=pending.user_id, ip=call.ip, method=METHOD,
                             reason=failed.reason.split(":")[0])
        if not await mfa.count_failure(services, realm, pending):  # counted as a wrong code
            raise mfa.PendingExpired() from None
        # The second-factor page again, saying the passkey could not be used (engine.accounts.mfa_pages).
        return Answer.see_other(f"{realm_base(call, realm)}{mfa.SECOND_FACTOR_PATH}?error=passkey")
    await services.audit(realm.name, events.MFA_VERIFIED, user_id=pending.user_id, ip=call.ip, method=METHOD)
    return await mfa.finish_second_factor(services, realm, call, pending, method_amr=signed.method_amr)
