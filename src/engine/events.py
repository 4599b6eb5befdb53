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
TOKEN_EXCHANGED = "token_exchanged"
# second factors (issue 20, engine.accounts.mfa)
MFA_VERIFIED = "mfa_verified"  # data: method (totp, recovery_code, passkey)
MFA_FAILED = "mfa_failed"  # data: method, reason
TOTP_ENROLLED = "totp_enrolled"
TOTP_REMOVED = "totp_removed"
RECOVERY_CODES_GENERATED = "recovery_codes_generated"
RECOVERY_CODE_USED = "recovery_code_used"
MFA_RESET = "mfa_reset"  # every factor of a user removed by an operator
MFA_TYPES = frozenset({MFA_VERIFIED, MFA_FAILED, TOTP_ENROLLED, TOTP_REMOVED, RECOVERY_CODES_GENERATED,
                       RECOVERY_CODE_USED, MFA_RESET})

# Every type the engine records (its modules name their own; tests/test_events.py checks
# that each `audit(...)` call in the engine uses one of these). `idp audit --type` accepts
# these and any type already recorded (a plugin's).
ENGINE_TYPES = frozenset({
    LOGIN, LOGIN_FAILED, LOCKOUT, LOGOUT, TOKEN_ISSUED, REFRESH_REUSE_DETECTED, CODE_REPLAY_DETECTED,
    REVOCATION, IDENTITY_LINKED, USER_PROVISIONED, KEY_CREATED, KEY_ROTATED, CONFIG_RELOADED, TOKEN_EXCHANGED,
    "email_verified", "email_verification_sent", "password_cleared",
    "identities_unlinked", "federation_refused", "user_registered", "registration_existing_email",
    "password_reset_requested", "password_reset", "user_created", "user_disabled", "user_enabled",
    "user_deleted", "sessions_revoked", "password_reset_link_issued", "unverified_account_removed",
    "device_approved", "device_denied",  # RFC 8628 §3.3 the user's answer on the confirmation page
    # passkeys (issue 20, engine.accounts.passkey_enrolment and passkey_sign_in)
    "passkey_added", "passkey_renamed", "passkey_removed", "passkey_failed",
}) | MFA_TYPES


@dataclass(frozen=True)
class Event:
    realm: str
    type: str
    at: datetime
    user_id: str | None = None
    client_id: str | None = None
    ip: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
