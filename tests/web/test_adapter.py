"""The aiohttp adapter of the protocol core (engine.web.adapter): an `Answer` becomes the
response it describes, cookies included (issue 17 item 2)."""

from __future__ import annotations

from engine.exchange import NO_STORE_HEADERS, Answer, Cookie
from engine.web.adapter import response


def test_an_answer_becomes_its_response():
    answer = Answer(201, b"{}", NO_STORE_HEADERS,
                    (Cookie("sid", "abc", max_age=60, secure=True), Cookie("gone", "", path="/x", max_age=0)))
    result = response(answer)
    assert result.status == 201
    assert result.body == b"{}"
    assert result.headers["Cache-Control"] == "no-store"
    sid = result.cookies["sid"]
    assert sid.value == "abc"
    assert sid["max-age"] == "60" and sid["path"] == "/" and sid["samesite"] == "Lax"
    assert sid["secure"] and sid["httponly"]  # RFC 6265 §4.1.2.5-6
    assert result.cookies["gone"]["max-age"] == "0" and result.cookies["gone"]["path"] == "/x"


def test_an_answer_without_a_body_has_none():
    """RFC 9110 §15.4.5: a 304 carries no content."""
    result = response(Answer(304, None, NO_STORE_HEADERS))
    assert result.status == 304 and result.body is None
