"""The engine's own mail senders, registered on the `tessera_register_mailers` hook.

`outbox` writes each message to `<directory>/<time>-<random>.eml` (RFC 5322, readable by
any mail client) and logs its links: the embedded default, so a fresh install can sign
people up without a mail server. `smtp` hands messages to a relay with aiosmtplib.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiosmtplib

from engine.config.models import MailSettings
from engine.files import private_directory, write_private
from engine.hookspecs import hookimpl

log = logging.getLogger("engine.mail")

_LINK = re.compile(r"https?://[^\s<>\"']+")


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",)) if message.is_multipart() else message
    return part.get_content() if part is not None else ""


class OutboxMailer:
    """One `.eml` file per message, and a log line with the message's links."""

    def __init__(self, settings: MailSettings, base_dir: Path):
        directory = Path(settings.outbox.directory)
        self.directory = directory if directory.is_absolute() else base_dir / directory
        self._sequence = itertools.count(1)

    def _write(self, name: str, data: bytes) -> Path:
        # Owner-only: the messages carry live verification and reset links.
        private_directory(self.directory)
        path = self.directory / name
        write_private(path, data, exclusive=True)
        return path

    async def send(self, message: EmailMessage) -> None:
        try:
            stamp = parsedate_to_datetime(message["Date"]).strftime("%Y%m%dT%H%M%S")
        except (TypeError, ValueError):
            stamp = "undated"
        # Sortable by time, then by order of sending; random so two instances never collide.
        name = f"{stamp}-{next(self._sequence):06d}-{secrets.token_hex(4)}.eml"
        path = await asyncio.to_thread(self._write, name, bytes(message))
        links = " ".join(dict.fromkeys(_LINK.findall(text_part(message))))
        log.info("mail to %s written to %s: %s%s", message["To"], path, message["Subject"],
                 f" | links: {links}" if links else "")


class SmtpMailer:
    """Delivery to an SMTP relay: STARTTLS (port 587, required when `starttls`) or
    implicit TLS (`tls`, port 465); AUTH only over an encrypted connection unless the
    operator turned both off (a relay on loopback)."""

    def __init__(self, settings: MailSettings, base_dir: Path):
        self.settings = settings.smtp
        ca_file = self.settings.ca_file
        self.ca_file = str(base_dir / ca_file) if ca_file and not Path(ca_file).is_absolute() else ca_file

    async def send(self, message: EmailMessage) -> None:
        smtp = self.settings
        options: dict[str, Any] = {
            "hostname": smtp.host,
            "port": smtp.port,
            "use_tls": smtp.tls,
            "start_tls": smtp.starttls and not smtp.tls,
            "timeout": smtp.timeout.total_seconds(),
        }
        if self.ca_file:
            options["cert_bundle"] = self.ca_file
        if smtp.username:
            options["username"] = smtp.username
            options["password"] = smtp.password.get_secret_value() if smtp.password else ""
        await aiosmtplib.send(message, **options)


@hookimpl
def tessera_register_mailers(registry):
    registry.add("outbox", OutboxMailer)
    registry.add("smtp", SmtpMailer)
