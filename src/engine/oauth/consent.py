"""Consent (OIDC Core §3.1.2.4): the user approves the scopes a client asked for. Grants
are remembered durably per (user, client); `prompt=consent` asks again; a denial goes
back to the client as `access_denied` (RFC 6749 §4.1.2.1)."""

from __future__ import annotations

from aiohttp import web

from engine import errors
from engine.accounts.sessions import current_session
from engine.errors import LoginRequired
from engine.oauth.authorize import ClientError, Redirect, continue_flow, realm_base
from engine.oauth.flows import finish_flow, load_flow, save_flow
from engine.oauth.params import form_params
from engine.realm import Realm
from engine.store.protocols import Consent
from engine.web.appkeys import SERVICES
from engine.web.templates import render


async def consent_page(request: web.Request, realm: Realm) -> web.Response:
    services = request.app[SERVICES]
    flow = await load_flow(request.cookies, services, realm, request.query.get("flow"))
    session = await current_session(request.cookies, services, realm)
    if session is None:
        raise LoginRequired("your session has ended; start again from the application")
    user = await services.durable.get_user(realm.name, session.user_id)
    client = realm.clients[flow.data["client_id"]]
    descriptions = realm.config.all_scopes()
    scopes = [(s, descriptions.get(s, s)) for s in flow.data["scope"].split()]
    return render(request, realm, services, "consent.html", flow=flow, scopes=scopes,
                  client_name=client.name or client.client_id, user_email=user.email if user else "",
                  base=realm_base(request, realm))


async def consent_decision(request: web.Request, realm: Realm) -> web.StreamResponse:
    services = request.app[SERVICES]
    params = await form_params(request)
    flow = await load_flow(request.cookies, services, realm, params.get("flow"),
                           csrf=params.get("csrf"), check_csrf=True)
    session = await current_session(request.cookies, services, realm)
    if session is None:
        raise LoginRequired("your session has ended; start again from the application")
    client = realm.clients[flow.data["client_id"]]
    if params.get("decision") != "allow":
        await finish_flow(services, realm, flow)
        redirect = Redirect(client, flow.data["redirect_uri"], flow.data["state"], realm.issuer)
        return redirect.error(ClientError(errors.ACCESS_DENIED, "the user denied the request"))
    remembered = await services.durable.get_consent(realm.name, session.user_id, client.client_id)
    scopes = set(flow.data["scope"].split()) | (set(remembered.scopes) if remembered else set())
    await services.durable.save_consent(Consent(
        realm=realm.name, user_id=session.user_id, client_id=client.client_id,
        scopes=frozenset(scopes), updated_at=services.clock.now(),
    ))
    flow.data["consented_by"] = session.user_id
    await save_flow(services, realm, flow)
    return await continue_flow(request, realm, flow.data, session, flow=flow)
