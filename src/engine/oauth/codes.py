"""Authorization codes in the ephemeral store (RFC 6749 §4.1.2): what `/authorize` keeps
and the code grant takes. Only the SHA-256 of a code is ever a key; the value is

    {client_id, redirect_uri, redirect_uri_sent, scope, user_id, auth_time, exp,
     nonce?, code_challenge?, session_id?, resource?, issued}

`issued` is the precise issue time: a code issued before the user's sessions were ended
(a password reset) is refused (engine.oauth.grants.common.live_user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.batch import WriteBatch

if TYPE_CHECKING:
    from engine.services import Services


def code_key(realm: str, code_hash: str) -> str:
    return f"{realm}:code:{code_hash}"


def used_code_key(realm: str, code_hash: str) -> str:
    return f"{realm}:code_used:{code_hash}"


def issue_code(services: Services, realm: Realm, grant: dict[str, Any], writes: WriteBatch) -> str:
    """A new single-use code for `grant` (stored when `writes` is committed)."""
    code = random_token(32)
    lifetime = int(realm.config.lifetimes.auth_code.total_seconds())
    value = {**grant, "exp": services.clock.timestamp() + lifetime, "issued": services.clock.now().timestamp()}
    writes.put(code_key(realm.name, sha256_hex(code)), value, lifetime + 5)
    return code
