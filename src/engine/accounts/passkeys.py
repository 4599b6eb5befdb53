"""Passkeys (issue 20): the WebAuthn relying-party ceremonies, on the `webauthn` package
(py_webauthn), framework-free.

WebAuthn Level 3 (https://www.w3.org/TR/webauthn-3/):

- Registration (§7.1) and authentication (§7.2) options and verification are py_webauthn's;
  this module decides the relying party's choices: RP ID = the host of `base_url`, the one
  expected origin = the origin of `base_url` (§5.1.3 RP ID, §13.4.9 origin validation);
  discoverable credentials (resident key required, §5.4.6) so that a sign-in names no user;
  user verification required (§6.2.3) at registration and at every sign-in; no attestation
  (`none`, §5.4.7: a passkey is trusted because its owner enrolled it, not for its maker).
- Challenges (§13.4.3): 32 random bytes, kept in the ephemeral store under a random
  ceremony id for `CEREMONY_SECONDS`, taken (single use) by the verification, and bound to
  what started it: the browser session (enrolment), the authorization flow (first-factor
  sign-in) or the pending second factor (engine.accounts.mfa), each itself bound to this
  browser by its cookie.
- The signature counter (§6.1.1): a counter that does not grow past the stored one is
  refused (a cloned authenticator), and the new one is recorded compare-and-set, so two
  sign-ins verified against the same stored counter cannot both pass.

The user handle (§5.4.3) is the user's id (an opaque random `usr_…`, no personal data).
"""

from __future__ import annotations

import json
import secrets
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.config.models import origin_of
from engine.errors import InvalidRequest
from engine.secrets_util import random_token
from engine.store import AlreadyExists, User, WebAuthnCredential

with warnings.catch_warnings():  # pyOpenSSL, which py_webauthn imports, warns about DSA at import
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import webauthn
    from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        AuthenticatorTransport,
        CredentialDeviceType,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

if TYPE_CHECKING:
    from engine.realm import Realm
    from engine.services import Services

CEREMONY_SECONDS = 300  # a challenge is good for this long (the browser is told 2 minutes)
BROWSER_TIMEOUT_MS = 120_000
MAX_NAME = 64  # a passkey's name, as the user types it
MAX_CREDENTIAL_JSON = 16_384  # a registration response with its attestation object fits easily
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class PasskeyFailed(InvalidRequest):
    """The authenticator's answer could not be verified (or its ceremony is unknown, used,
    expired, or was started elsewhere). `reason` goes to the log and the audit event."""

    def __init__(self, reason: str, description: str = "the passkey could not be verified; try again",
                 user_id: str | None = None) -> None:
        super().__init__(description)
        self.reason = reason
        self.user_id = user_id  # the key's owner, once the key is known (a clone is the owner's business)


@dataclass(frozen=True)
class SignedIn:
    """A verified passkey sign-in: whose, with which key, and the RFC 8176 methods it proves."""

    credential: WebAuthnCredential
    user_id: str
    method_amr: list[str]  # ["hwk" | "swk", "user"]


def rp_id(services: Services) -> str:
    """The relying party id: the host of the base URL (§5.1.3; never an IP address)."""
    return urlsplit(services.runtime.config.server.base_url).hostname or ""


def expected_origin(services: Services) -> str:
    return origin_of(services.runtime.config.server.base_url) or ""


def enabled(realm: Realm) -> bool:
    """Passkeys are offered in this realm (`mfa.passkeys` is not `off`)."""
    return realm.config.mfa.passkeys != "off"


def _key(realm: Realm, ceremony: str) -> str:
    return f"{realm.name}:passkey-ceremony:{ceremony}"


async def _remember(services: Services, realm: Realm, purpose: str, bound_to: str, challenge: bytes,
                    **extra: Any) -> str:
    ceremony = random_token(24)
    record = {"purpose": purpose, "bound_to": bound_to, "challenge": bytes_to_base64url(challenge),
              "exp": services.clock.timestamp() + CEREMONY_SECONDS, **extra}
    await services.ephemeral.put(_key(realm, ceremony), record, CEREMONY_SECONDS)
    return ceremony


async def _take(services: Services, realm: Realm, ceremony: str, purpose: str, bound_to: str) -> dict[str, Any]:
    """The ceremony's record, used up; PasskeyFailed unless it is this one's and alive."""
    if not ceremony or len(ceremony) > 64:
        raise PasskeyFailed("no_ceremony")
    record = await services.ephemeral.take(_key(realm, ceremony))
    if record is None or record["exp"] <= services.clock.timestamp():
        raise PasskeyFailed("ceremony_expired", "the passkey request has expired or was used already; try again")
    if record["purpose"] != purpose or record["bound_to"] != bound_to:
        raise PasskeyFailed("ceremony_elsewhere", "the passkey request was started on another page; try again")
    return record


def _options(options: Any, ceremony: str) -> dict[str, Any]:
    """What the script is given: the ceremony id and the `publicKey` options (WebAuthn
    Level 3 JSON: binary fields as base64url)."""
    return {"ceremony": ceremony, "publicKey": json.loads(webauthn.options_to_json(options))}


def _descriptor(credential: WebAuthnCredential) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in credential.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential.credential_id), transports=transports or None)


def _parsed(credential_json: str) -> dict[str, Any]:
    if not credential_json or len(credential_json) > MAX_CREDENTIAL_JSON:
        raise PasskeyFailed("malformed")
    try:
        value = json.loads(credential_json)
    except ValueError:
        raise PasskeyFailed("malformed") from None
    if not isinstance(value, dict):
        raise PasskeyFailed("malformed")
    return value


# registration (§7.1)


