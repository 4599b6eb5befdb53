"""Federated sign-in through redirect providers (Google, GitHub, any OIDC/OAuth 2 upstream):
the seed's steps 1–7 and its "Federation mapping".

- `GET /login/<provider>?flow=…`: the button on the login page. The pending authorization
  request (the flow) stays server-side; the browser is sent upstream.
- `GET /login/<provider>?client_id=…&redirect_uri=…&state=…` and the seed alias
  `GET /oauth/<provider>?…`: `/authorize` with the provider chosen. Every `/authorize`
  check applies (registered redirect URI, PKCE for public clients); seed-style requests
  may omit `response_type` (only `code` exists) and `scope` (the client's standard OIDC
  scopes).
- `GET /login/<provider>/callback` (seed alias `/oauth/callback/<provider>`): where the
  upstream comes back.

What goes upstream as `state` is only a random handle. The upstream state — flow id,
nonce, PKCE verifier, callback URL — is kept in the ephemeral store under its hash, taken
once (atomic `take`), and only honoured by the browser that holds the flow's binding
cookie — checked *before* the state is taken, so a leaked callback URL opened in another
browser is refused without using up the owner's login. So an unknown, expired, replayed
or foreign callback is refused with a page, never a redirect. Who the identity is mapped
to, and why a sign-in may be refused (one page for every cause): engine.accounts.linking.
The upstream is told `{realm issuer}/login/<id>/callback`, or
`{realm issuer}/oauth/callback/<id>` when the login started at the seed's `/oauth/<id>`:
register the one you use at the upstream.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine import errors, events
from engine.accounts.linking import FEDERATION_REFUSED, LinkRefused, user_for_identity
from engine.accounts.mfa import finish_first_factor
from engine.accounts.sessions import current_session
from engine.errors import AccessDenied as ClientAccessDenied
from engine.errors import InvalidRequest, NotFound, OAuthError
from engine.exchange import Answer, Call, CookieJar
from engine.oauth import pkce
from engine.oauth.authorize import (
    ClientError,
    Redirect,
    check_client_and_redirect,
    continue_flow,
    validate_request,
)
from engine.oauth.flows import Flow, finish_flow, load_flow, realm_base, start_flow
from engine.oauth.params import form_params
from engine.oauth.ratelimit import enforce
from engine.providers import AccessDenied, ProviderError
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.templates import render

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger("engine.federation")

STATE_LIFETIME = 10 * 60  # time the user has at the upstream
SEED_DEFAULT_SCOPES = ("openid", "profile", "email")


class CallbackRefused(OAuthError):
    """A callback whose `state` is unknown, expired, already used, or from another browser."""

    error = errors.INVALID_REQUEST
    status = 400


def _redirect_provider(realm: Realm, provider_id: str) -> Any:
    provider = realm.providers.get(provider_id)
    if provider is None or getattr(provider, "kind", "") != "redirect":
        raise NotFound("no such sign-in method")
    return provider


def _state_key(realm: Realm, handle: str) -> str:
    return f"{realm.name}:fedstate:{sha256_hex(handle)}"


def callback_url(realm: Realm, provider_id: str, *, seed_style: bool) -> str:
    if seed_style:
        return f"{realm.issuer}/oauth/callback/{provider_id}"
    return f"{realm.issuer}/login/{provider_id}/callback"


async def federated_start(services: Services, realm: Realm, call: Call) -> Answer:
    """`GET /login/<provider>`: the upstream comes back to `/login/<provider>/callback`."""
    return await _start(call, services, realm, seed_style=False)


async def seed_start(services: Services, realm: Realm, call: Call) -> Answer:
    """`GET /oauth/<provider>` (seed): the upstream comes back to `/oauth/callback/<provider>`."""
    return await _start(call, services, realm, seed_style=True)


async def _start(call: Call, services: Services, realm: Realm, *, seed_style: bool) -> Answer:
    provider_id = call.route["provider"]
    provider = _redirect_provider(realm, provider_id)
    await enforce(services, realm, "federation_ip", call.ip, realm.config.rate_limits.login_per_ip)
    params = await form_params(call, query=True)
    cookies = CookieJar()

    flow: Flow | None = None
    authz: dict[str, Any] | None = None
    if "client_id" in params:  # seed style: this is /authorize with the provider chosen
        params.setdefault("response_type", "code")
        redirect = check_client_and_redirect(realm, params)
        if "scope" not in params:
            allowed = redirect.client.scopes
            params["scope"] = " ".join(s for s in SEED_DEFAULT_SCOPES if s in allowed)
        try:
            authz = validate_request(realm, redirect, params)
        except ClientError as exc:
            return redirect.error(exc)
        if "none" in authz["prompt"]:  # no interaction allowed: only an existing session will do
            session = await current_session(call.cookies, services, realm)
            return await continue_flow(call, services, realm, authz, session, flow=None)
    elif "flow" in params:
        flow = await load_flow(call.cookies, services, realm, params["flow"])
    else:
        raise InvalidRequest("this sign-in link is incomplete; start again from the application")

    handle, nonce, verifier = random_token(32), random_token(24), random_token(48)
    url = callback_url(realm, provider_id, seed_style=seed_style)
    try:
        upstream_url = await provider.login_url(url, handle, nonce, pkce.s256(verifier))
    except Exception as exc:  # a provider plugin's bug must not leak as a bare 500
        _log_upstream_failure(realm, provider_id, "starting the login", exc)
        if flow is None:
            raise UpstreamFailed() from None
        return _upstream_failure_page(call, services, realm, provider, flow)
    if flow is None:
        flow = await start_flow(cookies, call.cookies, services, realm, authz)
    await services.ephemeral.put(_state_key(realm, handle), {
        "flow": flow.id,
        "provider": provider_id,
        "nonce": nonce,
        "code_verifier": verifier,
        "callback_url": url,
        "exp": services.clock.timestamp() + STATE_LIFETIME,
    }, STATE_LIFETIME)
    return Answer.see_other(upstream_url, cookies)


async def federated_callback(services: Services, realm: Realm, call: Call) -> Answer:
    provider_id = call.route["provider"]
    provider = _redirect_provider(realm, provider_id)
    ip = call.ip
    await enforce(services, realm, "federation_ip", ip, realm.config.rate_limits.login_per_ip)
    params = await form_params(call, query=True)
    handle = params.get("state")
    if not handle or len(handle) > 128:
        raise CallbackRefused("this sign-in response has no valid state; start again from the application")
    # The browser binding is checked before the state is used up: a leaked callback URL
    # opened in another browser is refused without burning the owner's login (issue 23 #14).
    key = _state_key(realm, handle)
    pending = await services.ephemeral.get(key)
    _check_pending(services, pending, provider_id)
    flow = await load_flow(call.cookies, services, realm, pending["flow"])  # the browser that started it
    pending = await services.ephemeral.take(key)  # single use: of concurrent callbacks one proceeds
    _check_pending(services, pending, provider_id)
    client_id = flow.data["client_id"]
    client = realm.client(client_id)
    if client is None and not flow.data.get("account"):  # removed by a config reload while the user was upstream
        raise CallbackRefused("the application that sent you here is no longer registered")
    redirect = Redirect(client, flow.data["redirect_uri"], flow.data["state"], realm.issuer)

    if "error" in params:  # RFC 6749 §4.1.2.1 error response from the upstream
        if params["error"] == errors.ACCESS_DENIED:
            return await _deny(services, realm, flow, redirect, "the sign-in was cancelled or refused upstream")
        _log_upstream_failure(realm, provider_id, "the callback", f"upstream error {params['error']!r}:"
                              f" {params.get('error_description', '')[:200]!r}")
        return _upstream_failure_page(call, services, realm, provider, flow)
    try:
        identity = await provider.handle_callback(
            pending["callback_url"], params, pending["nonce"], pending["code_verifier"])
    except AccessDenied as exc:
        log.info("realm %s provider %s denied the login: %s", realm.name, provider_id, exc)
        return await _deny(services, realm, flow, redirect, "the account was refused by the sign-in provider")
    except Exception as exc:  # UpstreamError, or a provider plugin's bug: never a bare 500
        _log_upstream_failure(realm, provider_id, "the callback", exc)
        return _upstream_failure_page(call, services, realm, provider, flow)

    try:
        user = await user_for_identity(services, realm, provider_id, provider.settings, identity,
                                       client_id=client_id, ip=ip)
    except LinkRefused as exc:
        # The cause (an account exists, it is unverified, ...) goes to the log and the audit
        # trail only: the page is the same for every cause (issue 16 item 3).
        log.info("realm %s provider %s: sign-in refused: %s", realm.name, provider_id, exc.cause)
        await services.audit(realm.name, FEDERATION_REFUSED, ip=ip, client_id=client_id, provider=provider_id,
                             issuer=identity.issuer, reason=exc.cause)
        return render(realm, services, "federation_error.html", status=exc.status,
                      title="You are not signed in", message=exc.description,
                      retry_url=f"{realm_base(call, realm)}/login?flow={flow.id}", code=exc.error)
    if user.disabled:
        return await _deny(services, realm, flow, redirect, "this account is disabled")

    await services.audit(realm.name, events.LOGIN, user_id=user.id, ip=ip, client_id=client_id,
                         provider=provider_id)
    # The upstream is the first factor; it counts as both only when the provider is
    # trusted for it and the upstream says it was multi-factor (RFC 8176 `mfa`).
    amr = ["fed"]
    if getattr(provider.settings, "trust_upstream_mfa", False) and "mfa" in identity.amr:
        amr.append("mfa")
    return await finish_first_factor(services, realm, call, flow, user.id, amr=amr, provider=provider_id,
                                     user=user)


def _check_pending(services: Services, pending: dict[str, Any] | None, provider_id: str) -> None:
    if (pending is None or pending["provider"] != provider_id
            or pending["exp"] <= services.clock.timestamp()):
        raise CallbackRefused("this sign-in response is unknown, expired or was already used;"
                              " start again from the application")


async def _deny(services: Services, realm: Realm, flow: Flow, redirect: Redirect, why: str) -> Answer:
    """`access_denied` back to the client (RFC 6749 §4.1.2.1); the flow is over."""
    await finish_flow(services, realm, flow)
    return redirect.error(ClientAccessDenied(why))


class UpstreamFailed(OAuthError):
    """The upstream is down or answered garbage (the cause is logged, not shown)."""

    error = errors.TEMPORARILY_UNAVAILABLE
    status = 502

    def __init__(self) -> None:
        super().__init__("the sign-in provider did not answer as expected; try again in a moment")


def _log_upstream_failure(realm: Realm, provider_id: str, step: str, cause: object) -> None:
    if isinstance(cause, ProviderError) or not isinstance(cause, Exception):
        log.warning("realm %s provider %s failed during %s: %s", realm.name, provider_id, step, cause)
    else:
        log.error("realm %s provider %s raised during %s", realm.name, provider_id, step, exc_info=cause)


def _upstream_failure_page(call: Call, services: Services, realm: Realm, provider: Any, flow: Flow) -> Answer:
    """A readable page (the cause is in the log, not on the page) with a way back to the
    login page: the flow is still pending, so the user may pick another method."""
    name = provider.settings.display_name or provider.settings.id.capitalize()
    error = UpstreamFailed()
    return render(realm, services, "federation_error.html", status=error.status,
                  title=f"{name} sign-in is not working right now",
                  message=f"{name} did not answer as expected, so you are not signed in."
                          " Try again in a moment, or choose another way to sign in.",
                  retry_url=f"{realm_base(call, realm)}/login?flow={flow.id}", code=error.error)
