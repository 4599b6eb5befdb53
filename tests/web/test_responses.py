"""Response helpers of the request middleware (engine.web.middleware)."""

from __future__ import annotations


def test_no_store_json_is_aiohttps_json_response():
    """The hot paths' JSON answer: the document and headers `web.json_response` gives
    (RFC 6749 §5.1: `Cache-Control: no-store`, `Pragma: no-cache`), as compact UTF-8 JSON
    (RFC 8259 §8.1)."""
    import json

    from aiohttp import web

    from engine.web.middleware import NO_STORE, no_store_json

    body = {"access_token": "a.b.c", "token_type": "Bearer", "expires_in": 600, "scope": "x y", "ü": "é"}
    fast, slow = no_store_json(body), web.json_response(body, headers=NO_STORE)
    assert json.loads(fast.body) == json.loads(slow.body) == body and fast.status == slow.status == 200
    assert fast.body.decode("utf-8") == json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert {**fast.headers, "Content-Length": ""} == {**slow.headers, "Content-Length": ""}
    fast.headers["X-Request-Id"] = "r-1"  # as the middleware does: it must not reach the next response
    assert "X-Request-Id" not in no_store_json(body).headers
