"""Passwords (issue 4 of the issue's list, rule 4): argon2id with OWASP parameters by
default (m=19 MiB, t=2, p=1), parameters a realm setting, rehash on login when they
change; hashers are plugins, so a verify-only hasher (PBKDF2 from an imported user base)
upgrades a user to argon2id at their next login. Policy per NIST SP 800-63B §3.1.1.2:
minimum length (8), long passphrases allowed, no composition rules, a bundled list of
common passwords refused. Hashing never blocks the event loop."""

from __future__ import annotations

import threading
import unicodedata

import pytest

from engine import hookimpl
from engine.plugins import Plugins
from plugins.password.hasher import Argon2Hasher
from plugins.password.pbkdf2 import Pbkdf2Sha256Hasher, django_hash
from plugins.password.policy import common_passwords, password_problem
from tests.accounts.conftest import PASSWORD
from tests.accounts.helpers import register
from tests.oauth.flow import authorize, login_for_code, submit_login


async def stored_hash(idp, email="alice@example.com") -> str:
    user = await idp.services.accounts.by_email("acme", email)
    return await idp.services.accounts.password_hash("acme", user.id)


def test_argon2id_defaults_are_owasps():
    """Rule 4: argon2id, m=19456 KiB (19 MiB), t=2, p=1 unless the realm says otherwise."""
    assert Argon2Hasher().hash("x" * 12).startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_realm_argon2_parameters_are_used(idp):
    """Rule 4: the realm's `argon2:` parameters (cheap ones in this test realm)."""
    await idp.add_user()
    assert (await stored_hash(idp)).startswith("$argon2id$v=19$m=1024,t=1,p=1$")


async def test_login_rehashes_when_the_parameters_changed(idp):
    """Rule 4: a hash made with other parameters is replaced at the next successful login."""
    user = await idp.add_user(password=PASSWORD)
    old = Argon2Hasher(memory_cost=2048, time_cost=1, parallelism=1).hash(PASSWORD)
    await idp.services.accounts.set_password_hash("acme", user.id, old)
    code, _v, _q = await login_for_code(idp, "alice@example.com", PASSWORD)
    assert code and (await stored_hash(idp)).startswith("$argon2id$v=19$m=1024,t=1,p=1$")


async def test_imported_pbkdf2_user_is_upgraded_to_argon2id_at_next_login(idp):
    """Rule 4: the verify-only PBKDF2-SHA256 hasher (Django's format) lets an imported
    user sign in with the old password; the hash becomes argon2id; a wrong password
    changes nothing."""
    user = await idp.add_user(password=None)
    imported = django_hash(PASSWORD, "importsalt1234", iterations=1000)
    await idp.services.accounts.set_password_hash("acme", user.id, imported)
    resp, _ = await authorize(idp)
    assert (await submit_login(idp, resp.headers["Location"], "alice@example.com", "not it at all")).status == 400
    assert await stored_hash(idp) == imported
    code, _v, _q = await login_for_code(idp, "alice@example.com", PASSWORD)
    assert code and (await stored_hash(idp)).startswith("$argon2id$")
    idp.clock.advance(1)
    code, _v, _q = await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login")
    assert code  # and the new hash verifies


def test_pbkdf2_hasher_is_verify_only_and_checks_django_hashes():
    hasher = Pbkdf2Sha256Hasher()
    stored = django_hash("s3cret passphrase", "salt", iterations=1000)
    assert hasher.identifies(stored) and not hasattr(hasher, "hash")
    assert hasher.verify(stored, "s3cret passphrase") and not hasher.verify(stored, "s3cret passphrasE")
    assert not hasher.verify("pbkdf2_sha256$99999999999$salt$AAAA", "x")  # absurd iterations refused
    assert not hasher.verify("pbkdf2_sha256$broken", "x")


class PlainSha256Hasher:
    """A third-party, verify-only hasher: `sha256$<hex>` (as an old app might have stored)."""

    scheme = "sha256"

    def identifies(self, stored_hash: str) -> bool:
        return stored_hash.startswith("sha256$")

    def verify(self, stored_hash: str, password: str) -> bool:
        import hashlib
        import hmac

        return hmac.compare_digest(stored_hash, "sha256$" + hashlib.sha256(password.encode()).hexdigest())


class LegacyHasherPlugin:
    @hookimpl
    def tessera_register_hashers(self, registry):
        registry.add(PlainSha256Hasher())


