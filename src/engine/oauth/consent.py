"""Consent (OIDC Core §3.1.2.4): the user approves the scopes a client asked for. Grants
are remembered durably per (user, client); `prompt=consent` asks again; a denial goes
back to the client as `access_denied` (RFC 6749 §4.1.2.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import errors
from engine.accounts.sessions import current_session
from engine.errors import LoginRequired
from engine.exchange import Answer, Call
from engine.oauth.authorize import ClientError, Redirect, continue_flow
from engine.oauth.flows import finish_flow, load_flow, realm_base, save_flow
from engine.oauth.params import form_params
from engine.realm import Realm
from engine.store.protocols import Consent
from engine.templates import render

if TYPE_CHECKING:
    from engine.services import Services


async def consent_page(services: Services, realm: Realm, call: Call) -> Answer:
    flow = await load_flow(call.cookies, services, realm, call.query.get("flow"))
    session = await current_session(call.cookies, services, realm)
    if session is None:
        raise LoginRequired("your session has ended; start again from the application")
    user = await services.durable.get_user(realm.name, session.user_id)
    client = realm.clients[flow.data["client_id"]]
    descriptions = realm.config.all_scopes()
    scopes = [(s, descriptions.get(s, s)) for s in flow.data["scope"].split()]
    return render(realm, services, "consent.html", flow=flow, scopes=scopes,
                  client_name=client.name or client.client_id, user_email=user.email if user else "",
                  base=realm_base(call, realm))


async def consent_decision(services: Services, realm: Realm, call: Call) -> Answer:
    params = await form_params(call)
    flow = await load_flow(call.cookies, services, realm, params.get("flow"),
                           csrf=params.get("csrf"), check_csrf=True)
    session = await current_session(call.cookies, services, realm)
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
    return await continue_flow(call, services, realm, flow.data, session, flow=flow)
