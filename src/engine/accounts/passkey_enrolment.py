"""Passkeys on the account security pages (issue 20): list a user's passkeys (named, with
created and last-used dates), add one (the WebAuthn registration ceremony of
engine.accounts.passkeys), rename one, remove one.

Behind the browser's SSO session, signed in within the last 5 minutes as the account
security page requires (engine.accounts.security: without one, the browser is sent
there to sign in again); every form carries the account pages' CSRF token
(engine.accounts.csrf). The options are fetched by the realm's script
(`/static/passkeys.js`) as JSON; the answer of the authenticator is then posted in a plain
form, so the browser lands on a page whatever happens.

    GET  {issuer}/account/security/passkeys            the list and the forms
    POST {issuer}/account/security/passkeys/options    registration options (JSON)
    POST {issuer}/account/security/passkeys            the new passkey (ceremony, credential, name)
    POST {issuer}/account/security/passkeys/rename     credential_id, name
    POST {issuer}/account/security/passkeys/remove     credential_id
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine import events
from engine.accounts import csrf, mfa, passkeys, recovery_codes, security
from engine.accounts.pages import page
from engine.accounts.sessions import BrowserSession, current_session
from engine.errors import InvalidRequest, NotFound, OAuthError, RateLimited
from engine.exchange import Answer, Call
from engine.oauth.flows import realm_base
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.templates import render

if TYPE_CHECKING:
    from engine.services import Services
    from engine.store import User

log = logging.getLogger(__name__)

PATH = "/account/security/passkeys"
NOTICES = {"added": "Your passkey was added.", "renamed": "Your passkey was renamed.",
           "removed": "Your passkey was removed."}


class ReauthenticationRequired(OAuthError):
    error = "login_required"
    status = 403


async def _signed_in(services: Services, realm: Realm, call: Call) -> tuple[BrowserSession, User] | None:
    """The browser's session and its user, if signed in within the last 5 minutes (as the
    account security page requires: engine.accounts.security); None otherwise."""
    if not passkeys.enabled(realm):
        raise NotFound("passkeys are not offered in this realm")
    session = await current_session(call.cookies, services, realm)
    if session is None or services.clock.timestamp() - session.auth_time > security.REAUTHENTICATE_AFTER:
        return None
    user = await services.accounts.get(realm.name, session.user_id)
    return None if user is None or user.disabled else (session, user)


def _sign_in_again(call: Call, realm: Realm) -> Answer:
    """To the account security page, which signs the browser in again and comes back."""
    return Answer.see_other(f"{realm_base(call, realm)}{security.PATH}")


async def _form(services: Services, realm: Realm, call: Call) -> dict[str, str]:
    params = await form_params(call)
    csrf.check(call.cookies, realm, params)
    return params


async def _signed_in_post(services: Services, realm: Realm, call: Call
                          ) -> tuple[BrowserSession, User, dict[str, str]] | Answer:
    """A form posted by the signed-in user: the session, the user and the (CSRF-checked)
    form; or, past the 5 minutes, the answer that signs the browser in again (the form is
    read and checked either way)."""
    signed_in = await _signed_in(services, realm, call)
    params = await _form(services, realm, call)
    if signed_in is None:
        return _sign_in_again(call, realm)
    return (*signed_in, params)


async def section_context(services: Services, realm: Realm, call: Call, user_id: str) -> dict:
    """What `passkeys_manage.html` needs (for any page that includes it)."""
    return {"passkeys": await services.durable.list_passkeys(realm.name, user_id),
            "passkeys_path": f"{realm_base(call, realm)}{PATH}"}


async def _list_page(services: Services, realm: Realm, call: Call, session: BrowserSession, user: User, *,
                     error: str | None = None, status: int = 200) -> Answer:
    notice = NOTICES.get(call.query.get("done", ""))
    return page(call, services, realm, "account_passkeys.html", status=status, user=user, error=error,
                notice=notice,
                **await section_context(services, realm, call, user.id))


async def passkeys_page(services: Services, realm: Realm, call: Call) -> Answer:
    signed_in = await _signed_in(services, realm, call)
    if signed_in is None:
        return _sign_in_again(call, realm)
    return await _list_page(services, realm, call, *signed_in)


async def _options_answer(services: Services, realm: Realm, user: User, *, bound_to: str) -> Answer:
    """The creation options for `user`'s next passkey (their existing ones excluded),
    bound to `bound_to` (the session, or the pending sign-in); limited per account."""
    wait = await hit(services, realm, "passkey_options", user.id, realm.config.rate_limits.login_per_account)
    if wait is not None:
        raise RateLimited(wait, "too many passkey requests; wait a moment and try again")
    existing = await services.durable.list_passkeys(realm.name, user.id)
    return Answer.no_store_json(await passkeys.registration_options(services, realm, user, existing,
                                                                    bound_to=bound_to))


async def registration_options(services: Services, realm: Realm, call: Call) -> Answer:
    """JSON options for `navigator.credentials.create()` (WebAuthn §5.4)."""
    signed_in = await _signed_in(services, realm, call)
    await _form(services, realm, call)
    if signed_in is None:
        raise ReauthenticationRequired("your sign-in is more than 5 minutes old: reload the page and sign in again")
    session, user = signed_in
    return await _options_answer(services, realm, user, bound_to=session.key)


async def add_passkey(services: Services, realm: Realm, call: Call) -> Answer:
    posted = await _signed_in_post(services, realm, call)
    if isinstance(posted, Answer):
        return posted
    session, user, params = posted
    try:
        added, _ = await passkeys.register(services, realm, user.id, params.get("ceremony", ""),
                                           params.get("credential", ""), params.get("name", ""),
                                           bound_to=session.key)
    except passkeys.PasskeyFailed as failed:
        log.info("passkey registration refused: %s", failed.reason)
        await services.audit(realm.name, "passkey_failed", user_id=user.id, ip=call.ip, stage="registration",
                             reason=failed.reason.split(":")[0])
        return await _list_page(services, realm, call, session, user, error=failed.description, status=400)
    await services.audit(realm.name, "passkey_added", user_id=user.id, ip=call.ip, name=added.name,
                         aaguid=added.aaguid)
    codes = await security.codes_for_a_first_factor(call, services, realm, session, notice=NOTICES["added"])
    return codes or Answer.see_other(f"{realm_base(call, realm)}{PATH}?done=added")


async def rename_passkey(services: Services, realm: Realm, call: Call) -> Answer:
    posted = await _signed_in_post(services, realm, call)
    if isinstance(posted, Answer):
        return posted
    session, user, params = posted
    name = passkeys.clean_name(params.get("name", ""))
    if not name:
        return await _list_page(services, realm, call, session, user, error="Give the passkey a name.", status=400)
    if not await services.durable.rename_passkey(realm.name, user.id, params.get("credential_id", ""),
                                                             name):
        raise InvalidRequest("no such passkey")
    await services.audit(realm.name, "passkey_renamed", user_id=user.id, ip=call.ip, name=name)
    return Answer.see_other(f"{realm_base(call, realm)}{PATH}?done=renamed")


async def remove_passkey(services: Services, realm: Realm, call: Call) -> Answer:
    posted = await _signed_in_post(services, realm, call)
    if isinstance(posted, Answer):
        return posted
    session, user, params = posted
    credential_id = params.get("credential_id", "")
    refusal = await last_factor_refusal(services, realm, user.id, credential_id)
    if refusal:
        return await _list_page(services, realm, call, session, user, error=refusal, status=409)
    if not await services.durable.delete_passkey(realm.name, user.id, credential_id):
        raise InvalidRequest("no such passkey")
    # As for the authenticator app (engine.accounts.security): remembered browsers give the
    # second factor again, and recovery codes go with the last factor.
    await mfa.forget_devices(services, realm, user.id)
    if not (await mfa.factors_of(services, realm, user.id)).any:
        await services.durable.delete_recovery_codes(realm.name, user.id)
    await services.audit(realm.name, "passkey_removed", user_id=user.id, ip=call.ip)
    return Answer.see_other(f"{realm_base(call, realm)}{PATH}?done=removed")


async def last_factor_refusal(services: Services, realm: Realm, user_id: str, credential_id: str) -> str | None:
    """Why this passkey may not be removed (None: it may): in a realm that requires a
    second factor, the user's last one stays (engine.accounts.security.may_remove)."""
    if await security.may_remove(services, realm, user_id, passkeys=1):
        return None
    return ("This realm requires a second factor: add another passkey or an authenticator app before removing"
            " your last one.")



