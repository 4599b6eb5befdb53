"""Structured logs: one JSON object per line (or readable text on a terminal), each
record of a request carrying that request's id.

The request id lives in a `ContextVar` set by the request middleware
(`engine.web.middleware`), so every log record emitted while serving the request, in any
module, gets it without being passed around; `asyncio.to_thread` copies the context, so
work in threads has it too.

Nothing secret belongs in a log message, and none is written on purpose. Libraries that
log what they send at DEBUG (aiosqlite logs every statement with its parameters: password
hashes, encrypted signing keys, token hashes) are held at INFO whatever level is asked
(`QUIET_LIBRARIES`). As a last line of defence the formatters mask anything shaped like a
token (JWTs, `rt_` refresh tokens), an argon2 hash, and the value of secret-looking
`name=value` pairs.

The access log (one line per request) is written by `AccessLog` once `setup_logging` has
configured a process: the line is preformatted from values that cannot hold a secret (a
route template, a method, a status, a duration, the peer address, a sanitised request id)
and written in batches, at most `AccessLog.FLUSH_AFTER` seconds late, so it costs a few
microseconds instead of a `LogRecord`, four redaction passes and a write per request.
Where `setup_logging` was not called (tests that attach their own handlers), access lines
are ordinary records of the `engine.access` logger.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import logging
import os
import re
import secrets
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("tessera_request_id", default=None)

# An incoming X-Request-Id is kept when it is short and plain (it ends up in logs).
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")

_SECRET_NAMES = (
    r"password|passwd|secret|client_secret|code|code_verifier|refresh_token|access_token"
    r"|id_token|id_token_hint|token|csrf|authorization"
)
_SECRETS = (
    (re.compile(r"\$argon2(?:id|i|d)\$[^\s'\",)]*"), "[argon2-hash]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[jwt]"),
    (re.compile(r"\brt_[A-Za-z0-9_-]{8,}"), "rt_[redacted]"),
    # form and query pairs: password=..., code=...
    (re.compile(rf"(?i)\b({_SECRET_NAMES})=(?!\[redacted\])[^\s&,;\"']+"), r"\1=[redacted]"),
    # dict and JSON reprs: 'password': '...', "client_secret": "..."
    (re.compile(rf"(?i)([\"'])({_SECRET_NAMES})\1(\s*:\s*)([\"']).*?\4"), r"\1\2\1\3\4[redacted]\4"),
)

# Loggers of libraries that write statements, commands or requests with their parameters
# at DEBUG: aiosqlite (every call with its arguments), asyncpg, redis-py (commands and
# connection details), aiohttp's client, aiosmtplib (the SMTP dialogue, AUTH included).
# Their DEBUG output is for debugging those libraries, and it carries our secrets.
QUIET_LIBRARIES = ("aiosqlite", "asyncpg", "redis", "aiohttp.client", "aiosmtplib", "asyncio")

# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def current_request_id() -> str | None:
    return REQUEST_ID.get()


def new_request_id() -> str:
    """32 hex characters: a random per-process prefix and a counter. Unique across
    processes and restarts without a system call per request (request ids are for
    correlation, never for authorisation, so they need not be unpredictable)."""
    return f"{_id_prefix}{next(_id_counter):016x}"


def _new_id_sequence() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = secrets.token_hex(8), itertools.count(1)


_id_prefix, _id_counter = "", itertools.count(1)
_new_id_sequence()
os.register_at_fork(after_in_child=_new_id_sequence)  # each worker its own prefix


def accept_request_id(incoming: str | None) -> str:
    """The caller's `X-Request-Id` if it is sane, else a fresh one."""
    if incoming and _SANE_REQUEST_ID.match(incoming):
        return incoming
    return new_request_id()


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "pid", "request_id"?, <extra fields>, "exception"?}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.rid = f" [{request_id}]" if request_id else ""
        return redact(super().format(record))


def default_format(stream: TextIO | None = None) -> str:
    """json, unless a person is watching (a TTY)."""
    stream = stream or sys.stderr
    return "text" if hasattr(stream, "isatty") and stream.isatty() else "json"


