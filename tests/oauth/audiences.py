"""An IdP whose `acme` realm also has a client with several audiences (resource servers),
for the RFC 8707 resource tests of the code and refresh grants."""

from __future__ import annotations

import base64

from engine.clock import FrozenClock
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.oauth.conftest import ACME, OTHER, SPA_REDIRECT, Idp, jwt_parts, write_config

MULTI_CLIENT = f"""\
  - client_id: multi
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    scopes: [openid, offline_access]
    consent: implicit
    audience: [videos-api, photos-api, music-api]
"""


async def multi_audience_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> Idp:
    port = unused_tcp_port_factory()
    config = write_config(tmp_path, backend, {"acme": ACME + MULTI_CLIENT, "other": OTHER},
                          f"http://127.0.0.1:{port}")
    clock = FrozenClock()
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    client = await aiohttp_client(app, server_kwargs={"port": port})
    return Idp(client=client, services=app[SERVICES], clock=clock)


def audiences(token: str) -> list[str]:
    """A JWT's `aud` as a list (RFC 7519 §4.1.3 allows a string)."""
    aud = jwt_parts(token)[1]["aud"]
    return aud if isinstance(aud, list) else [aud]
