"""Pending authorization requests ("flows"), kept server-side in the ephemeral store while
the user logs in and consents. The browser holds only the flow id (in URLs) and a binding
cookie; a login or consent POST must come with both and with the flow's CSRF token, so a
flow cannot be finished from another browser (no login CSRF).

A flow nobody moves on lives `lifetimes.pending_flow` (10 min by default) from its last
save: long enough to type a password or come back from an upstream provider, short enough
that an abandoned request (and what it holds: state, nonce, PKCE challenge) does not sit
in the store for half an hour. The end is checked against the app clock, not only left to
the store's TTL."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import OAuthError
from engine.exchange import Call, CookieSink
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.batch import WriteBatch

if TYPE_CHECKING:
    from engine.services import Services


def flow_lifetime(realm: Realm) -> int:
    return max(1, int(realm.config.lifetimes.pending_flow.total_seconds()))


async def _put(services: Services, realm: Realm, flow_id: str, data: dict[str, Any]) -> None:
    lifetime = flow_lifetime(realm)
    data["flow_exp"] = services.clock.timestamp() + lifetime
    await services.ephemeral.put(_key(realm, flow_id), data, lifetime)


class FlowExpired(OAuthError):
    error = "invalid_request"
    status = 400


@dataclass
class Flow:
    id: str
    data: dict[str, Any]  # the validated authorization request, plus csrf and created
    unsaved: bool = False  # changed by this request; saved if the flow goes on to another page

    @property
    def csrf(self) -> str:
        return self.data["csrf"]


def realm_base(call: Call, realm: Realm) -> str:
    """The URL prefix of the realm as this request reached it (`/realms/x` or root): where
    the browser flows send the browser on."""
    return f"/realms/{realm.name}" if "realm" in call.route else ""


def binding_cookie(realm: Realm) -> str:
    return f"tessera_flow_{realm.name}"


def _key(realm: Realm, flow_id: str) -> str:
    return f"{realm.name}:flow:{flow_id}"


async def start_flow(response: CookieSink, cookies: Mapping[str, str], services: Services, realm: Realm,
                     data: dict[str, Any]) -> Flow:
    """A new flow, bound to this browser (`cookies`: the request's; the binding cookie is
    set on `response`)."""
    binding = cookies.get(binding_cookie(realm))
    if not binding or len(binding) > 100:
        binding = random_token(24)
    flow = Flow(random_token(24), {**data, "csrf": random_token(24), "binding": sha256_hex(binding),
                                   "created": services.clock.timestamp()})
    await _put(services, realm, flow.id, flow.data)
    response.set_cookie(binding_cookie(realm), binding, path="/", httponly=True, samesite="Lax",
                        secure=services.runtime.config.server.base_url.startswith("https://"))
    return flow


async def load_flow(cookies: Mapping[str, str], services: Services, realm: Realm, flow_id: str | None,
                    *, csrf: str | None = None, check_csrf: bool = False) -> Flow:
    """The flow, if it exists, belongs to this browser, and (for POSTs) the CSRF token matches."""
    if not flow_id or len(flow_id) > 64:
        raise FlowExpired("this sign-in link is incomplete; start again from the application")
    data = await services.ephemeral.get(_key(realm, flow_id))
    binding = cookies.get(binding_cookie(realm), "")
    # Untouched for longer than lifetimes.pending_flow (a flow saved before `flow_exp` was
    # kept: counted from its start).
    if data is not None and data.get("flow_exp", data.get("created", 0) + flow_lifetime(realm)) \
            <= services.clock.timestamp():
        data = None
    if data is None or not hmac.compare_digest(sha256_hex(binding), data["binding"]):
        raise FlowExpired("this sign-in request has expired or was started in another browser;"
                          " start again from the application")
    if check_csrf and not (csrf and hmac.compare_digest(csrf, data["csrf"])):
        raise FlowExpired("the form was not submitted from this sign-in page; start again")
    return Flow(flow_id, data)


async def flow_client(services: Services, realm: Realm, flow_id: str | None) -> str | None:
    """The client a pending flow is for, read without the browser binding (a mailed link
    names the application that sent the user, wherever the link is opened)."""
    if not flow_id or len(flow_id) > 64:
        return None
    data = await services.ephemeral.get(_key(realm, flow_id))
    return data.get("client_id") if data else None


def back_to_application(realm: Realm, client_id: str | None) -> dict[str, str]:
    """`link_url`/`link_text` for a page that ends outside a flow: the application's
    `client_uri` (RFC 7591 §2), when it has one."""
    client = realm.client(client_id)
    if client is None or not client.client_uri:
        return {}
    return {"link_url": client.client_uri, "link_text": f"Continue to {client.name or client.client_id}"}


async def save_flow(services: Services, realm: Realm, flow: Flow) -> None:
    await _put(services, realm, flow.id, flow.data)
    flow.unsaved = False


def note_login(flow: Flow, auth_time: int) -> None:
    """A login completed inside this flow (it satisfies prompt=login and max_age later in
    the flow). Saved with the flow when the flow goes on to another page (consent); a flow
    that ends in a code right away is deleted unsaved: one store write less per login."""
    flow.data["login_at"] = auth_time
    flow.unsaved = True


async def finish_flow(services: Services, realm: Realm, flow: Flow, writes: WriteBatch | None = None) -> None:
    """The flow is over (deleted now, or when `writes` is committed)."""
    if writes is None:
        await services.ephemeral.delete(_key(realm, flow.id))
    else:
        writes.delete(_key(realm, flow.id))
