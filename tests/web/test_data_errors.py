"""A value the database refuses (PostgreSQL: NUL in text, an untranslatable character in
jsonb; asyncpg's `DataError` family) is the client's bad input, not a server fault: 400
`invalid_request` without a traceback in the log, never a 500 (issue 23 item 8). Input
checks (engine.oauth.params) stop such values first; this is the backstop."""

from __future__ import annotations

import logging

import asyncpg

from engine.web.middleware import protocol_error


def test_a_refused_value_is_invalid_request_not_a_500(caplog):
    caplog.set_level(logging.WARNING, "engine.web")
    for exc in (asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence for encoding UTF8: 0x00"),
                asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence")):
        error = protocol_error(exc, "POST", "/register")
        assert (error.status, error.error) == (400, "invalid_request")
    assert caplog.records and all(record.exc_info is None for record in caplog.records)
    assert all(record.levelno == logging.WARNING for record in caplog.records)
