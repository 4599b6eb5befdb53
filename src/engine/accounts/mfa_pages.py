"""The second-factor pages of a sign-in (issue 20), between the first factor and the
session (engine.accounts.mfa keeps the pending state):

- `GET /mfa`: the second-factor page: a TOTP code, a recovery code, and (when the user has
  passkeys) the passkey block of engine.accounts.passkeys (`passkeys_second_factor.html`).
- `POST /mfa`: checks the code. Attempts are limited and locked like passwords
  (engine.accounts.lockout, counted per user and per address with the realm's `lockout:`
  policy), and one pending sign-in takes `mfa.MAX_ATTEMPTS` wrong codes, after which the
  first factor must be given again.
- `GET /mfa/enrol`, `POST /mfa/enrol`: enrolment in the flow, when the realm (`required`)
  or the client (`require_mfa`, `acr_values`) needs a factor the user has not got: a TOTP
  secret as a QR code and as text, confirmed by a first code; then the recovery codes,
  shown once (`POST /mfa/continue` goes on with the sign-in).

Every page works without JavaScript; the passkey blocks bring their own script."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import events
from engine.accounts import lockout, mfa, recovery_codes, totp
from engine.accounts.mfa import Pending, PendingExpired
from engine.errors import RateLimited
from engine.exchange import Answer, Call
from engine.oauth.flows import realm_base
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.store.batch import WriteBatch
from engine.templates import render

if TYPE_CHECKING:
    from engine.services import Services

WRONG_CODE = "That code is not correct. Check your authenticator app and try again."
WRONG_RECOVERY = "That recovery code is not correct or was used already."
TOO_MANY = "Too many wrong codes. Sign in again to start over."
LOCKED = "Too many wrong codes. For your security, second-factor sign-in is paused for about {minutes} minute{s}."
ENROL_SECRET_TTL = 600
# engine.accounts.passkeys sends the browser back with `?error=passkey` after a failed ceremony
PASSKEY_FAILED = "The passkey could not be used. Try again, or use another way."


async def _pending(services: Services, realm: Realm, call: Call) -> Pending:
    pending = await mfa.pending_of(services, realm, call)
    if pending is None:
        raise PendingExpired()
    return pending


def _account_key(user_id: str) -> str:
    """The lockout's counting key for a user's second factor (apart from its password's)."""
    return sha256_hex(f"mfa\0{user_id}")


async def _user_label(services: Services, realm: Realm, user_id: str) -> str:
    user = await services.durable.get_user(realm.name, user_id)
    return (user.email if user is not None and user.email else None) or user_id


def _page(call: Call, services: Services, realm: Realm, template: str, pending: Pending, *, status: int = 200,
          **context: Any) -> Answer:
    return render(realm, services, template, status=status, base=realm_base(call, realm), pending=pending,
                  **context)


async def second_factor_page(services: Services, realm: Realm, call: Call) -> Answer:
    pending = await _pending(services, realm, call)
    if pending.stage != "verify":
        return Answer.see_other(f"{realm_base(call, realm)}{mfa.ENROL_PATH}")
    error = PASSKEY_FAILED if call.query.get("error") == "passkey" else None
    return await _second_factor_form(call, services, realm, pending, error=error, method="passkey" if error else "totp")


async def _second_factor_form(call: Call, services: Services, realm: Realm, pending: Pending, *,
                              error: str | None = None, status: int = 200, method: str = "totp") -> Answer:
    factors = await mfa.factors_of(services, realm, pending.user_id, codes=True)
    return _page(call, services, realm, "mfa.html", pending, status=status, error=error, factors=factors,
                 method=method, step_up=pending.step_up)


async def second_factor(services: Services, realm: Realm, call: Call) -> Answer:
    """`POST /mfa`: a TOTP code (`method=totp`) or a recovery code (`method=recovery_code`)."""
    params = await form_params(call)
    pending = await _pending(services, realm, call)
    if not mfa.check_csrf(pending, params.get("csrf")) or pending.stage != "verify":
        raise PendingExpired()
    method = params.get("method", "totp")
    if method not in ("totp", "recovery_code"):
        method = "totp"
    code = params.get("code", "")[:64]
    ip = call.ip
    limit = realm.config.rate_limits.login_per_account
    wait = await hit(services, realm, "mfa_user", pending.user_id, limit)
    try:
        if wait is not None:
            # A locked user gets the lockout page even when the plain rate limit also refuses.
            await lockout.check(services, realm, email="", ip=ip, account=_account_key(pending.user_id))
            raise RateLimited(wait, "too many second-factor attempts; wait a moment and try again")
        attempt = await lockout.begin(services, realm, email="", ip=ip, account=_account_key(pending.user_id))
    except lockout.Locked as locked:
        await services.audit(realm.name, events.MFA_FAILED, user_id=pending.user_id, ip=ip, method=method,
                             reason="locked")
        minutes = max(1, -(-locked.retry_after // 60))
        answer = await _second_factor_form(call, services, realm, pending, status=429, method=method,
                                           error=LOCKED.format(minutes=minutes, s="s" if minutes != 1 else ""))
        return answer.with_headers({"Retry-After": str(locked.retry_after)})
    if method == "totp" and realm.config.mfa.totp != "off":
        ok = await totp.verify(services, realm, pending.user_id, code)
    elif method == "recovery_code":
        ok = await recovery_codes.use(services, realm, pending.user_id, code)
    else:
        ok = False
    if not ok:
        await services.audit(realm.name, events.MFA_FAILED, user_id=pending.user_id, ip=ip, method=method,
                             reason="code", attempt=attempt.account_attempts)
        await lockout.failed(services, realm, attempt, user_id=pending.user_id)
        if not await mfa.count_failure(services, realm, pending):
            return _page(call, services, realm, "message.html", pending, status=400, title="Sign in again",
                         message=TOO_MANY, alert=True)
        error = WRONG_CODE if method == "totp" else WRONG_RECOVERY
        return await _second_factor_form(call, services, realm, pending, error=error, status=400, method=method)
    writes = WriteBatch(services.ephemeral)
    lockout.succeeded(realm, attempt, writes)
    await writes.commit()
    await services.audit(realm.name, events.MFA_VERIFIED, user_id=pending.user_id, ip=ip, method=method)
    if method == "recovery_code":
        await _recovery_code_used(services, realm, pending.user_id, ip)
    return await mfa.finish_second_factor(services, realm, call, pending, method_amr=["otp"])


async def _recovery_code_used(services: Services, realm: Realm, user_id: str, ip: str) -> None:
    left = await services.durable.count_recovery_codes(realm.name, user_id)
    await services.audit(realm.name, events.RECOVERY_CODE_USED, user_id=user_id, ip=ip, left=left)
    user = await services.durable.get_user(realm.name, user_id)
    if user is not None and user.email:
        await services.mail.send(realm, user.email, "recovery_code_used", limited=False, ip=ip, left=left,
                                 at=services.clock.now().strftime("%Y-%m-%d %H:%M UTC"),
                                 security_link=f"{realm.issuer}/account/security")


# --------------------------------------------------------------------------- enrolment


def _enrol_key(pending: Pending) -> str:
    return f"{pending.key}:totp"


async def _enrol_secret(services: Services, realm: Realm, pending: Pending) -> str:
    """The TOTP secret this pending enrolment shows (made on first sight, kept encrypted
    beside the pending state until a first code confirms it)."""
    stored = await services.ephemeral.get(_enrol_key(pending))
    if stored is not None:
        return totp.unseal(services, realm, pending.user_id, bytes.fromhex(stored["sealed"]))
    secret = totp.new_secret()
    sealed = totp.seal(services, realm, pending.user_id, secret)
    await services.ephemeral.put(_enrol_key(pending), {"sealed": sealed.hex()}, ENROL_SECRET_TTL)
    return secret


async def enrol_page(services: Services, realm: Realm, call: Call) -> Answer:
    pending = await _pending(services, realm, call)
    if pending.stage == "verify":
        return Answer.see_other(f"{realm_base(call, realm)}{mfa.SECOND_FACTOR_PATH}")
    error = PASSKEY_FAILED if call.query.get("error") == "passkey" else None
    return await _enrol_form(call, services, realm, pending, error=error)


async def _enrol_form(call: Call, services: Services, realm: Realm, pending: Pending, *, error: str | None = None,
                      status: int = 200) -> Answer:
    context: dict[str, Any] = {}
    if realm.config.mfa.totp != "off":
        secret = await _enrol_secret(services, realm, pending)
        label = await _user_label(services, realm, pending.user_id)
        uri = totp.provisioning_uri(secret, label, realm.display_name or realm.name)
        context = {"totp_secret": secret, "totp_qr": totp.qr_svg(uri), "totp_uri": uri}
    return _page(call, services, realm, "mfa_enrol.html", pending, status=status, error=error, **context)


async def enrol(services: Services, realm: Realm, call: Call) -> Answer:
    """`POST /mfa/enrol`: the first code confirms the new TOTP secret; the recovery codes
    are shown next (once)."""
    params = await form_params(call)
    pending = await _pending(services, realm, call)
    if not mfa.check_csrf(pending, params.get("csrf")) or pending.stage != "enrol" \
            or realm.config.mfa.totp == "off":
        raise PendingExpired()
    # (no guessing here: the user is shown the secret; a pending state takes MAX_ATTEMPTS)
    secret = await _enrol_secret(services, realm, pending)
    if not await totp.enrol(services, realm, pending.user_id, secret, params.get("code", "")[:64]):
        if not await mfa.count_failure(services, realm, pending):
            return _page(call, services, realm, "message.html", pending, status=400, title="Sign in again",
                         message=TOO_MANY, alert=True)
        return await _enrol_form(call, services, realm, pending, status=400,
                                 error="That code is not correct. Scan the QR code again and enter the code shown.")
    await services.ephemeral.delete(_enrol_key(pending))
    await services.audit(realm.name, events.TOTP_ENROLLED, user_id=pending.user_id, ip=call.ip)
    codes = await _new_recovery_codes(services, realm, pending.user_id, call.ip)
    await mfa.set_stage(services, realm, pending, "enrolled")
    return _page(call, services, realm, "mfa_recovery_codes.html", pending, codes=codes,
                 action=f"{realm_base(call, realm)}/mfa/continue", csrf=pending.csrf)


async def _new_recovery_codes(services: Services, realm: Realm, user_id: str, ip: str) -> list[str]:
    if realm.config.mfa.recovery_codes <= 0:
        return []
    codes = await recovery_codes.regenerate(services, realm, user_id)
    await services.audit(realm.name, events.RECOVERY_CODES_GENERATED, user_id=user_id, ip=ip, count=len(codes))
    return codes


async def enrolled_continue(services: Services, realm: Realm, call: Call) -> Answer:
    """`POST /mfa/continue`: the recovery codes were shown; the sign-in goes on, with the
    factor just enrolled as its second factor."""
    params = await form_params(call)
    pending = await _pending(services, realm, call)
    if not mfa.check_csrf(pending, params.get("csrf")) or pending.stage != "enrolled":
        raise PendingExpired()
    return await mfa.finish_second_factor(services, realm, call, pending, method_amr=["otp"])
