"""The protocol core called directly, without HTTP (issue 17 item 2): the token and
introspection endpoints are functions of services, a realm and an `engine.exchange.Call`
(method, headers, parameters, caller address) that answer an `Answer`. The app is started
only to open its stores; no request goes through aiohttp."""

from __future__ import annotations

import json

import pytest

from engine.errors import InvalidClient, InvalidRequest, RateLimited
from engine.exchange import Answer, Call
from engine.oauth.discovery import discovery
from engine.oauth.introspect import introspect
from engine.oauth.params import FORM, MAX_BODY, form_params
from engine.oauth.token import token
from tests.oauth.conftest import WORKER_SECRET, basic_auth


def json_of(answer: Answer) -> dict:
    assert answer.body is not None
    return json.loads(answer.body)


async def client_credentials(idp, **extra: str) -> Answer:
    call = Call.of(form={"grant_type": "client_credentials", **extra}, headers=basic_auth("worker", WORKER_SECRET))
    return await token(idp.services, idp.realm(), call)


async def test_token_client_credentials_without_http(idp):
    """RFC 6749 §4.4.2-§4.4.3 and §5.1: a confidential client authenticated with
    client_secret_basic gets a Bearer access token, not cacheable."""
    answer = await client_credentials(idp)
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Pragma"] == "no-cache"
    assert answer.content_type == "application/json; charset=utf-8"
    body = json_of(answer)
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "videos.read"
    assert "refresh_token" not in body
    assert answer.cookies == ()


async def test_token_reads_a_json_body_without_http(idp):
    """The seed's JSON token requests, through the same parameter rules (one flat object)."""
    call = Call.of(body=b'{"grant_type": "client_credentials"}',
                   headers={**basic_auth("worker", WORKER_SECRET), "Content-Type": "application/json"})
    assert (await token(idp.services, idp.realm(), call)).status == 200
    nested = Call.of(body=b'{"grant_type": ["client_credentials"]}',
                     headers={**basic_auth("worker", WORKER_SECRET), "Content-Type": "application/json"})
    with pytest.raises(InvalidRequest):
        await token(idp.services, idp.realm(), nested)


async def test_token_errors_are_raised_for_the_renderer(idp):
    """STYLE.md §3: the core raises the OAuthError; the web layer renders RFC 6749 §5.2."""
    call = Call.of(form={"grant_type": "client_credentials"}, headers=basic_auth("worker", "wrong"))
    with pytest.raises(InvalidClient) as raised:
        await token(idp.services, idp.realm(), call)
    assert raised.value.status == 401


async def test_token_rate_limit_is_per_caller_address_from_the_call(idp):
    """Seed security musts: /token is rate limited per address; the core counts the
    address the call carries (another address is not refused)."""
    limit = idp.realm().config.rate_limits.token_per_ip.requests
    call = Call.of(form={"grant_type": "nope"}, ip="198.51.100.7")
    for _ in range(limit):
        with pytest.raises(Exception) as raised:
            await token(idp.services, idp.realm(), call)
        assert not isinstance(raised.value, RateLimited)
    with pytest.raises(RateLimited):
        await token(idp.services, idp.realm(), call)
    assert (await client_credentials(idp)).status == 200  # 127.0.0.1


async def test_introspection_without_http(idp):
    """RFC 7662 §2.1-§2.2: an authenticated resource server learns the token's claims; an
    unknown token is exactly {"active": false}."""
    access_token = json_of(await client_credentials(idp))["access_token"]
    auth = basic_auth("worker", WORKER_SECRET)
    answer = await introspect(idp.services, idp.realm(), Call.of(form={"token": access_token}, headers=auth))
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    info = json_of(answer)
    assert info["active"] is True
    assert info["client_id"] == info["sub"] == "worker"
    assert info["scope"] == "videos.read"
    unknown = await introspect(idp.services, idp.realm(), Call.of(form={"token": "garbage"}, headers=auth))
    assert json.loads(unknown.body) == {"active": False}


async def test_introspection_refuses_public_clients_without_http(idp):
    """RFC 7662 §2.1: the caller must be authorized; a public client has no credentials."""
    call = Call.of(form={"token": "x", "client_id": "spa"})
    with pytest.raises(InvalidClient):
        await introspect(idp.services, idp.realm(), call)


async def test_discovery_conditional_get_without_http(idp):
    """RFC 9110 §13.1.2: If-None-Match with the current ETag gets 304 and no body."""
    first = discovery(idp.realm(), None)
    assert first.status == 200 and json_of(first)["issuer"] == idp.realm().issuer
    again = discovery(idp.realm(), first.headers["ETag"])
    assert again.status == 304 and again.body is None
    assert again.headers["ETag"] == first.headers["ETag"]
    assert discovery(idp.realm(), '"stale"').status == 200


async def test_parameter_rules_hold_for_a_call_from_any_transport():
    """RFC 6749 §3.1-§3.2 and the input rules of engine.oauth.params, applied by the core
    whatever delivered the call: a body past the limit, a name twice, a control character."""
    form = {"Content-Type": FORM}
    with pytest.raises(InvalidRequest, match="too large"):
        await form_params(Call.of(body=b"a=" + b"x" * MAX_BODY, headers=form))
    with pytest.raises(InvalidRequest, match="more than once"):
        await form_params(Call.of(body=b"a=1&a=2", headers=form))
    with pytest.raises(InvalidRequest, match="control character"):
        await form_params(Call.of(body=b"a=%00", headers=form))
    with pytest.raises(InvalidRequest, match="use POST"):
        await form_params(Call.of("GET", query={"a": "1"}))
    assert await form_params(Call.of("GET", query={"a": "1"}), query=True) == {"a": "1"}
    assert await form_params(Call.of(form={"a": "1", "b": ""})) == {"a": "1", "b": ""}


def test_no_cache_keeps_presented_client_secrets():
    """Issue 17 item 4: Basic credentials are decoded per request, never memoised (a cache
    would keep every presented secret, wrong guesses included); the configured secrets are
    hashed once per loaded realm instead (Realm.client_secret_hashes)."""
    import functools

    from engine.oauth import clients

    for function in vars(clients).values():
        if getattr(getattr(function, "__wrapped__", None), "__module__", None) == clients.__name__:
            assert not isinstance(function, functools._lru_cache_wrapper), function
    assert clients._decode_basic.__module__ == clients.__name__ and not hasattr(clients._decode_basic, "cache_info")
