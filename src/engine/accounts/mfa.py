"""Strong sign-in (issue 20): the step between a first factor and a session.

Every first factor ends here (`finish_first_factor`: a password, an upstream, a passkey).
It either starts the browser session and continues the authorization, or keeps a short
"pending second factor" state and sends the browser to the second-factor page (or, when
the realm or the client requires a factor the user has not got, to the enrolment page).
The pending state lives in the ephemeral store under the SHA-256 of a random secret held
in a cookie of this browser (`tessera_mfa_<realm>`), for `lifetimes.pending_flow`; its
page forms carry its own CSRF token. `finish_second_factor` (TOTP and recovery codes here,
passkeys in engine.accounts.passkeys) takes it (single use) and starts the session.

Authentication methods (RFC 8176) and context class:

- the session's `amr` lists what was proven: `pwd`, `fed`, `otp`, `hwk`/`swk`, `user`/`pin`,
  plus `mfa` once two independent factors were (a passkey with user verification is `mfa`
  on its own). Remembering a device (`mfa.remember_device`) counts as the second factor:
  `mfa` without a method.
- `acr` is `aal2` (NIST SP 800-63B authenticator assurance level 2: two factors) when `mfa`
  is in `amr`, else `aal1`. A client asks for `aal2` with `acr_values` or an essential
  `acr` in `claims` (OIDC Core §3.1.2.1, §5.5.1.1); `require_mfa: true` clients always get
  it. A request for it inside a single-factor session is a step-up: the second factor is
  asked, and the new session replaces the old one.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine import errors, events
from engine.accounts.sessions import current_session, secure_cookies, start_session
from engine.exchange import Answer, Call, CookieJar
from engine.oauth.flows import Flow, flow_lifetime, load_flow, note_login, realm_base
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.batch import WriteBatch

if TYPE_CHECKING:
    from engine.services import Services
    from engine.store import User

MFA = "mfa"
ACR_SINGLE = "aal1"  # one factor (NIST SP 800-63B AAL1)
ACR_MFA = "aal2"  # two factors (AAL2)
ACR_VALUES = (ACR_SINGLE, ACR_MFA)
UNMET = "unmet_authentication_requirements"  # OIDC Core §3.1.2.6 (errata set 2)
SECOND_FACTOR_PATH = "/mfa"
ENROL_PATH = "/mfa/enrol"
MAX_ATTEMPTS = 5  # wrong codes one pending state takes before the first factor is asked again


@dataclass(frozen=True)
class Pending:
    """A browser between its first and its second factor."""

    key: str  # the store key (the SHA-256 of the cookie's secret)
    user_id: str
    amr: list[str]  # what the first factor proved
    provider: str
    flow_id: str
    csrf: str
    stage: str  # "verify" (has a factor: asked for it) or "enrol" (must enrol one first)
    step_up: bool  # a session already existed (acr_values / require_mfa inside it)
    attempts: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Factors:
    """What second factors a user has."""

    totp: bool
    passkeys: int
    recovery_codes: int

    @property
    def any(self) -> bool:
        return self.totp or self.passkeys > 0


def pending_cookie(realm: Realm) -> str:
    return f"tessera_mfa_{realm.name}"


def remember_cookie(realm: Realm) -> str:
    return f"tessera_mfa_device_{realm.name}"


def _pending_key(realm: Realm, secret: str) -> str:
    return f"{realm.name}:mfa-pending:{sha256_hex(secret)}"


def _remember_key(realm: Realm, secret: str) -> str:
    return f"{realm.name}:mfa-device:{sha256_hex(secret)}"


def is_multi_factor(amr: list[str] | tuple[str, ...]) -> bool:
    return MFA in amr


def acr_of(amr: list[str] | tuple[str, ...]) -> str:
    return ACR_MFA if is_multi_factor(amr) else ACR_SINGLE


def with_methods(first: list[str], method: list[str]) -> list[str]:
    """`first` + `method` + `mfa`, each once, in that order."""
    combined: list[str] = []
    for value in [*first, *method, MFA]:
        if value not in combined:
            combined.append(value)
    return combined


class Unmet(ValueError):
    """An essential `acr` was asked for with values none of which this IdP knows (OIDC Core
    §5.5.1.1: the requirement cannot be met)."""


def acr_request(acr_values: str | None, claims: str | None) -> bool:
    """Whether an authorization request asks for the MFA level: `acr_values` (OIDC Core
    §3.1.2.1) names it, or `claims` (§5.5) asks for `acr` in the ID token with it among its
    `value`/`values`. ValueError: `claims` is not a JSON object; Unmet: it asks for an
    essential `acr` of levels this IdP does not have."""
    wanted = set((acr_values or "").split())
    if claims:
        try:
            document = json.loads(claims)
        except ValueError:
            raise ValueError("claims is not valid JSON") from None
        if not isinstance(document, dict):
            raise ValueError("claims must be a JSON object")
        for member in ("id_token", "userinfo"):
            section = document.get(member)
            request = section.get("acr") if isinstance(section, dict) else None
            if isinstance(request, dict):
                asked = {request["value"]} if isinstance(request.get("value"), str) else set()
                if isinstance(request.get("values"), list):
                    asked.update(v for v in request["values"] if isinstance(v, str))
                if request.get("essential") is True and asked and not asked & set(ACR_VALUES):
                    raise Unmet("none of the essential acr values asked for can be met")
                wanted |= asked
    # The levels are ordered: asking for the higher one (alone or among others it accepts
    # less than) is met only by two factors when the lower one is not also accepted.
    return ACR_MFA in wanted and ACR_SINGLE not in wanted


def mfa_demanded(realm: Realm, authz: dict[str, Any]) -> bool:
    """The client needs the MFA level for this request: it asked for it (acr_values,
    claims) or it is configured `require_mfa`."""
    client = realm.client(authz.get("client_id"))
    return bool(authz.get("acr_mfa")) or bool(client is not None and client.require_mfa)


async def passkey_count(services: Services, realm: Realm, user_id: str) -> int:
    """How many passkeys the user has."""
    return len(await services.durable.list_passkeys(realm.name, user_id))


async def factors_of(services: Services, realm: Realm, user_id: str, *, codes: bool = False) -> Factors:
    """The second factors the user can use in this realm (a factor whose policy is `off`
    is neither read nor counted); `codes`: count the recovery codes left too."""
    policy = realm.config.mfa
    totp = policy.totp != "off" and await services.durable.get_totp(realm.name, user_id) is not None
    passkeys = await passkey_count(services, realm, user_id) if policy.passkeys != "off" else 0
    left = await services.durable.count_recovery_codes(realm.name, user_id) if codes else 0
    return Factors(totp=totp, passkeys=passkeys, recovery_codes=left)


def _forgotten_key(realm: Realm, user_id: str) -> str:
    return f"{realm.name}:mfa-device-since:{user_id}"


async def _remembered(services: Services, realm: Realm, call: Call, user_id: str) -> bool:
    """This browser gave the user's second factor within `mfa.remember_device`, after the
    user's remembered browsers were last forgotten (`forget_devices`)."""
    if realm.config.mfa.remember_device.total_seconds() <= 0:
        return False
    secret = call.cookies.get(remember_cookie(realm))
    if not secret or len(secret) > 100:
        return False
    record, forgotten = await services.ephemeral.get_many([_remember_key(realm, secret),
                                                           _forgotten_key(realm, user_id)])
    return (record is not None and record.get("user_id") == user_id and record["exp"] > services.clock.timestamp()
            and (forgotten is None or record.get("at", 0) > forgotten["at"]))