# enrolment inside an authorization flow (engine.accounts.mfa, stage "enrol": the realm or
# the client requires a second factor the user has not got yet)


async def _enrolling(services: Services, realm: Realm, call: Call):
    if not passkeys.enabled(realm):
        raise NotFound("passkeys are not offered in this realm")
    params = await form_params(call)
    pending = await mfa.pending_of(services, realm, call)
    if pending is None or pending.stage != "enrol":
        raise mfa.PendingExpired()
    if not mfa.check_csrf(pending, params.get("csrf")):
        raise InvalidRequest("the form was not submitted from this sign-in page; start again")
    user = await services.accounts.get(realm.name, pending.user_id)
    if user is None or user.disabled:
        raise mfa.PendingExpired()
    return pending, params, user


async def flow_registration_options(services: Services, realm: Realm, call: Call) -> Answer:
    pending, _, user = await _enrolling(services, realm, call)
    return await _options_answer(services, realm, user, bound_to=pending.key)


async def flow_enrol(services: Services, realm: Realm, call: Call) -> Answer:
    """The new passkey is the second factor of this sign-in. The recovery codes are shown
    next, once (as after an authenticator app: engine.accounts.mfa_pages); continuing from
    there starts the session (amr: the first factor's, the passkey's, `mfa`) and the
    authorization goes on."""
    pending, params, user = await _enrolling(services, realm, call)
    try:
        added, method_amr = await passkeys.register(services, realm, user.id, params.get("ceremony", ""),
                                                    params.get("credential", ""), params.get("name", ""),
                                                    bound_to=pending.key)
    except passkeys.PasskeyFailed as failed:
        log.info("passkey registration refused: %s", failed.reason)
        await services.audit(realm.name, "passkey_failed", user_id=user.id, ip=call.ip, stage="enrolment",
                             reason=failed.reason.split(":")[0])
        return Answer.see_other(f"{realm_base(call, realm)}{mfa.ENROL_PATH}?error=passkey")
    await services.audit(realm.name, "passkey_added", user_id=user.id, ip=call.ip, name=added.name,
                         aaguid=added.aaguid)
    if realm.config.mfa.recovery_codes <= 0:
        return await mfa.finish_second_factor(services, realm, call, pending, method_amr=method_amr)
    codes = await recovery_codes.regenerate(services, realm, user.id)
    await services.audit(realm.name, events.RECOVERY_CODES_GENERATED, user_id=user.id, ip=call.ip, count=len(codes))
    ttl = max(1, pending.data["exp"] - services.clock.timestamp())
    await services.ephemeral.put(_enrolled_key(pending), {"method_amr": method_amr}, ttl)
    await mfa.set_stage(services, realm, pending, ENROLLED)
    return render(realm, services, "mfa_recovery_codes.html", base=realm_base(call, realm), pending=pending,
                  codes=codes, action=f"{realm_base(call, realm)}/passkeys/enrol/continue", csrf=pending.csrf)


ENROLLED = "passkey-enrolled"  # the pending sign-in's stage once its passkey is added


def _enrolled_key(pending: mfa.Pending) -> str:
    return f"{pending.key}:passkey"


async def flow_enrolled_continue(services: Services, realm: Realm, call: Call) -> Answer:
    """`POST {issuer}/passkeys/enrol/continue`: the recovery codes were shown; the sign-in
    goes on with the passkey just added as its second factor."""
    params = await form_params(call)
    pending = await mfa.pending_of(services, realm, call)
    if pending is None or pending.stage != ENROLLED or not mfa.check_csrf(pending, params.get("csrf")):
        raise mfa.PendingExpired()
    enrolled = await services.ephemeral.take(_enrolled_key(pending))
    if enrolled is None:
        raise mfa.PendingExpired()
    return await mfa.finish_second_factor(services, realm, call, pending, method_amr=enrolled["method_amr"])