def test_hashers_are_plugins():
    """Rule 4: a plugin adds a hasher through `tessera_register_hashers`."""
    plugins = Plugins([LegacyHasherPlugin()])
    assert plugins.hashers.for_hash("sha256$abc").__class__ is PlainSha256Hasher
    assert plugins.hashers.for_hash("pbkdf2_sha256$1$s$AA==").__class__ is Pbkdf2Sha256Hasher
    assert plugins.hashers.for_hash("$argon2id$v=19$m=1024,t=1,p=1$x$y").__class__ is Argon2Hasher


async def test_hashing_and_verifying_run_off_the_event_loop(idp):
    """Rule 4 + STYLE.md §8: argon2 runs in worker threads, never on the loop's thread."""
    loop_thread = threading.get_ident()
    threads: list[int] = []
    hasher = idp.realm().providers["password"].hasher
    original_hash, original_verify = hasher.hash, hasher.verify

    def recording_hash(password):
        threads.append(threading.get_ident())
        return original_hash(password)

    def recording_verify(stored, password):
        threads.append(threading.get_ident())
        return original_verify(stored, password)

    hasher.hash = recording_hash
    registered = idp.services.passwords.hashers.for_hash("$argon2id$")
    registered_verify = registered.verify

    def recording_registered_verify(stored, password):
        threads.append(threading.get_ident())
        return registered_verify(stored, password)

    registered.verify = recording_registered_verify
    try:
        await register(idp, "t@example.com")
        resp, _ = await authorize(idp)  # signing in (unverified: no code, but the password is checked)
        await submit_login(idp, resp.headers["Location"], "t@example.com", PASSWORD)
    finally:
        hasher.hash, hasher.verify = original_hash, original_verify
        registered.verify = registered_verify
    assert len(threads) >= 2 and loop_thread not in threads


# ---------------------------------------------------------------- policy (NIST SP 800-63B)


def test_minimum_length_is_8_by_default():
    """§3.1.1.2: at least 8 characters."""
    assert "at least 8" in password_problem("mauve7z")
    assert password_problem("mauve7zq") is None


def test_long_passphrases_are_allowed():
    """§3.1.1.2: at least 64 allowed; here up to 1024 (the setting `max_length`)."""
    passphrase = "the quick brown fox jumps over the lazy dog again " * 20
    assert len(passphrase) == 1000 and password_problem(passphrase) is None
    assert "at most 1024" in password_problem("y" * 600 + "z" * 600)


def test_no_composition_rules():
    """§3.1.1.2: no "one upper case, one digit, one symbol"."""
    for password in ("lowercase only words", "ALLUPPERCASEWORDS", "1938475620193847", "fjordquiltwavy"):
        assert password_problem(password) is None, password


def test_common_passwords_are_refused():
    """§3.1.1.2: values from breach corpuses; also under a short suffix of digits/symbols."""
    assert len(common_passwords()) >= 10_000
    for password in ("password", "Password1", "iloveyou2", "qwertyuiop", "P@ssw0rd", "dragon2024!", "letmein123"):
        assert "too common" in (password_problem(password) or ""), password


def test_repetitive_sequential_and_context_words_are_refused():
    """§3.1.1.2: repetitive or sequential characters; context-specific words."""
    assert "repeated or sequential" in password_problem("zzzzzzzzzzzz")
    assert "repeated or sequential" in password_problem("mnopqrstuv")
    assert "repeated or sequential" in password_problem("xyzxyzxyzxyz")
    email = "margaret.hamilton@example.com"
    assert "email address" in password_problem(email, email=email)
    assert "email address" in password_problem("margaret.hamilton99", email=email)
    assert "email address" in password_problem("Acme Corporation", service_names=["acme corporation"])


async def test_the_realm_minimum_length_applies_at_registration(tmp_path, backend, aiohttp_client,
                                                                unused_tcp_port_factory):
    """Rule 4: `min_length` is a provider setting."""
    from tests.accounts.conftest import ACME, build_idp, mail_yaml

    realm = ACME.replace("    registration: true\n", "    registration: true\n    min_length: 12\n")
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(tmp_path / "outbox"), outbox=tmp_path / "outbox", realms={"acme": realm})
    resp = await register(idp, "m@example.com", "mauve7zqx")
    assert resp.status == 400 and "at least 12" in await resp.text()
    assert (await register(idp, "m@example.com", "mauve7zqxkpw")).status == 200


@pytest.mark.parametrize("typed", ["cafe\u0301 au lait", "caf\u00e9 au lait"])
async def test_passwords_are_nfkc_normalised(idp, typed):
    """SP 800-63B §5.1.1.2: the same password typed as composed or decomposed Unicode."""
    await idp.add_user(password=unicodedata.normalize("NFC", "café au lait"))
    code, _v, _q = await login_for_code(idp, "alice@example.com", typed)
    assert code