def _remember(services: Services, realm: Realm, user_id: str, cookies: CookieJar, writes: WriteBatch) -> None:
    lifetime = int(realm.config.mfa.remember_device.total_seconds())
    if lifetime <= 0:
        return
    secret = random_token(32)
    writes.put(_remember_key(realm, secret), {"user_id": user_id, "exp": services.clock.timestamp() + lifetime,
                                              "at": services.clock.now().timestamp()}, lifetime)
    cookies.set_cookie(remember_cookie(realm), secret, path="/", max_age=lifetime, httponly=True, samesite="Lax",
                       secure=secure_cookies(services))


async def forget_devices(services: Services, realm: Realm, user_id: str) -> None:
    """Every browser remembered for the user so far is asked the second factor again (its
    factors were reset or removed, its password was reset). One write, seen by every
    instance; it lives as long as a remembered browser can."""
    lifetime = int(realm.config.mfa.remember_device.total_seconds())
    if lifetime > 0:
        await services.ephemeral.put(_forgotten_key(realm, user_id), {"at": services.clock.now().timestamp()},
                                     lifetime + 86400)  # a day of slack for a lifetime changed by reload


async def next_step(services: Services, realm: Realm, call: Call, authz: dict[str, Any], user_id: str,
                    amr: list[str]) -> tuple[str, list[str]]:
    """What a sign-in with `amr` still needs: ("none", amr to record), ("verify", ...),
    ("enrol", ...) or ("unmet", ...) (the client needs a second factor nobody can give)."""
    if is_multi_factor(amr):
        return "none", amr
    policy = realm.config.mfa
    demanded = mfa_demanded(realm, authz)
    if not (demanded or policy.available):
        return "none", amr  # strong sign-in is off in this realm: nothing to read
    factors = await factors_of(services, realm, user_id)
    if not (demanded or policy.required or factors.any):
        return "none", amr
    if await _remembered(services, realm, call, user_id):
        return "none", with_methods(amr, [])
    if factors.any:
        return "verify", amr
    if policy.available:
        return "enrol", amr
    return "unmet", amr


