"""Audit events: what happened, to whom, from where, never with a secret in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOCKOUT = "lockout"
LOGOUT = "logout"
TOKEN_ISSUED = "token_issued"
REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
CODE_REPLAY_DETECTED = "code_replay_detected"
REVOCATION = "revocation"
IDENTITY_LINKED = "identity_linked"
USER_PROVISIONED = "user_provisioned"
KEY_CREATED = "key_created"
KEY_ROTATED = "key_rotated"
CONFIG_RELOADED = "config_reloaded"


@dataclass(frozen=True)
class Event:
    realm: str
    type: str
    at: datetime
    user_id: str | None = None
    client_id: str | None = None
    ip: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