async def registration_options(services: Services, realm: Realm, user: User,
                               existing: list[WebAuthnCredential], *, bound_to: str) -> dict[str, Any]:
    """Options for `navigator.credentials.create()`: a discoverable credential with user
    verification for `user`, none of the `existing` ones again (§5.4.3 excludeCredentials)."""
    challenge = random_token_bytes()
    options = webauthn.generate_registration_options(
        rp_id=rp_id(services), rp_name=realm.display_name, user_id=user.id.encode(),
        user_name=user.email or user.id, user_display_name=user.profile.get("name") or user.email or user.id,
        challenge=challenge, timeout=BROWSER_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[_descriptor(c) for c in existing],
    )
    ceremony = await _remember(services, realm, "register", bound_to, challenge, user_id=user.id)
    return _options(options, ceremony)


async def register(services: Services, realm: Realm, user_id: str, ceremony: str, credential_json: str,
                   name: str, *, bound_to: str) -> tuple[WebAuthnCredential, list[str]]:
    """Verify the authenticator's answer (§7.1) and store the new passkey under `name`;
    the passkey, and the RFC 8176 methods its registration proved (as `SignedIn.method_amr`)."""
    record = await _take(services, realm, ceremony, "register", bound_to)
    if record.get("user_id") != user_id:
        raise PasskeyFailed("ceremony_elsewhere")
    credential = _parsed(credential_json)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=base64url_to_bytes(record["challenge"]),
            expected_rp_id=rp_id(services), expected_origin=expected_origin(services),
            require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyFailed(f"registration: {exc}") from None
    transports = credential.get("response", {}).get("transports") or []
    passkey = WebAuthnCredential(
        realm=realm.name, credential_id=bytes_to_base64url(verified.credential_id), user_id=user_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count,
        transports=tuple(t for t in transports if isinstance(t, str) and t in _TRANSPORTS),
        aaguid=verified.aaguid, name=clean_name(name) or "Passkey", created_at=services.clock.now())
    try:
        await services.durable.add_passkey(passkey)
    except AlreadyExists:
        raise PasskeyFailed("duplicate", "this passkey is registered already") from None
    return passkey, [_key_amr(verified.credential_device_type), "user"]


# authentication (§7.2)


async def authentication_options(services: Services, realm: Realm, *, bound_to: str, purpose: str,
                                 allow: list[WebAuthnCredential] | None = None) -> dict[str, Any]:
    """Options for `navigator.credentials.get()`. Without `allow`, any discoverable
    credential of this RP (the first-factor sign-in names no user); with it, one of those
    (the second factor: the user is known)."""
    challenge = random_token_bytes()
    options = webauthn.generate_authentication_options(
        rp_id=rp_id(services), challenge=challenge, timeout=BROWSER_TIMEOUT_MS,
        allow_credentials=[_descriptor(c) for c in allow] if allow else None,
        user_verification=UserVerificationRequirement.REQUIRED)
    ceremony = await _remember(services, realm, purpose, bound_to, challenge)
    return _options(options, ceremony)


async def authenticate(services: Services, realm: Realm, ceremony: str, credential_json: str, *, purpose: str,
                       bound_to: str, user_id: str | None = None) -> SignedIn:
    """Verify an assertion (§7.2): the ceremony is this browser's and unused, the
    credential is registered (to `user_id`, when given), the user handle names its owner,
    the signature verifies, the user was verified, the counter grew; then record the use."""
    record = await _take(services, realm, ceremony, purpose, bound_to)
    credential = _parsed(credential_json)
    credential_id = credential.get("rawId") or credential.get("id")
    if not isinstance(credential_id, str) or len(credential_id) > 1400:
        raise PasskeyFailed("malformed")
    stored = await services.durable.find_passkey(realm.name, credential_id)
    if stored is None or (user_id is not None and stored.user_id != user_id):
        raise PasskeyFailed("unknown_credential", "this passkey is not registered here (or was removed)")
    handle = (credential.get("response") or {}).get("userHandle")
    if handle and _handle_of(handle) != stored.user_id:
        raise PasskeyFailed("user_handle", user_id=stored.user_id)
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=base64url_to_bytes(record["challenge"]),
            expected_rp_id=rp_id(services), expected_origin=expected_origin(services),
            credential_public_key=stored.public_key, credential_current_sign_count=stored.sign_count,
            require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        reason = "sign_count" if "sign count" in str(exc).lower() else "assertion"
        raise PasskeyFailed(f"{reason}: {exc}", user_id=stored.user_id) from None
    recorded = await services.durable.use_passkey(
        realm.name, stored.credential_id, expect_sign_count=stored.sign_count,
        sign_count=verified.new_sign_count, now=services.clock.now())
    if not recorded:  # another sign-in with this counter got there first: one of them is a clone
        raise PasskeyFailed("sign_count: concurrent use", user_id=stored.user_id)
    # RFC 8176: a device-bound key is hardware-held (hwk); a synced (backup-eligible) one
    # is not tied to one device (swk). "user": the authenticator verified its user (§6.2.3;
    # the UV flag does not say whether by PIN or biometrics, so nothing narrower is claimed).
    return SignedIn(credential=stored, user_id=stored.user_id,
                    method_amr=[_key_amr(verified.credential_device_type), "user"])


def _key_amr(device_type: CredentialDeviceType) -> str:
    return "hwk" if device_type == CredentialDeviceType.SINGLE_DEVICE else "swk"


def _handle_of(value: str) -> str | None:
    try:
        return base64url_to_bytes(value).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def clean_name(name: str) -> str:
    """A passkey's name as stored: printable, single-spaced, at most `MAX_NAME` characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in name or "")
    return " ".join(printable.split())[:MAX_NAME]


def random_token_bytes() -> bytes:
    return secrets.token_bytes(32)