async def finish_first_factor(services: Services, realm: Realm, call: Call, flow: Flow, user_id: str, *,
                              amr: list[str], provider: str, writes: WriteBatch | None = None,
                              cookies: CookieJar | None = None, user: User | None = None) -> Answer:
    """The first factor is proven: start the session and continue the authorization, or
    keep a pending second factor and send the browser to its page. `writes`/`cookies`:
    what the caller gathered already (stored and set with the answer); `user`: the user
    as the caller has just read it."""
    writes = writes if writes is not None else WriteBatch(services.ephemeral)
    cookies = cookies if cookies is not None else CookieJar()
    step, amr = await next_step(services, realm, call, flow.data, user_id, amr)
    if step == "none":
        return await _start_and_continue(services, realm, call, flow, user_id, amr=amr, provider=provider,
                                         writes=writes, cookies=cookies, user=user)
    if step == "unmet":
        await writes.commit()
        return (await unmet(services, realm, flow)).with_cookies(cookies)
    return await _go_pending(services, realm, call, flow, user_id, amr=amr, provider=provider, stage=step,
                             step_up=False, writes=writes, cookies=cookies)


async def unmet(services: Services, realm: Realm, flow: Flow | None, authz: dict[str, Any] | None = None) -> Answer:
    """`unmet_authentication_requirements` back to the client; the flow is over."""
    from engine.oauth.authorize import ClientError, Redirect  # imports this module
    from engine.oauth.flows import finish_flow

    authz = flow.data if flow is not None else authz
    client = realm.clients[authz["client_id"]]
    if flow is not None:
        await finish_flow(services, realm, flow)
    redirect = Redirect(client, authz["redirect_uri"], authz["state"], realm.issuer)
    return redirect.error(ClientError(UNMET, "a second factor is required and none can be used"))


async def _start_and_continue(services: Services, realm: Realm, call: Call, flow: Flow, user_id: str, *,
                              amr: list[str], provider: str, writes: WriteBatch, cookies: CookieJar,
                              user: User | None) -> Answer:
    from engine.oauth.authorize import continue_flow  # imports this module

    previous = await current_session(call.cookies, services, realm)
    session = await start_session(cookies, services, realm, user_id=user_id, amr=amr, provider=provider,
                                  previous=previous, writes=writes)
    note_login(flow, session.auth_time)
    return await continue_flow(call, services, realm, flow.data, session, flow=flow, cookies=cookies,
                               writes=writes, user=user)


async def _go_pending(services: Services, realm: Realm, call: Call, flow: Flow, user_id: str, *, amr: list[str],
                      provider: str, stage: str, step_up: bool, writes: WriteBatch, cookies: CookieJar) -> Answer:
    secret = random_token(32)
    lifetime = flow_lifetime(realm)
    data = {"user_id": user_id, "amr": amr, "provider": provider, "flow": flow.id, "csrf": random_token(24),
            "stage": stage, "step_up": step_up, "attempts": 0, "exp": services.clock.timestamp() + lifetime}
    writes.put(_pending_key(realm, secret), data, lifetime)
    if flow.unsaved:  # a login noted in the flow: kept for the page after
        from engine.oauth.flows import save_flow
        await save_flow(services, realm, flow)
    await writes.commit()
    cookies.set_cookie(pending_cookie(realm), secret, path="/", httponly=True, samesite="Lax",
                       secure=secure_cookies(services))
    path = SECOND_FACTOR_PATH if stage == "verify" else ENROL_PATH
    return Answer.see_other(f"{realm_base(call, realm)}{path}", cookies)


async def step_up(services: Services, realm: Realm, call: Call, authz: dict[str, Any], flow: Flow | None,
                  session: Any, cookies: CookieJar | None) -> Answer:
    """Inside a single-factor session, the client needs the MFA level: the second factor
    is asked (or enrolled, or the request is refused as unmet)."""
    from engine.oauth.flows import start_flow

    jar = CookieJar(tuple(cookies or ()))
    step, amr = await next_step(services, realm, call, {**authz, "acr_mfa": True}, session.user_id, session.amr)
    if step == "unmet":
        return (await unmet(services, realm, flow, authz)).with_cookies(jar)
    if flow is None:
        flow = await start_flow(jar, call.cookies, services, realm, authz)
    writes = WriteBatch(services.ephemeral)
    if step == "none":  # a remembered device: the session is upgraded without a question
        return await _start_and_continue(services, realm, call, flow, session.user_id, amr=amr,
                                         provider=session.provider, writes=writes, cookies=jar, user=None)
    return await _go_pending(services, realm, call, flow, session.user_id, amr=session.amr,
                             provider=session.provider, stage=step, step_up=True, writes=writes, cookies=jar)


