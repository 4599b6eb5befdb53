"""The authorization endpoint: RFC 6749 §4.1.1–4.1.2, OIDC Core §3.1.2, PKCE (RFC 7636),
the `iss` response parameter (RFC 9207).

Order matters (§4.1.2.1): until `client_id` and `redirect_uri` are known good, every
error is an HTML page and never a redirect; after that, errors go back to the client
with `state` and `iss`. What the user must still do (log in, consent) is kept
server-side as a flow (engine.oauth.flows); `continue_flow` is where every path ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode, urlsplit, urlunsplit

from engine import errors
from engine.accounts import mfa
from engine.accounts.sessions import BrowserSession, current_session
from engine.config import Client
from engine.errors import InvalidRequest, OAuthError, description_text
from engine.exchange import Answer, Call, CookieJar
from engine.oauth import pkce
from engine.oauth.codes import issue_code
from engine.oauth.flows import Flow, finish_flow, load_flow, realm_base, save_flow, start_flow
from engine.oauth.grants.common import parse_scope
from engine.oauth.params import form_params
from engine.oauth.ratelimit import enforce
from engine.realm import Realm
from engine.store import User
from engine.store.batch import WriteBatch

if TYPE_CHECKING:
    from engine.services import Services

PROMPTS = {"none", "login", "consent", "select_account"}

# Bounds of an authorization request (issue 23 item 9): generous for real clients, small
# enough that nothing stored with a pending flow or echoed in a redirect can grow without
# limit. Lengths in characters; `state` in bytes as it travels back (URL-encoded), so the
# error redirect that echoes it stays well under the 8 KiB a proxy accepts in a header.
MAX_REQUEST = 8192  # all names and values of one authorization request together
MAX_CLIENT_ID = 255
MAX_REDIRECT_URI = 2048
MAX_STATE = 2048  # URL-encoded
MAX_SCOPES = 64
LIMITS = {
    "scope": 2048,
    "nonce": 512,
    "login_hint": 255,
    "ui_locales": 255,
    "acr_values": 512,
    "claims": 4096,
    "claims_locales": 255,
    "id_token_hint": 4096,
    "prompt": 64,
    "display": 16,
    "response_type": 64,
    "response_mode": 32,
    "code_challenge": 128,
    "code_challenge_method": 16,
    "max_age": 16,
    "resource": 2048,
}


class ClientError(OAuthError):
    """An error to redirect back to the client with (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error


@dataclass(frozen=True)
class Redirect:
    client: Client
    redirect_uri: str | None  # None: a device flow
    state: str | None
    issuer: str

    def to(self, **params: str | None) -> Answer:
        """303 to the client's redirect URI with `params`, `state` and `iss` added."""
        params = {**params, "state": self.state, "iss": self.issuer}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        parts = urlsplit(self.redirect_uri)
        joined = f"{parts.query}&{query}" if parts.query else query
        return Answer.see_other(urlunsplit((parts.scheme, parts.netloc, parts.path, joined, "")))

    def error(self, exc: OAuthError) -> Answer:
        if self.redirect_uri is None:
            # A device flow (RFC 8628 §3.3) has no redirect URI: the browser gets the error page.
            raise exc
        description = description_text(exc.description) if exc.description else None  # RFC 6749 §4.1.2.1
        return self.to(error=exc.error, error_description=description)


def check_client_and_redirect(realm: Realm, params: dict[str, str]) -> Redirect:
    """§4.1.2.1: the two checks whose failure must never redirect."""
    if sum(len(name) + len(value) for name, value in params.items()) > MAX_REQUEST:
        raise InvalidRequest(f"the authorization request is too long (at most {MAX_REQUEST} characters)")
    client_id = params.get("client_id")
    if client_id is not None and len(client_id) > MAX_CLIENT_ID:
        raise InvalidRequest("unknown client_id: the application that sent you here is not registered")
    client = realm.client(client_id)
    if client is None:
        raise InvalidRequest("unknown client_id: the application that sent you here is not registered")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is not None and len(redirect_uri) > MAX_REDIRECT_URI:
        raise InvalidRequest("redirect_uri is not registered for this client")
    if redirect_uri is None:
        # §3.1.2.3: optional only when exactly one is registered; OIDC always requires it.
        if len(client.redirect_uris) != 1 or "openid" in parse_scope(params.get("scope")):
            raise InvalidRequest("redirect_uri is required")
        redirect_uri = client.redirect_uris[0]
    elif redirect_uri not in client.redirect_uris:  # exact string match, no normalisation
        raise InvalidRequest("redirect_uri is not registered for this client")
    state = params.get("state")
    if state is not None and not state_fits(state):
        state = None  # not echoed: validate_request refuses the request (redirected without it)
    return Redirect(client, redirect_uri, state, realm.issuer)


def state_fits(state: str) -> bool:
    return len(state) <= MAX_STATE and len(quote_plus(state)) <= MAX_STATE


def validate_request(realm: Realm, redirect: Redirect, params: dict[str, str]) -> dict[str, Any]:
    """Everything else about the request; ClientError (redirected) on failure."""
    client = redirect.client
    if "state" in params and not state_fits(params["state"]):
        raise ClientError(errors.INVALID_REQUEST, f"state is longer than {MAX_STATE} bytes (URL-encoded)")
    for name, limit in LIMITS.items():
        value = params.get(name)
        if value is not None and len(value) > limit:
            raise ClientError(errors.INVALID_REQUEST, f"{name} is longer than {limit} characters")
    if "request" in params:
        raise ClientError("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise ClientError("request_uri_not_supported", "request_uri is not supported")
    response_type = params.get("response_type")
    if not response_type:
        raise ClientError(errors.INVALID_REQUEST, "response_type is required")
    if response_type != "code":
        raise ClientError(errors.UNSUPPORTED_RESPONSE_TYPE, "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise ClientError(errors.INVALID_REQUEST, "only response_mode=query is supported")
    if "authorization_code" not in client.grant_types:
        raise ClientError(errors.UNAUTHORIZED_CLIENT, "this client may not use the authorization code grant")
    scopes = parse_scope(params.get("scope"))
    if not scopes:
        raise ClientError(errors.INVALID_SCOPE, "scope is required")
    if len(scopes) > MAX_SCOPES:
        raise ClientError(errors.INVALID_REQUEST, f"at most {MAX_SCOPES} scopes may be requested")
    if unknown := [s for s in scopes if s not in client.scopes]:
        raise ClientError(errors.INVALID_SCOPE, f"scope not allowed for this client: {' '.join(unknown)}")
    try:
        challenge = pkce.check_challenge(
            params.get("code_challenge"), params.get("code_challenge_method"),
            required=client.type == "public",
        )
    except InvalidRequest as exc:
        raise ClientError(errors.INVALID_REQUEST, exc.description or "invalid PKCE parameters") from None
    prompt = set(parse_scope(params.get("prompt")))
    if not prompt <= PROMPTS:
        raise ClientError(errors.INVALID_REQUEST, "unsupported prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise ClientError(errors.INVALID_REQUEST, "prompt=none cannot be combined with other values")
    max_age = params.get("max_age")
    if max_age is not None and (not max_age.isdigit() or len(max_age) > 9):
        raise ClientError(errors.INVALID_REQUEST, "max_age must be a non-negative integer")
    resource = params.get("resource")
    if resource is not None and resource not in client.audience:
        raise ClientError(errors.INVALID_TARGET, "resource is not one of this client's audiences")
    try:  # OIDC Core §3.1.2.1 acr_values, §5.5.1.1 an `acr` asked for through claims
        acr_mfa = mfa.acr_request(params.get("acr_values"), params.get("claims"))
    except mfa.Unmet as exc:
        raise ClientError(mfa.UNMET, str(exc)) from None
    except ValueError as exc:
        raise ClientError(errors.INVALID_REQUEST, str(exc)) from None
    return {
        "client_id": client.client_id,
        "redirect_uri": redirect.redirect_uri,
        "redirect_uri_sent": "redirect_uri" in params,
        "state": redirect.state,
        "scope": " ".join(scopes),
        "nonce": params.get("nonce"),
        "code_challenge": challenge,
        "prompt": sorted(prompt),
        "max_age": int(max_age) if max_age is not None else None,
        "login_hint": params.get("login_hint"),
        "resource": resource,
        "acr_mfa": acr_mfa,
    }


async def authorize(services: Services, realm: Realm, call: Call) -> Answer:
    await enforce(services, realm, "authorize", call.ip, realm.config.rate_limits.authorize_per_ip)
    params = await form_params(call, query=True)
    redirect = check_client_and_redirect(realm, params)
    try:
        authz = validate_request(realm, redirect, params)
    except ClientError as exc:
        return redirect.error(exc)
    session = await current_session(call.cookies, services, realm)
    return await continue_flow(call, services, realm, authz, session, flow=None)


async def continue_flow(
    call: Call,
    services: Services,
    realm: Realm,
    authz: dict[str, Any],
    session: BrowserSession | None,
    *,
    flow: Flow | None,
    cookies: CookieJar | None = None,
    writes: WriteBatch | None = None,
    user: User | None = None,
) -> Answer:
    """Decide the next step: log in, consent, or the code back to the client. What the
    caller gathered in `writes` (a new session, say) is stored with the code and the end
    of the flow, in one round trip, before the answer is returned; `cookies` it set (that
    session's) go out with the answer. `user`: the session's user as the caller has just
    read it (a sign-in), checked here but not read again."""
    writes = writes if writes is not None else WriteBatch(services.ephemeral)
    result = await _next_step(call, services, realm, authz, session, flow, cookies, writes, user)
    await writes.commit()
    return result


async def _next_step(call: Call, services: Services, realm: Realm, authz: dict[str, Any],
                     session: BrowserSession | None, flow: Flow | None, cookies: CookieJar | None,
                     writes: WriteBatch, user: User | None) -> Answer:
    client = realm.client(authz["client_id"])  # None: a sign-in to the account pages (no client)
    redirect = Redirect(client, authz["redirect_uri"], authz["state"], realm.issuer)
    prompt = set(authz["prompt"])
    now = services.clock.timestamp()
    # A login completed inside this flow satisfies prompt=login and max_age.
    fresh = flow is not None and session is not None and flow.data.get("login_at") == session.auth_time

    needs_login = session is None
    if not fresh and session is not None:
        if authz["max_age"] is not None and now - session.auth_time > authz["max_age"]:
            needs_login = True
        # OIDC Core §3.1.2.1 (errata set 2): max_age=0 is prompt=login, a fresh sign-in
        # even within the second of the last one.
        if "login" in prompt or authz["max_age"] == 0:
            needs_login = True
    if session is None or user is None or (user.realm, user.id) != (realm.name, session.user_id):
        user = None  # not the session's user: read it
    if session is not None and not needs_login:
        if user is None:
            user = await services.durable.get_user(realm.name, session.user_id)
        if user is None or user.disabled:
            needs_login = True
    if needs_login:
        if "none" in prompt:
            return redirect.error(ClientError(errors.LOGIN_REQUIRED, "the user is not signed in"))
        return await _interact(call, services, realm, authz, flow, "login", cookies)

    if not mfa.is_multi_factor(session.amr) and (mfa.mfa_demanded(realm, authz) or realm.config.mfa.required):
        # Step-up (issue 20): the client needs two factors and this session has one.
        if "none" in prompt:
            return redirect.error(ClientError(mfa.UNMET, "the session does not meet the requested authentication"))
        return await mfa.step_up(services, realm, call, authz, flow, session, cookies)

    if not user.email_verified and user.email is not None:
        # `require_verified_email` (the session's provider): no code until the address is
        # proven; a page offers the verification mail instead (issue 16 item 16).
        from engine.accounts.verification import verification_required, verify_first  # imports this module
        if verification_required(realm, session):
            if "none" in prompt:
                return redirect.error(ClientError(errors.INTERACTION_REQUIRED, "the email address is not verified"))
            return await verify_first(call, services, realm, authz, user, flow, cookies)

    if authz.get("account"):
        # A sign-in for the account pages (engine.accounts.security): back there, no code.
        if flow is not None:
            await finish_flow(services, realm, flow, writes)
        return Answer.see_other(authz["account"], cookies or ())

    if authz.get("device"):
        # RFC 8628 §3.3: a device flow ends in its confirmation page (always shown: §5.4
        # remote phishing), not in a code (engine.web.device).
        return await _interact(call, services, realm, authz, flow, "device/confirm", cookies)

    scopes = set(authz["scope"].split())
    if client.consent == "required":
        consented = (flow is not None and flow.data.get("consented_by") == user.id)
        if not consented:
            remembered = await services.durable.get_consent(realm.name, user.id, client.client_id)
            covered = remembered is not None and scopes <= remembered.scopes
            if "consent" in prompt or not covered:
                if "none" in prompt:
                    return redirect.error(ClientError(errors.CONSENT_REQUIRED, "the user has not consented"))
                return await _interact(call, services, realm, authz, flow, "consent", cookies)

    code = issue_code(services, realm, {
        "client_id": client.client_id,
        "redirect_uri": authz["redirect_uri"],
        "redirect_uri_sent": authz["redirect_uri_sent"],
        "scope": authz["scope"],
        "user_id": user.id,
        "auth_time": session.auth_time,
        "nonce": authz["nonce"],
        "code_challenge": authz["code_challenge"],
        "session_id": session.sid,
        "resource": authz["resource"],
        "amr": session.amr,
        "acr": mfa.acr_of(session.amr),
    }, writes)
    if flow is not None:
        await finish_flow(services, realm, flow, writes)
    # carry cookies set earlier in this request (new session)
    return redirect.to(code=code).with_cookies(cookies or ())


async def _interact(call: Call, services: Services, realm: Realm, authz: dict[str, Any], flow: Flow | None,
                    step: str, cookies: CookieJar | None) -> Answer:
    """On to the page of `step` (the flow saved, or started: its binding cookie set)."""
    jar = CookieJar(tuple(cookies or ()))
    if flow is None:
        flow = await start_flow(jar, call.cookies, services, realm, authz)
    elif flow.unsaved:
        await save_flow(services, realm, flow)
    return Answer.see_other(f"{realm_base(call, realm)}/{step}?flow={flow.id}", jar)


async def resume(services: Services, realm: Realm, call: Call) -> Answer:
    """GET /authorize/resume?flow=…: pick a flow up again (e.g. after federation)."""
    flow = await load_flow(call.cookies, services, realm, call.query.get("flow"))
    session = await current_session(call.cookies, services, realm)
    return await continue_flow(call, services, realm, flow.data, session, flow=flow)
