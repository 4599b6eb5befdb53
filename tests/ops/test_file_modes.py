"""Files Tessera writes are owner-only whatever the umask (issue 16, item 12; CWE-276
"Incorrect Default Permissions", OWASP ASVS 4.0 §14.1.3): the SQLite database and its
-wal/-shm files (password hashes, encrypted keys), outbox mail (live reset links), the
applied-configuration snapshot and the generated key-encryption key are 0600, and the
directories Tessera creates for them 0700. The umask is set wide open (0o000) for each
test, the way a careless service manager or container would leave it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from engine.config.models import MailSettings
from engine.config.plan import write_snapshot_in_turns, write_snapshot_text
from engine.mail.senders import OutboxMailer
from engine.store.sql.sqlite import SqliteDurableStore
from engine.tokens.keys import load_or_create_kek
from tests.config.test_plan import _config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    previous = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(previous)


async def test_sqlite_database_wal_and_shm_are_owner_only(tmp_path):
    path = tmp_path / "var" / "db" / "idp.sqlite3"
    store = await SqliteDurableStore.open(str(path))
    try:
        await store.migrate()  # writes: the -wal and -shm files exist now
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert all(f.exists() for f in files), [f.name for f in files if not f.exists()]
        assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o600) for f in files}
        assert oct(mode(path.parent)) == oct(0o700) and oct(mode(path.parent.parent)) == oct(0o700)
    finally:
        await store.close()


async def test_outbox_mail_is_owner_only(tmp_path):
    mailer = OutboxMailer(MailSettings(outbox={"directory": "var/outbox"}), tmp_path)
    message = EmailMessage()
    message["To"], message["From"], message["Subject"] = "a@example.com", "idp@example.com", "Reset"
    message.set_content("https://idp.example.com/reset-password?token=live")
    await mailer.send(message)
    [written] = list((tmp_path / "var" / "outbox").iterdir())
    assert oct(mode(written)) == oct(0o600)
    assert oct(mode(tmp_path / "var" / "outbox")) == oct(0o700) and oct(mode(tmp_path / "var")) == oct(0o700)


async def test_applied_config_snapshot_is_owner_only(tmp_path):
    config = _config(tmp_path)
    write_snapshot_text(tmp_path / "var", "{}")
    assert oct(mode(tmp_path / "var" / "applied-config.json")) == oct(0o600)
    assert oct(mode(tmp_path / "var")) == oct(0o700)
    await write_snapshot_in_turns(config, tmp_path / "serving")  # what `idp serve` writes
    assert oct(mode(tmp_path / "serving" / "applied-config.json")) == oct(0o600)
    assert oct(mode(tmp_path / "serving")) == oct(0o700)


def test_generated_key_encryption_key_is_owner_only(tmp_path):
    _, origin = load_or_create_kek({}, tmp_path / "var")
    assert "generated" in origin
    assert oct(mode(tmp_path / "var" / "key-encryption-key")) == oct(0o600)
    assert oct(mode(tmp_path / "var")) == oct(0o700)
