"""The verification pages of the device grant (RFC 8628 §3.3): `{issuer}/device` takes the
user code (prefilled from `verification_uri_complete`), the realm's normal sign-in runs
as a pending flow (engine.oauth.authorize.continue_flow; an SSO session is honoured), and
`{issuer}/device/confirm` names the client and the scopes with Approve and Deny (the
flow's CSRF token, like the consent page). The protocol side is engine.oauth.device.

Entered codes are counted per address (right or wrong) and wrong ones per realm
(§5.1: a short user code must not be guessable within its lifetime)."""

from __future__ import annotations

from aiohttp import web

from engine.accounts.sessions import current_session
from engine.errors import LoginRequired, RateLimited
from engine.oauth import device
from engine.oauth.authorize import continue_flow
from engine.oauth.flows import finish_flow, load_flow, realm_base
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.web.adapter import call_of, request_ip, response
from engine.web.appkeys import SERVICES
from engine.web.templates import render

WRONG_CODE = "That code is not valid. Check the code shown on your device and try again."
TOO_MANY = "too many codes were tried from here; wait a while and try again"


def _entry_page(request: web.Request, realm: Realm, user_code: str, *, error: str | None = None,
                status: int = 200) -> web.Response:
    return render(request, realm, request.app[SERVICES], "device.html", status=status, error=error,
                  user_code=user_code[:32], base=realm_base(call_of(request), realm))


async def device_page(request: web.Request, realm: Realm) -> web.Response:
    """GET /device[?user_code=…]."""
    return _entry_page(request, realm, request.query.get("user_code", ""))


async def device_entry(request: web.Request, realm: Realm) -> web.StreamResponse:
    """POST /device: a user code; on to sign-in (or straight to the confirmation)."""
    services = request.app[SERVICES]
    call = call_of(request)
    limits = realm.config.rate_limits
    wait = await hit(services, realm, "device_user_ip", call.ip, limits.device_user_code_per_ip)
    if wait is not None:
        raise RateLimited(wait, TOO_MANY)
    params = await form_params(call)
    typed = params.get("user_code", "")
    code = device.normalise_user_code(typed)
    found = await device.find_by_user_code(services, realm, code) if code else None
    client = realm.client(found[1]["client_id"]) if found else None
    if found is None or client is None or device.GRANT_TYPE not in client.grant_types:
        wait = await hit(services, realm, "device_user_realm", "all", limits.device_user_code_per_realm)
        if wait is not None:
            raise RateLimited(wait, TOO_MANY)
        return _entry_page(request, realm, typed, error=WRONG_CODE, status=400)
    device_hash, record = found
    authz = {
        "client_id": client.client_id, "redirect_uri": None, "redirect_uri_sent": False, "state": None,
        "scope": record["scope"], "nonce": None, "code_challenge": None, "prompt": [], "max_age": None,
        "login_hint": None, "resource": record.get("resource"), "device": device_hash,
    }
    session = await current_session(request.cookies, services, realm)
    return response(await continue_flow(call, services, realm, authz, session, flow=None))


async def _signed_in(request: web.Request, realm: Realm):
    services = request.app[SERVICES]
    session = await current_session(request.cookies, services, realm)
    user = await services.durable.get_user(realm.name, session.user_id) if session else None
    if session is None or user is None or user.disabled:
        raise LoginRequired("your session has ended; start again by entering the code from your device")
    return session, user


def _gone(request: web.Request, realm: Realm) -> web.Response:
    return render(request, realm, request.app[SERVICES], "message.html", status=400, alert=True,
                  title="This code has expired",
                  message="The request from your device has expired or was already answered."
                          " Start again on your device.")


async def confirm_page(request: web.Request, realm: Realm) -> web.Response:
    """GET /device/confirm?flow=…: the client, the scopes and the user code, Approve/Deny."""
    services = request.app[SERVICES]
    flow = await load_flow(request.cookies, services, realm, request.query.get("flow"))
    if not flow.data.get("device"):
        raise LoginRequired("this page belongs to a device sign-in; start again from your device")
    _session, user = await _signed_in(request, realm)
    record = await services.ephemeral.get(device.device_key(realm.name, flow.data["device"]))
    client = realm.client(flow.data["client_id"])
    if record is None or record["status"] != "pending" or record["exp"] <= services.clock.timestamp() \
            or client is None:
        return _gone(request, realm)
    descriptions = realm.config.all_scopes()
    scopes = [(s, descriptions.get(s, s)) for s in flow.data["scope"].split()]
    return render(request, realm, services, "device_confirm.html", flow=flow, scopes=scopes,
                  client_name=client.name or client.client_id, user_email=user.email or "",
                  user_code=device.display_user_code(record["user_code"]), base=realm_base(call_of(request), realm))


async def confirm_decision(request: web.Request, realm: Realm) -> web.Response:
    """POST /device/confirm: Approve or Deny (CSRF-checked); the device learns it by polling."""
    services = request.app[SERVICES]
    params = await form_params(call_of(request))
    flow = await load_flow(request.cookies, services, realm, params.get("flow"),
                           csrf=params.get("csrf"), check_csrf=True)
    if not flow.data.get("device"):
        raise LoginRequired("this page belongs to a device sign-in; start again from your device")
    session, user = await _signed_in(request, realm)
    approved = params.get("decision") == "approve"
    decided = await device.decide(services, realm, flow.data["device"], approved=approved, user_id=user.id,
                                  auth_time=session.auth_time, session_id=session.sid, amr=session.amr)
    await finish_flow(services, realm, flow)
    if not decided:
        return _gone(request, realm)
    await services.audit(realm.name, "device_approved" if approved else "device_denied", user_id=user.id,
                         client_id=flow.data["client_id"], ip=request_ip(request, services),
                         session_id=session.sid)
    if approved:
        title, message = "Device connected", "You can return to your device now; it will be signed in shortly."
    else:
        title, message = "Request denied", "The device was not given access. You can close this window."
    return render(request, realm, services, "message.html", title=title, message=message)
