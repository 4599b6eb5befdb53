"""OpenID Connect Back-Channel Logout 1.0 through HTTP on the real app, both store pairs:
a logout token (§2.4) POSTed (§2.5) to every client that got tokens in the ended session,
verifiable with the realm's JWKS; at-least-once delivery with retries, across a restart."""

from __future__ import annotations

import asyncio
import base64
import textwrap
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet

from engine.accounts import admin
from engine.config import ConfigError, load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from engine.web.backchannel import GIVE_UP_AFTER, deliver_due, delivery_loop
from tests.oauth.conftest import ACME, OTHER, SPA_REDIRECT, Idp, jwt_parts, write_config
from tests.oauth.flow import exchange, login_for_code

EVENT = "http://schemas.openid.net/event/backchannel-logout"
RP_REDIRECT = "http://127.0.0.1:4000/cb"
KEK = {"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()}


def realm_with_receivers(port: int) -> str:
    return ACME + textwrap.indent(textwrap.dedent(f"""\
        - client_id: rp
          type: public
          redirect_uris: ["{RP_REDIRECT}"]
          scopes: [openid, profile, email, offline_access]
          consent: implicit
          backchannel_logout_uri: "http://127.0.0.1:{port}/bcl/rp"
        - client_id: rp-nosid
          type: public
          redirect_uris: ["{RP_REDIRECT}"]
          scopes: [openid, profile]
          grant_types: [authorization_code]
          consent: implicit
          backchannel_logout_uri: "http://127.0.0.1:{port}/bcl/rp-nosid"
          backchannel_logout_session_required: false
        """), "  ")


class Receiver:
    """A relying party's back-channel logout endpoint on loopback, recording each POST."""

    def __init__(self, port: int):
        self.port, self.status, self.posts, self.runner = port, 200, [], None
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.posts.append((request.path, request.content_type, dict(form)))
        self.arrived.set()
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bcl/{client}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def receiver(unused_tcp_port_factory):
    rp = Receiver(unused_tcp_port_factory())
    await rp.start()
    yield rp
    await rp.stop()


@pytest.fixture
def config(tmp_path, backend, receiver, unused_tcp_port_factory):
    port = unused_tcp_port_factory()
    return write_config(tmp_path, backend, {"acme": realm_with_receivers(receiver.port), "other": OTHER},
                        f"http://127.0.0.1:{port}")


async def start_idp(config, backend, aiohttp_client) -> Idp:
    from engine.clock import FrozenClock

    clock = FrozenClock()
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix, environ=KEK)
    port = urlsplit(config.server.base_url).port
    client = await aiohttp_client(app, server_kwargs={"port": port})
    return Idp(client=client, services=app[SERVICES], clock=clock)


@pytest.fixture
async def bidp(config, backend, aiohttp_client) -> Idp:
    return await start_idp(config, backend, aiohttp_client)


async def sign_in(idp: Idp, client_id: str = "rp", scope: str = "openid profile email offline_access"):
    """The browser flow and the code exchange; the token response."""
    redirect = SPA_REDIRECT if client_id == "spa" else RP_REDIRECT
    code, verifier, _ = await login_for_code(idp, client_id=client_id, redirect_uri=redirect, scope=scope)
    response = await exchange(idp, code, verifier, client_id=client_id, redirect_uri=redirect)
    assert response.status == 200, await response.text()
    return await response.json()


