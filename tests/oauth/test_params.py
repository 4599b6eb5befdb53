"""Request parameters are input with rules that hold on every endpoint (engine.oauth.params):
RFC 6749 §3.1 (each parameter once), a JSON token body that is one flat object (issue 16
item 14; RFC 8259 §4: names SHOULD be unique, and we refuse the ambiguity), and no control
characters anywhere (issue 23 item 8; OWASP Input Validation Cheat Sheet: allow-list the
character classes a field can hold)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidRequest
from tests.oauth.conftest import SPA_REDIRECT, WORKER_SECRET, basic_auth
from tests.oauth.flow import authorize, submit_login

TOKEN_JSON = {"Content-Type": "application/json"}


async def post_json(idp, body: str | bytes):
    return await idp.client.post("/token", data=body, headers={**TOKEN_JSON, **basic_auth("worker", WORKER_SECRET)})


async def assert_invalid_request(response) -> dict:
    assert response.status == 400, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["error"] == "invalid_request"
    return body


async def test_flat_json_body_still_works(idp):
    resp = await post_json(idp, '{"grant_type": "client_credentials", "scope": "videos.read"}')
    assert resp.status == 200


async def test_duplicate_json_keys_are_invalid_request(idp):
    """RFC 6749 §3.2 ("MUST NOT be included more than once"): the JSON form is no loophole."""
    body = '{"grant_type": "client_credentials", "scope": "videos.read", "scope": "openid"}'
    assert "more than once" in (await assert_invalid_request(await post_json(idp, body)))["error_description"]


@pytest.mark.parametrize("body", [
    '{"grant_type": {"a": "client_credentials"}}',
    '{"grant_type": "client_credentials", "scope": ["videos.read"]}',
    '{"grant_type": "client_credentials", "scope": null}',
    '{"grant_type": "client_credentials", "scope": true}',
    '{"grant_type": "client_credentials", "n": NaN}',
    '["grant_type", "client_credentials"]',
    '"client_credentials"',
])
async def test_only_a_flat_object_of_strings_is_accepted(idp, body):
    await assert_invalid_request(await post_json(idp, body))


@pytest.mark.parametrize("body", [
    "[" * 100_000,  # past the body limit
    "[" * 60_000,  # within it
    '{"grant_type": "client_credentials", "x": ' + "[" * 60_000,
    '{"grant_type": "client_credentials", "x": ' + '{"a":' * 10_000 + '"b"' + "}" * 10_001,
])
async def test_deep_json_is_invalid_request_never_a_500(idp, body):
    await assert_invalid_request(await post_json(idp, body))


@pytest.mark.parametrize("bad", ["\x00", "\x1f", "\x7f", "\n", "\t"])
async def test_control_characters_in_a_form_field_are_invalid_request(idp, bad):
    data = {"grant_type": "client_credentials", "scope": f"videos.read{bad}"}
    resp = await idp.client.post("/token", data=data, headers=basic_auth("worker", WORKER_SECRET))
    await assert_invalid_request(resp)


async def test_control_characters_in_a_parameter_name_are_invalid_request(idp):
    resp = await idp.client.post("/token", data=b"grant_type=client_credentials&x%00y=1",
                                 headers={**basic_auth("worker", WORKER_SECRET),
                                          "Content-Type": "application/x-www-form-urlencoded"})
    body = await assert_invalid_request(resp)
    assert "\x00" not in body["error_description"]


@pytest.mark.parametrize("value", ["\\u0000", "\\u001b[31m", "\\ud800"])
async def test_control_characters_and_surrogates_in_json_values_are_invalid_request(idp, value):
    body = '{"grant_type": "client_credentials", "scope": "videos.read' + value + '"}'
    await assert_invalid_request(await post_json(idp, body))


async def test_control_characters_at_introspection_revocation_and_userinfo(idp):
    auth = basic_auth("worker", WORKER_SECRET)
    for path in ("/introspect", "/revoke"):
        await assert_invalid_request(await idp.client.post(path, data={"token": "a\x00b"}, headers=auth))
    resp = await idp.client.post("/userinfo", data={"access_token": "a\x00b"})
    assert resp.status == 400


async def test_control_characters_in_the_query_are_a_readable_page_on_browser_endpoints(idp):
    """`/authorize` before the redirect URI is known good: an HTML page (RFC 6749
    §4.1.2.1), never a redirect and never a 500."""
    resp = await idp.client.get("/authorize", params={"client_id": "spa", "redirect_uri": SPA_REDIRECT,
                                                      "response_type": "code", "state": "a\x00b"},
                                allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers
    assert resp.content_type == "text/html" and "control character" in await resp.text()


async def test_control_characters_in_a_login_form_are_refused_on_both_backends(idp):
    """The same answer on SQLite and PostgreSQL (which refuses NUL in text): a readable 400."""
    await idp.add_user()
    resp, _ = await authorize(idp)
    login = resp.headers["Location"]
    answer = await submit_login(idp, login, "alice\x00@example.com", "correct horse battery\x00")
    assert answer.status == 400 and "control character" in await answer.text()



@pytest.mark.parametrize("body", ["grant_type=client_credentials", "a=1&b=&c", "&&a=1&&", "a==1&b=2=3", "", "=x",
                                  "a=1;b=2", "a=%41+b&c=d", "name=caf\u00e9"])
def test_form_body_reads_what_parse_qsl_reads(body):
    """RFC 6749 Appendix B: an unescaped body is split without `parse_qsl` (issue 17: the
    token path), and must give exactly its pairs: blank values kept, empty fields dropped,
    the first `=` the separator."""
    from urllib.parse import parse_qsl

    from engine.oauth.params import form_body

    assert form_body(body.encode()) == dict(parse_qsl(body, keep_blank_values=True))


@pytest.mark.parametrize("body", [b"a=1&b=\x01", b"a\x7f=1", b"a=1&a=2"])
def test_unescaped_form_body_refuses_controls_and_repeats(body):
    from engine.oauth.params import form_body

    with pytest.raises(InvalidRequest):
        form_body(body)
