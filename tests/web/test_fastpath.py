"""The fast path (engine.web.fastpath, engine.web.fastintrospect) as `idp serve` runs it,
over real sockets: discovery/JWKS and introspection must be answered exactly as the
aiohttp handlers do (OIDC Discovery §4, RFC 7517, RFC 9110 §13.1.2 `If-None-Match` → 304,
§9.3.2 HEAD; RFC 7662 §2.2), counted and identified like any other request, and
everything else on a connection handed to aiohttp, in order (RFC 9112 §9.3.2: responses
to pipelined requests come in the order of the requests)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.web import fastpath, fastposts
from engine.web.app import create_app
from tests.oauth.conftest import ACME, OTHER, WORKER_SECRET, basic_auth, write_config

DOCUMENTS = ("/.well-known/openid-configuration", "/.well-known/jwks.json", "/jwks.json",
             "/realms/other/.well-known/openid-configuration", "/realms/other/.well-known/jwks.json")


@pytest.fixture
async def served(tmp_path, backend, unused_tcp_port_factory) -> AsyncIterator[str]:
    """`idp serve`'s serving loop (fastpath.serve) on a free port; yields its base URL."""
    port = unused_tcp_port_factory()
    config = write_config(tmp_path, backend, {"acme": ACME, "other": OTHER}, f"http://127.0.0.1:{port}")
    app = create_app(config, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    task = asyncio.create_task(fastpath.serve(app, "127.0.0.1", port))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(base + "/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        # the keys are read once by the aiohttp handler; the fast path serves them afterwards
        for path in ("/.well-known/jwks.json", "/realms/other/.well-known/jwks.json"):
            async with session.get(base + path) as response:
                assert response.status == 200
    yield base
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def serve_and_connect(tmp_path, backend, port: int, realms: dict[str, str] | None = None,
                            **serve_options: Any):
    """`fastpath.serve` of a fresh app as a task, and a connection to it once it listens."""
    realms = realms or {"acme": ACME, "other": OTHER}
    config = write_config(tmp_path, backend, realms, f"http://127.0.0.1:{port}")
    app = create_app(config, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    task = asyncio.create_task(fastpath.serve(app, "127.0.0.1", port, **serve_options))
    for _ in range(200):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            return task, reader, writer
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


async def raw(base: str, request: bytes, count: int = 1, *, expect_close: bool = False) -> bytes:
    """Send bytes on one connection; read until `count` whole responses came (and, with
    `expect_close`, until the server closes the connection)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    received = b""
    try:
        while expect_close or not complete(received, count):
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        raise AssertionError(f"no {'close' if expect_close else f'{count} responses'}: {received[:300]!r}") from None
    finally:
        writer.close()
    return received


def complete(data: bytes, count: int) -> bool:
    try:
        return len(responses(data)) >= count
    except (ValueError, IndexError):
        return False


def get(path: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: idp.test", *headers, "", ""]
    return "\r\n".join(lines).encode()


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Whole HTTP/1.1 responses with Content-Length bodies (what these endpoints send)."""
    out = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", 0)) if status != 304 else 0
        if len(rest) < length:
            break
        out.append((status, headers, rest[:length]))
        data = rest[length:]
    return out


async def test_documents_equal_the_aiohttp_answers(served, monkeypatch):
    """The same body, ETag, Cache-Control and Content-Type as the aiohttp handler gives
    (a query string sends the request to aiohttp; the handlers ignore it)."""
    answered: list[bytes] = []
    original = fastpath.Documents.answer

    def spy(self, parsed, *rest):
        answer = original(self, parsed, *rest)
        if answer is not None:
            answered.append(parsed.url)
        return answer

    monkeypatch.setattr(fastpath.Documents, "answer", spy)
    for path in DOCUMENTS:
        (fast,) = responses(await raw(served, get(path)))
        (slow,) = responses(await raw(served, get(path + "?via=aiohttp")))
        assert fast[0] == slow[0] == 200, path
        assert fast[2] == slow[2] and json.loads(fast[2]), path
        for name in ("etag", "cache-control", "content-type", "content-length", "server"):
            assert fast[1][name] == slow[1][name], (path, name)
        assert "date" in fast[1] and "x-request-id" in fast[1]
    assert answered == [p.encode() for p in DOCUMENTS]  # the fast path answered those, aiohttp the rest


async def test_conditional_and_head_requests(served):
    (first,) = responses(await raw(served, get("/.well-known/jwks.json")))
    etag = first[1]["etag"]
    (again,) = responses(await raw(served, get("/.well-known/jwks.json", f"If-None-Match: {etag}")))
    assert again[0] == 304 and again[2] == b"" and again[1]["etag"] == etag
    data = await raw(served, get("/.well-known/openid-configuration", "Connection: close", method="HEAD"), 0,
                     expect_close=True)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b""
    assert b"Content-Length: " in head


async def test_pipelined_requests_are_answered_in_order_across_the_hand_over(served):
    """Documents, then a token request, then a document again, in one write."""
    form = b"grant_type=client_credentials"
    token = (b"POST /token HTTP/1.1\r\nHost: idp.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             + f"Authorization: {basic_auth('worker', WORKER_SECRET)['Authorization']}\r\n".encode()
             + f"Content-Length: {len(form)}\r\n\r\n".encode() + form)
    data = await raw(served, get("/.well-known/openid-configuration") + get("/jwks.json") + token
                     + get("/realms/other/.well-known/openid-configuration"), 4)
    answers = responses(data)
    assert [a[0] for a in answers] == [200, 200, 200, 200]
    assert json.loads(answers[0][2])["issuer"] == served
    assert "keys" in json.loads(answers[1][2])
    assert "access_token" in json.loads(answers[2][2])
    assert json.loads(answers[3][2])["issuer"] == served + "/realms/other"


async def test_connection_close_http10_and_other_requests(served):
    data = await raw(served, get("/.well-known/openid-configuration", "Connection: close"), expect_close=True)
    assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data
    old = await raw(served, get("/.well-known/openid-configuration", version="1.0"), expect_close=True)
    assert old.startswith(b"HTTP/1.") and b" 200 " in old.split(b"\r\n")[0]
    (missing,) = responses(await raw(served, get("/realms/nope/.well-known/openid-configuration")))
    assert missing[0] == 404 and json.loads(missing[2])["error"] == "not_found"
    garbage = await raw(served, b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", expect_close=True)
    assert b" 400 " in garbage.split(b"\r\n")[0]  # aiohttp's answer to a head it refuses


async def test_request_ids_cors_and_metrics(served):
    (answer,) = responses(await raw(served, get("/.well-known/jwks.json", "X-Request-Id: lb-42",
                                                "Origin: https://app.example")))
    assert answer[1]["x-request-id"] == "lb-42" and answer[1]["access-control-allow-origin"] == "*"
    (generated,) = responses(await raw(served, get("/.well-known/jwks.json", 'X-Request-Id: has "quotes"')))
    assert len(generated[1]["x-request-id"]) == 32
    async with aiohttp.ClientSession() as session, session.get(served + "/metrics") as response:
        text = await response.text()
    counted = {(s.labels["route"], s.labels["status"]): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "http_requests_total" and s.labels["method"] == "GET"}
    assert counted[("/.well-known/jwks.json", "200")] >= 3  # the warm-up by aiohttp, then ours


async def test_a_silent_connection_is_closed_after_the_keepalive(tmp_path, backend, unused_tcp_port_factory):
    """As aiohttp's keepalive_timeout: an idle client does not hold a connection forever."""
    port = unused_tcp_port_factory()
    task, reader, writer = await serve_and_connect(tmp_path, backend, port, keepalive=0.3)
    try:
        writer.write(get("/.well-known/openid-configuration"))  # one answer, then silence
        data = await asyncio.wait_for(reader.read(65536), 10)
        assert data.startswith(b"HTTP/1.1 200")
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF once the keepalive passed
        assert rest == b"" or rest.startswith(b"{")  # the body may come in a second read
        writer.close()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_client_that_pipelines_without_reading_gets_every_answer_in_order(served):
    """Flow control: answers wait while the client does not read (the server stops
    answering instead of buffering without bound), and all come once it reads."""
    count = 3000
    host, port = served.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server must wait
    client.connect((host, int(port)))
    reader, writer = await asyncio.open_connection(sock=client)
    writer.write(get("/.well-known/openid-configuration") * count + get("/nope"))
    await writer.drain()
    await asyncio.sleep(0.5)  # the server fills the socket buffers and has to wait for us
    data = b""
    while b'"not_found"' not in data:
        chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
        assert chunk, "the server closed the connection"
        data += chunk
    writer.close()
    answers = responses(data)
    assert [a[0] for a in answers[:count]] == [200] * count
    assert answers[count][0] == 404  # and the hand-over after them still happens in order


def post(path: str, form: str, *headers: str, content_type: str = "application/x-www-form-urlencoded") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: idp.test", f"Content-Type: {content_type}",
             f"Content-Length: {len(form.encode())}", *headers, "", ""]
    return "\r\n".join(lines).encode() + form.encode()


WORKER = basic_auth("worker", WORKER_SECRET)["Authorization"]
BAD = basic_auth("worker", "not-the-secret")["Authorization"]
VARYING = ("date", "x-request-id", "content-length", "connection")  # differ per answer (or by `close`)


@pytest.fixture
def fast_answers(monkeypatch) -> list[str]:
    """The token and introspection requests the fast path answered itself (their paths,
    and `+store` for each introspection that waited on the store)."""
    answered: list[str] = []
    answer, later = fastposts.Posts.answer, fastposts._Call.introspect

    def spy(self, route, *rest):
        made = answer(self, route, *rest)
        if made is not None:
            answered.append(route[1].replace("/realms/{realm}", "/realms/" + route[0].name))
        return made

    async def spy_later(self, *args):
        answered.append("+store")
        return await later(self, *args)

    monkeypatch.setattr(fastposts.Posts, "answer", spy)
    monkeypatch.setattr(fastposts._Call, "introspect", spy_later)
    return answered


async def assert_same_answer(served: str, path: str, form: str, *headers: str, **options: str) -> None:
    """The request answered on a keep-alive connection (the fast path's, when it takes it)
    and with `Connection: close` (always aiohttp's): the same status, headers and body (a
    new access token aside). `options`: `post`'s."""
    (fast,) = responses(await raw(served, post(path, form, *headers, **options)))
    (slow,) = responses(await raw(served, post(path, form, *headers, "Connection: close", **options),
                                  expect_close=True))
    assert fast[0] == slow[0], (path, form, fast, slow)
    assert {k: v for k, v in fast[1].items() if k not in VARYING} == \
        {k: v for k, v in slow[1].items() if k not in VARYING}, (path, form)
    fast_body, slow_body = json.loads(fast[2]), json.loads(slow[2])
    if "access_token" in fast_body:
        fast_body["access_token"] = slow_body["access_token"] = "…"
    assert fast_body == slow_body, (path, form)
    assert int(fast[1]["content-length"]) == len(fast[2])
    assert "connection" not in fast[1] and len(fast[1]["x-request-id"]) == 32


async def issue(served: str) -> str:
    form = "grant_type=client_credentials"
    (issued,) = responses(await raw(served, post("/token", form, f"Authorization: {WORKER}")))
    return json.loads(issued[2])["access_token"]


async def test_introspection_equals_the_aiohttp_answers(served, fast_answers):
    """RFC 7662 §2.2 on the fast path, answer for answer against the endpoint's own
    (`Connection: close` sends a request to aiohttp): status, headers, body; what the fast
    path does not answer itself (errors, refresh tokens, other realms' rules) is aiohttp's
    on the same connection."""
    token = await issue(served)
    fast_answers.clear()
    cases = [
        ("/introspect", f"token={token}", f"Authorization: {WORKER}"),
        ("/realms/acme/introspect", f"token={token}&token_type_hint=access_token", f"Authorization: {WORKER}"),
        ("/introspect", "token=not-a-token", f"Authorization: {WORKER}"),
        ("/introspect", f"token={token[:-4]}AAAA", f"Authorization: {WORKER}"),
        ("/realms/other/introspect", f"token={token}", f"Authorization: {WORKER}"),
        ("/introspect", f"token={token}", f"Authorization: {BAD}"),
        ("/introspect", f"token={token}&token=x", f"Authorization: {WORKER}"),
        ("/introspect", "", f"Authorization: {WORKER}"),
        ("/introspect", "token=rt_abc", f"Authorization: {WORKER}"),
        ("/introspect", f"token={token}&client_id=worker&client_secret={WORKER_SECRET}"),
        ("/realms/nope/introspect", f"token={token}", f"Authorization: {WORKER}"),
        ("/introspect", f"token={token}", f"Authorization: {WORKER}", "Origin: https://web.example.com"),
    ]
    for case in cases:
        await assert_same_answer(served, *case)
    answered = [a for a in fast_answers if a != "+store"]
    assert answered == ["/introspect", "/realms/acme/introspect", "/introspect", "/introspect",
                        "/introspect"], answered  # the others (errors, refresh tokens, CORS) went to aiohttp
    statuses = [responses(await raw(served, post(p, f, *h)))[0][0] for p, f, *h in cases[4:8]]
    assert statuses == [401, 401, 400, 400]  # no such client in `other`, a bad secret, a repeated or no token
    assert json.loads(responses(await raw(served, post(*cases[0])))[0][2])["active"] is True


async def test_forms_with_media_type_parameters_take_the_fast_path(served, fast_answers):
    """RFC 6749 §4.4.2 and RFC 7662 §2.1 forms, as clients send them: Spring Security and
    axios add `;charset=UTF-8`, and media types are case-insensitive (RFC 9110 §8.3.1). The
    fast path answers them as the endpoints do; other types stay the endpoints' to refuse."""
    token = await issue(served)
    fast_answers.clear()
    forms = ("application/x-www-form-urlencoded;charset=UTF-8", "Application/X-WWW-Form-URLEncoded ; charset=utf-8")
    for content_type in forms:
        await assert_same_answer(served, "/token", "grant_type=client_credentials", f"Authorization: {WORKER}",
                                 content_type=content_type)
        await assert_same_answer(served, "/introspect", f"token={token}", f"Authorization: {WORKER}",
                                 content_type=content_type)
    assert [a for a in fast_answers if a != "+store"] == ["/token", "/introspect"] * len(forms)
    for other in ("text/plain", "application/x-www-form-urlencodedx", "multipart/form-data; boundary=x"):
        await assert_same_answer(served, "/token", "grant_type=client_credentials", f"Authorization: {WORKER}",
                                 content_type=other)
        (refused,) = responses(await raw(served, post("/token", "grant_type=client_credentials",
                                                      f"Authorization: {WORKER}", content_type=other)))
        assert refused[0] == 400 and json.loads(refused[2])["error"] == "invalid_request", other
    assert [a for a in fast_answers if a != "+store"] == ["/token", "/introspect"] * len(forms)


async def test_a_revoked_token_is_inactive_at_once_on_the_fast_path(served, fast_answers):
    """RFC 7009 §2.1 / RFC 7662 §2.2: revoked on this instance, inactive on the next
    introspection, although its "not revoked" state was cached a moment ago."""
    token = await issue(served)
    fast_answers.clear()
    intro = post("/introspect", f"token={token}", f"Authorization: {WORKER}")
    (first,) = responses(await raw(served, intro))
    (cached,) = responses(await raw(served, intro))
    assert json.loads(first[2])["active"] is True and json.loads(cached[2])["active"] is True
    assert fast_answers.count("+store") == 1  # the first read the revocation state, the second did not
    (revoked,) = responses(await raw(served, post("/revoke", f"token={token}", f"Authorization: {WORKER}")))
    (after,) = responses(await raw(served, intro))
    assert revoked[0] == 200 and json.loads(after[2]) == {"active": False}


async def test_introspection_pipelined_split_and_mixed_stays_in_order(served, fast_answers):
    """Introspections (one waiting on the store), a document and a request aiohttp takes,
    in one write; then one whose body comes in a later write: every answer, in order."""
    token, other = await issue(served), await issue(served)
    known = post("/introspect", f"token={token}", f"Authorization: {WORKER}")
    await raw(served, known)  # its revocation state is now cached; `other`'s is not
    unknown = post("/introspect", f"token={other}", f"Authorization: {WORKER}")
    data = await raw(served, known + unknown + get("/.well-known/openid-configuration") + known
                     + get("/realms/acme/userinfo") + get("/jwks.json"), 6)
    answers = responses(data)
    assert [a[0] for a in answers] == [200, 200, 200, 200, 401, 200]
    assert [json.loads(answers[i][2])["jti"] for i in (0, 1, 3)] == [
        json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "==="))["jti"] for t in (token, other, token)]
    assert "issuer" in json.loads(answers[2][2]) and "keys" in json.loads(answers[5][2])
    fast_answers.clear()
    host, port = served.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head, _, form = known.partition(b"\r\n\r\n")
    writer.write(head + b"\r\n\r\n" + form[:5])
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.write(form[5:] + known)
    received = b""
    while not complete(received, 2):
        received += await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert [json.loads(a[2])["active"] for a in responses(received)] == [True, True]
    assert fast_answers == ["/introspect", "/introspect"]


async def test_introspection_is_counted_and_identified(served):
    """The answer names the request id, and so does the request's access-log line."""
    import logging

    from engine.logs import REQUEST_ID

    seen: list[tuple[str, str | None]] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), REQUEST_ID.get()))

    access = logging.getLogger("engine.access")
    handler, level = Lines(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        token = await issue(served)
        (answer,) = responses(await raw(served, post("/realms/acme/introspect", f"token={token}",
                                                     f"Authorization: {WORKER}", "X-Request-Id: gw-7")))
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert answer[0] == 200 and answer[1]["x-request-id"] == "gw-7"
    assert [ids for line, ids in seen if line.startswith("POST /realms/{realm}/introspect 200")] == ["gw-7"]
    assert answer[1]["cache-control"] == "no-store" and answer[1]["pragma"] == "no-cache"
    async with aiohttp.ClientSession() as session, session.get(served + "/metrics") as response:
        text = await response.text()
    counted = {(s.labels["route"], s.labels["method"], s.labels["status"]): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "http_requests_total"}
    assert counted[("/realms/{realm}/introspect", "POST", "200")] >= 1


async def test_a_store_outage_is_a_503_and_a_bug_a_500_as_the_middleware_renders_them(served, monkeypatch):
    """As on the aiohttp path: 503 `temporarily_unavailable` for a store outage, a logged
    500 `server_error` for anything else, and the connection goes on; a failure past
    that (in writing the answer) is a 500 and a closed connection."""
    from engine.store.protocols import StoreUnavailable
    from engine.tokens.issue import TokenService

    token = await issue(served)
    intro = post("/introspect", f"token={token}", f"Authorization: {WORKER}")

    async def unavailable(self, realm, token):
        raise StoreUnavailable("redis: down")

    monkeypatch.setattr(TokenService, "verify_access_token", unavailable)
    (answer,) = responses(await raw(served, intro))
    assert answer[0] == 503 and json.loads(answer[2])["error"] == "temporarily_unavailable"

    async def broken(self, realm, token):
        raise RuntimeError("a bug")

    monkeypatch.setattr(TokenService, "verify_access_token", broken)
    answers = responses(await raw(served, intro + get("/jwks.json"), 2))
    assert [a[0] for a in answers] == [500, 200] and json.loads(answers[0][2])["error"] == "server_error"

    def unwritable(self, *args, **kwargs):
        raise RuntimeError("another bug")

    monkeypatch.setattr(fastposts._Call, "respond", unwritable)
    (answer,) = responses(await raw(served, intro, expect_close=True))
    assert answer[0] == 500 and json.loads(answer[2])["error"] == "server_error"


async def test_stopping_waits_for_the_introspection_waiting_on_the_store(tmp_path, backend, unused_tcp_port_factory,
                                                                         monkeypatch):
    """A shutdown (SIGTERM) lets an introspection already waiting on the store finish and
    be answered, then closes its connection."""
    from engine.tokens.issue import TokenService

    original = TokenService.verify_access_token
    started = asyncio.Event()

    async def slow(self, realm, token):
        started.set()
        await asyncio.sleep(0.5)
        return await original(self, realm, token)

    port = unused_tcp_port_factory()
    task, reader, writer = await serve_and_connect(tmp_path, backend, port)
    token = await issue(f"http://127.0.0.1:{port}")
    monkeypatch.setattr(TokenService, "verify_access_token", slow)
    writer.write(post("/introspect", f"token={token}", f"Authorization: {WORKER}"))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()  # as the signal handler's GracefulExit would
    data = await asyncio.wait_for(reader.read(), 10)  # the answer, then EOF
    writer.close()
    (answer,) = responses(data)
    assert answer[0] == 200 and json.loads(answer[2])["active"] is True
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_token_requests_equal_the_aiohttp_answers(served, fast_answers):
    """RFC 6749 §5.1/§5.2 on the fast path, answer for answer against the endpoint's own:
    status, headers (401 challenge, no-store), body; CORS requests and repeated parameters
    are aiohttp's."""
    cases = [
        ("/token", "grant_type=client_credentials&scope=videos.read", f"Authorization: {WORKER}"),
        ("/realms/acme/token", "grant_type=client_credentials&resource=photos-api", f"Authorization: {WORKER}"),
        ("/token", "grant_type=client_credentials", f"Authorization: {BAD}"),
        ("/token", "grant_type=client_credentials"),
        ("/token", "grant_type=password&username=a&password=b", f"Authorization: {WORKER}"),
        ("/token", "grant_type=client_credentials&scope=openid", f"Authorization: {WORKER}"),
        ("/token", "grant_type=client_credentials&resource=elsewhere", f"Authorization: {WORKER}"),
        ("/token", "", f"Authorization: {WORKER}"),
        ("/token", "grant_type=authorization_code&code=nope&redirect_uri=x&client_id=spa&code_verifier=" + "v" * 43),
        ("/token", "grant_type=refresh_token&refresh_token=rt_nope&client_id=spa"),
        ("/realms/other/token", "grant_type=client_credentials", f"Authorization: {WORKER}"),
        ("/token", "grant_type=client_credentials&scope=x&scope=y", f"Authorization: {WORKER}"),
        ("/token", "grant_type=client_credentials", f"Authorization: {WORKER}", "Origin: https://web.example.com"),
    ]
    for case in cases:
        await assert_same_answer(served, *case)
    assert fast_answers == [c[0] for c in cases[:-2]]  # the last two went to aiohttp
    statuses = [responses(await raw(served, post(p, f, *h)))[0][0] for p, f, *h in cases[:-1]]
    assert statuses == [200, 200, 401, 401, 400, 400, 400, 400, 400, 400, 401, 400]
    (challenge,) = responses(await raw(served, post(*cases[2])))
    assert challenge[1]["www-authenticate"] == 'Basic realm="acme"'


async def test_a_store_outage_on_the_token_path_is_a_503(served, monkeypatch):
    from engine.store.protocols import StoreUnavailable
    from engine.tokens.issue import TokenService

    async def unavailable(self, *args, **kwargs):
        raise StoreUnavailable("postgres: down")

    monkeypatch.setattr(TokenService, "access_token", unavailable)
    data = await raw(served, post("/token", "grant_type=client_credentials", f"Authorization: {WORKER}")
                     + post("/token", "grant_type=client_credentials", f"Authorization: {WORKER}"), 2)
    answers = responses(data)
    assert [a[0] for a in answers] == [503, 503]  # and the connection goes on
    assert json.loads(answers[0][2])["error"] == "temporarily_unavailable"
    assert answers[0][1]["cache-control"] == "no-store"


async def test_a_client_gone_while_its_request_waits_on_the_store(tmp_path, backend, unused_tcp_port_factory,
                                                                   monkeypatch, caplog):
    """The request still completes (its effects stand), nothing is written to the closed
    connection and nothing is logged as an error; the server goes on serving."""
    from engine.tokens.issue import TokenService

    original = TokenService.verify_access_token
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(self, realm, token):
        started.set()
        await asyncio.sleep(0.3)
        try:
            return await original(self, realm, token)
        finally:
            finished.set()

    port = unused_tcp_port_factory()
    task, reader, writer = await serve_and_connect(tmp_path, backend, port)
    try:
        base = f"http://127.0.0.1:{port}"
        token = await issue(base)
        monkeypatch.setattr(TokenService, "verify_access_token", slow)
        writer.write(post("/introspect", f"token={token}", f"Authorization: {WORKER}"))
        await asyncio.wait_for(started.wait(), 10)
        writer.close()  # gone before the answer
        await asyncio.wait_for(finished.wait(), 10)
        await asyncio.sleep(0.1)
        monkeypatch.setattr(TokenService, "verify_access_token", original)
        (answer,) = responses(await raw(base, post("/introspect", f"token={token}", f"Authorization: {WORKER}")))
        assert answer[0] == 200 and json.loads(answer[2])["active"] is True
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_token_rate_limit_holds_on_the_fast_path(tmp_path, backend, unused_tcp_port_factory):
    """Seed security musts: `/token` is rate-limited per address; over the limit, 429
    with `Retry-After` (RFC 6585 §4), as the aiohttp endpoint answers it."""
    port = unused_tcp_port_factory()
    limited = ACME + "rate_limits:\n  token_per_ip: {requests: 2}\n"
    task, reader, writer = await serve_and_connect(tmp_path, backend, port, {"acme": limited, "other": OTHER})
    writer.close()
    try:
        base = f"http://127.0.0.1:{port}"
        request = post("/token", "grant_type=client_credentials", f"Authorization: {WORKER}")
        answers = responses(await raw(base, request * 3, 3))
        assert [a[0] for a in answers] == [200, 200, 429]
        assert json.loads(answers[2][2])["error"] and int(answers[2][1]["retry-after"]) >= 1
        assert answers[2][1]["cache-control"] == "no-store"
        (slow,) = responses(await raw(base, post("/token", "grant_type=client_credentials",
                                                 f"Authorization: {WORKER}", "Connection: close"), expect_close=True))
        assert slow[0] == 429 and set(slow[1]) - set(VARYING) == set(answers[2][1]) - set(VARYING)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