def setup_logging(log_format: str | None = None, level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Configure the root logger for a process (`idp serve`, its workers, other commands)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if (log_format or default_format(stream)) == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    floor = max(logging.INFO, logging.getLevelName(level.upper()) if isinstance(level, str) else level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(floor)
    global _access
    if _access is not None:
        _access.flush()
    _access = AccessLog(stream, log_format or default_format(stream))


class AccessLog:
    """One line per request, written in batches to the log stream, in the configured
    format (the same fields and shape as the formatters give). A request only appends its
    fields; the lines are formatted together when the batch is written (every
    `FLUSH_AFTER` seconds or `MAX_BATCH` requests, and at exit)."""

    FLUSH_AFTER = 0.1  # seconds a line may wait for its batch
    MAX_BATCH = 512

    def __init__(self, stream: TextIO, log_format: str) -> None:
        self.stream = stream
        self.json = log_format == "json"
        self.pending: list[tuple[float, str | None, str, str, int, float, str | None]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.pid = os.getpid()
        self._second = -1
        self._stamp = ""
        # The constant parts of a line per (method, route, status), JSON-escaped once: routes
        # are route templates and methods HTTP tokens, so the set stays small (bounded anyway).
        self._parts: dict[tuple[str, str, int], tuple[str, str]] = {}

    def write(self, method: str, route: str, status: int, seconds: float, remote: str | None) -> None:
        pending = self.pending
        pending.append((time.time(), REQUEST_ID.get(), method, route, status, seconds, remote))
        if len(pending) >= self.MAX_BATCH:
            self.flush()
        elif self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(self.FLUSH_AFTER, self.flush)
            except RuntimeError:  # no event loop: write now
                self.flush()

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pending:
            batch, self.pending = self.pending, []
            try:
                self.stream.write(self.lines(batch))
                self.stream.flush()
            except (OSError, ValueError):  # a closed stream must not fail the request
                pass

    def lines(self, batch: list[tuple[float, str | None, str, str, int, float, str | None]]) -> str:
        """The batch's lines, one per request (request ids are admitted only in
        [A-Za-z0-9._:/+=-], so they are written as they are)."""
        out = []
        parts_of, stamp_of = self._parts, self._stamp_of
        json_format, pid = self.json, self.pid
        for now, request_id, method, route, status, seconds, remote in batch:
            second = int(now)
            stamp = self._stamp if second == self._second else stamp_of(second)
            millis = int((now - second) * 1000)
            parts = parts_of.get((method, route, status)) or self._fragments(method, route, status)
            if json_format:
                duration = f"{seconds * 1000:.2f}"
                out.append(f'{{"time": "{stamp}.{millis:03d}+00:00", {parts[0]}{duration}ms", "pid": {pid}, '
                           + (f'"request_id": "{request_id}", ' if request_id is not None else "")
                           + f'{parts[1]}{duration}, "remote": '
                           + (f'"{remote}"}}\n' if remote is not None and _PLAIN.fullmatch(remote)
                              else f"{json.dumps(remote)}}}\n"))
            else:
                rid = f" [{request_id}]" if request_id else ""
                out.append(f"{stamp},{millis:03d} INFO engine.access{rid}: {parts[0]}{seconds * 1000:.2f}ms\n")
        return "".join(out)

    def _stamp_of(self, second: int) -> str:
        self._second = second
        if self.json:
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        else:
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return self._stamp

    def _fragments(self, method: str, route: str, status: int) -> tuple[str, str]:
        if len(self._parts) >= 4096:
            self._parts.clear()
        if self.json:
            message = json.dumps(f"{method} {route} {status} ")[:-1]  # the line adds "<ms>ms" and the quote
            head = f'"level": "info", "logger": "engine.access", "message": {message}'
            tail = f'"method": {json.dumps(method)}, "route": {json.dumps(route)}, "status": {status}, "duration_ms": '
            parts = (head, tail)
        else:
            parts = (f"{method} {route} {status} ", "")
        self._parts[(method, route, status)] = parts
        return parts


_PLAIN = re.compile(r"[0-9A-Za-z.:%\[\]-]*")  # an address as the transport gives it: no JSON escaping needed
_access: AccessLog | None = None


def access_log_writer() -> AccessLog | None:
    """The process's access-log writer, once `setup_logging` made one."""
    return _access


@atexit.register
def _flush_access_log() -> None:
    if _access is not None:
        _access.flush()