async def pending_of(services: Services, realm: Realm, call: Call) -> Pending | None:
    """The pending second factor of this browser (None: none, or past its end)."""
    secret = call.cookies.get(pending_cookie(realm))
    if not secret or len(secret) > 100:
        return None
    key = _pending_key(realm, secret)
    data = await services.ephemeral.get(key)
    if data is None or data["exp"] <= services.clock.timestamp():
        return None
    return Pending(key=key, user_id=data["user_id"], amr=list(data["amr"]), provider=data["provider"],
                   flow_id=data["flow"], csrf=data["csrf"], stage=data["stage"], step_up=data.get("step_up", False),
                   attempts=data.get("attempts", 0), data=data)


def check_csrf(pending: Pending, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(sent, pending.csrf)


async def count_failure(services: Services, realm: Realm, pending: Pending) -> bool:
    """One more wrong code for this pending state; False when it has had too many (it is
    then ended: the first factor must be given again)."""
    attempts = pending.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        await services.ephemeral.delete(pending.key)
        return False
    ttl = max(1, pending.data["exp"] - services.clock.timestamp())
    await services.ephemeral.put(pending.key, {**pending.data, "attempts": attempts}, ttl)
    return True


async def set_stage(services: Services, realm: Realm, pending: Pending, stage: str) -> None:
    ttl = max(1, pending.data["exp"] - services.clock.timestamp())
    await services.ephemeral.put(pending.key, {**pending.data, "stage": stage}, ttl)


async def finish_second_factor(services: Services, realm: Realm, call: Call, pending: Pending, *,
                               method_amr: list[str]) -> Answer:
    """The second factor is proven (`method_amr`: e.g. ["otp"], ["hwk", "user"]): the
    session starts with amr = first + method + "mfa" and the MFA acr, and the
    authorization continues. The pending state is used up (of two concurrent calls, one
    proceeds; the other gets the "start again" page)."""
    data = await services.ephemeral.take(pending.key)
    if data is None or data["exp"] <= services.clock.timestamp():
        raise PendingExpired()
    flow = await load_flow(call.cookies, services, realm, pending.flow_id)
    writes = WriteBatch(services.ephemeral)
    cookies = CookieJar()
    cookies.del_cookie(pending_cookie(realm))
    _remember(services, realm, pending.user_id, cookies, writes)
    return await _start_and_continue(services, realm, call, flow, pending.user_id,
                                     amr=with_methods(pending.amr, method_amr), provider=pending.provider,
                                     writes=writes, cookies=cookies, user=None)


class PendingExpired(errors.OAuthError):
    """No pending second factor in this browser (expired, used, or never started)."""

    error = errors.INVALID_REQUEST
    status = 400

    def __init__(self) -> None:
        super().__init__("this sign-in has expired or was finished already; start again from the application")


async def describe_factors(services: Services, realm: Realm, user_id: str) -> dict[str, Any]:
    """What an operator sees of a user's second factors (`idp users show`), whatever the
    realm's policy says now."""
    totp = await services.durable.get_totp(realm.name, user_id)
    return {"totp": totp is not None,
            "totp_enrolled_at": totp.created_at.isoformat() if totp is not None else None,
            "recovery_codes_left": await services.durable.count_recovery_codes(realm.name, user_id),
            "passkeys": await passkey_count(services, realm, user_id)}


async def reset(services: Services, realm: Realm, user_id: str) -> dict[str, Any]:
    """Remove every second factor of the user (`idp users reset-mfa`: a user who lost them
    all): TOTP, recovery codes, passkeys. In a `required` realm the user enrols again at the
    next sign-in."""
    removed = await remove_factors(services, realm, user_id)
    await services.audit(realm.name, events.MFA_RESET, user_id=user_id, via="admin", **removed)
    return removed


async def remove_factors(services: Services, realm: Realm, user_id: str) -> dict[str, Any]:
    """Delete the user's TOTP, recovery codes and passkeys and forget the browsers remembered
    for them; what was removed, by kind (the caller audits it)."""
    durable = services.durable
    removed = {"totp": await durable.delete_totp(realm.name, user_id),
               "recovery_codes": await durable.delete_recovery_codes(realm.name, user_id),
               "passkeys": await durable.delete_passkeys(realm.name, user_id)}
    await forget_devices(services, realm, user_id)
    return removed
