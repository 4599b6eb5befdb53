"""RFC 6749 §5.2: `error_description` is "human-readable ASCII text" limited to
%x20-21 / %x23-5B / %x5D-7E (no `"`, no backslash, nothing outside printable ASCII). A
description that quotes the request (an unsupported grant type, a scope) must not carry
what the caller sent beyond that set, nor echo an unbounded amount of it."""

from __future__ import annotations

import re

RFC_6749_DESCRIPTION = re.compile(r'^[\x20\x21\x23-\x5b\x5d-\x7e]{1,200}$')
HOSTILE = 'evil"\\\u00e9\u202e' + "x" * 5000


async def test_error_descriptions_keep_to_the_rfc_6749_character_set_and_length(idp):
    for data in ({"grant_type": HOSTILE, "client_id": "spa"},
                 {"grant_type": "client_credentials", "client_id": "worker", "scope": HOSTILE}):
        resp = await idp.client.post("/token", data=data)
        body = await resp.json()
        assert resp.status in (400, 401) and body["error"]
        assert RFC_6749_DESCRIPTION.match(body["error_description"]), body["error_description"][:80]