async def verified_logout_token(idp: Idp, token: str, client_id: str) -> dict:
    """Checked as a relying party must (§2.6): signature with the realm's JWKS, typ, iss,
    aud, iat/exp, the event, a `sub` or `sid`, and no `nonce`."""
    keys = KeySet.import_key_set(await (await idp.client.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(token, keys)
    assert decoded.header["typ"] == "logout+jwt"  # §2.4 (Security Considerations §4.1)
    claims = decoded.claims
    assert claims["iss"] == idp.issuer and claims["aud"] == client_id
    assert claims["events"] == {EVENT: {}} and "nonce" not in claims
    assert claims["exp"] - claims["iat"] == 120 and claims["iat"] == idp.clock.timestamp()
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    return claims


def metric(idp: Idp, name: str) -> float:
    return idp.services.metrics.registry.get_sample_value(name, {"realm": "acme"}) or 0.0


async def test_discovery_advertises_back_channel_logout(bidp):
    """Back-Channel Logout 1.0 §2.1: both OP metadata values."""
    meta = await (await bidp.client.get("/.well-known/openid-configuration")).json()
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


async def test_logout_delivers_a_verifiable_logout_token_to_each_client_of_the_session(bidp, receiver):
    """§2.5: RP-initiated logout ends the session; each client with a back-channel URI that
    got tokens in it is sent `logout_token` (form POST) with the session's `sid` (the one in
    its ID token, OIDC Core via §2.1), a client without the URI gets nothing, and the logout
    page does not wait for the delivery."""
    user = await bidp.add_user()
    body = await sign_in(bidp)
    await sign_in(bidp, "spa")  # the same session; `spa` has no back-channel URI
    id_claims = jwt_parts(body["id_token"])[1]
    assert isinstance(id_claims.get("sid"), str)
    resp = await bidp.client.get("/logout", params={"id_token_hint": body["id_token"]}, allow_redirects=False)
    assert resp.status == 200
    assert receiver.posts == []  # only queued by the logout
    assert await deliver_due(bidp.services) == 1
    [(path, content_type, form)] = receiver.posts
    assert path == "/bcl/rp" and content_type == "application/x-www-form-urlencoded"
    claims = await verified_logout_token(bidp, form["logout_token"], "rp")
    assert claims["sub"] == user.id and claims["sid"] == id_claims["sid"]
    assert metric(bidp, "backchannel_logout_deliveries_total") == 1
    assert await deliver_due(bidp.services) == 0  # delivered once, then gone


async def test_the_background_loop_delivers_what_a_logout_queued(bidp, receiver):
    """The delivery loop a serving instance runs (engine.web.lifecycle) sends the queue."""
    await bidp.add_user()
    body = await sign_in(bidp)
    loop = asyncio.get_running_loop().create_task(delivery_loop(bidp.services, every=0.01))
    try:
        await bidp.client.get("/logout", params={"id_token_hint": body["id_token"]}, allow_redirects=False)
        await asyncio.wait_for(receiver.arrived.wait(), 10)
    finally:
        loop.cancel()
    await verified_logout_token(bidp, receiver.posts[0][2]["logout_token"], "rp")


async def test_a_failed_delivery_is_retried_with_backoff_and_survives_a_restart(
        bidp, receiver, config, backend, aiohttp_client):
    """Delivery is at least once: a 500 or a receiver that is down is retried after a
    growing wait; the queue is in the durable store, so another instance started on the
    same stores delivers it; success is 200/204 only (§2.8). The `jti` is the same on every
    attempt."""
    await bidp.add_user()
    body = await sign_in(bidp)
    await bidp.client.get("/logout", params={"id_token_hint": body["id_token"]}, allow_redirects=False)
    receiver.status = 500
    assert await deliver_due(bidp.services) == 1
    assert metric(bidp, "backchannel_logout_failures_total") == 1
    assert await deliver_due(bidp.services) == 0  # not due before its backoff (1 s)
    bidp.clock.advance(1)
    await receiver.stop()  # now down altogether
    assert await deliver_due(bidp.services) == 1
    assert metric(bidp, "backchannel_logout_failures_total") == 2
    bidp.clock.advance(1)
    assert await deliver_due(bidp.services) == 0  # the second wait is 2 s
    jtis = {jwt_parts(form["logout_token"])[1]["jti"] for _, _, form in receiver.posts}
    await bidp.client.close()  # the instance stops

    receiver.status = 200
    await receiver.start()
    later = await start_idp(config, backend, aiohttp_client)  # a new instance, same stores
    later.clock.advance(30)
    assert await deliver_due(later.services) == 1
    token = receiver.posts[-1][2]["logout_token"]
    claims = await verified_logout_token(later, token, "rp")
    assert {claims["jti"]} == jtis and claims["sid"] == jwt_parts(body["id_token"])[1]["sid"]
    assert metric(later, "backchannel_logout_deliveries_total") == 1
    later.clock.advance(7200)
    assert await deliver_due(later.services) == 0


async def test_a_delivery_is_given_up_after_an_hour(bidp, receiver):
    """Retries are bounded in time; each failure is counted."""
    await bidp.add_user()
    body = await sign_in(bidp)
    await bidp.client.get("/logout", params={"id_token_hint": body["id_token"]}, allow_redirects=False)
    receiver.status = 503
    attempts = 0
    for _ in range(40):
        attempts += await deliver_due(bidp.services)
        bidp.clock.advance(600)
    assert 5 <= attempts <= 20
    assert metric(bidp, "backchannel_logout_failures_total") == attempts
    assert len(receiver.posts) == attempts
    far = bidp.clock.now() + GIVE_UP_AFTER * 10
    assert await bidp.services.durable.claim_logout_deliveries(far, far, 10) == []  # removed, not left due


async def test_a_redirect_is_not_followed_and_not_a_delivery(bidp, receiver):
    """§2.8: only 200 or 204 is success; a 3xx would carry the token elsewhere."""
    await bidp.add_user()
    body = await sign_in(bidp)
    await bidp.client.get("/logout", params={"id_token_hint": body["id_token"]}, allow_redirects=False)
    receiver.status = 307
    assert await deliver_due(bidp.services) == 1
    assert len(receiver.posts) == 1 and metric(bidp, "backchannel_logout_failures_total") == 1


async def test_a_password_reset_tells_every_client_of_every_session(bidp, receiver):
    """Issue 19: a password reset ends every session of the user; a client that requires
    `sid` (the default) is told per session, one that does not is told once by `sub`."""
    from tests.accounts.helpers import reset

    user = await bidp.add_user()
    first = await sign_in(bidp)
    await sign_in(bidp, "rp-nosid", scope="openid profile")
    bidp.client.session.cookie_jar.clear()  # a second browser
    second = await sign_in(bidp)
    link = await admin.reset_link(bidp.services, bidp.realm(), user)
    parts = urlsplit(link)
    assert (await reset(bidp, f"{parts.path}?{parts.query}", "another good passphrase 9")).status == 200
    assert await deliver_due(bidp.services) == 3
    by_client: dict[str, list] = {}
    for path, _, form in receiver.posts:
        client_id = path.rsplit("/", 1)[1]
        by_client.setdefault(client_id, []).append(await verified_logout_token(bidp, form["logout_token"],
                                                                               client_id))
    sids = {jwt_parts(t["id_token"])[1]["sid"] for t in (first, second)}
    assert {c["sid"] for c in by_client["rp"]} == sids and len(sids) == 2
    [nosid] = by_client["rp-nosid"]
    assert nosid["sub"] == user.id and "sid" not in nosid


@pytest.mark.parametrize("action", ["revoke_sessions", "disable"])
async def test_the_administrator_ending_sessions_tells_the_clients(bidp, receiver, action):
    """Issue 19: the administrator's revocation and disabling a user end the sessions."""
    user = await bidp.add_user()
    body = await sign_in(bidp)
    if action == "disable":
        await admin.set_disabled(bidp.services, bidp.realm(), user, True)
    else:
        await admin.revoke_sessions(bidp.services, bidp.realm(), user)
    assert await deliver_due(bidp.services) == 1
    claims = await verified_logout_token(bidp, receiver.posts[0][2]["logout_token"], "rp")
    assert claims["sub"] == user.id and claims["sid"] == jwt_parts(body["id_token"])[1]["sid"]


async def test_a_client_without_the_uri_gets_nothing(bidp, receiver):
    await bidp.add_user()
    body = await sign_in(bidp, "spa")
    await bidp.client.get("/logout", params={"id_token_hint": body["id_token"]}, allow_redirects=False)
    assert await deliver_due(bidp.services) == 0 and receiver.posts == []


@pytest.mark.parametrize("uri", ["http://rp.example.com/logout", "ftp://127.0.0.1/x", "/relative",
                                 "https://rp.example.com/logout#frag", "com.example.app:/logout"])
def test_backchannel_logout_uri_is_validated(tmp_path, uri):
    """§2.2: an absolute URI; like redirect URIs, https (http only on loopback)."""
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent(f"""\
        name: acme
        clients:
          - client_id: rp
            type: public
            redirect_uris: ["{RP_REDIRECT}"]
            backchannel_logout_uri: "{uri}"
        providers: [{{id: password, type: password}}]
        """))
    (tmp_path / "idp.yaml").write_text("base_url: https://idp.example.com\nrealms: realms/\nroot_realm: null\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(), environ={})
    [problem] = caught.value.problems
    assert "acme.yaml:6" in problem and "backchannel_logout_uri" in problem
