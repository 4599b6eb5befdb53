"""An IdP whose `acme` realm also has a client with several audiences (resource servers),
for the RFC 8707 resource tests of the code and refresh grants."""

from __future__ import annotations

from tests.oauth.conftest import ACME, SPA_REDIRECT, Idp, build_idp, jwt_parts

MULTI_CLIENT = f"""\
  - client_id: multi
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    scopes: [openid, offline_access]
    consent: implicit
    audience: [videos-api, photos-api, music-api]
"""


async def multi_audience_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> Idp:
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), ACME + MULTI_CLIENT)


def audiences(token: str) -> list[str]:
    """A JWT's `aud` as a list (RFC 7519 §4.1.3 allows a string)."""
    aud = jwt_parts(token)[1]["aud"]
    return aud if isinstance(aud, list) else [aud]
