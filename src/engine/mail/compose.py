"""Mail messages from Jinja2 templates, per realm: `mail/<name>.subject.txt` (one line),
`mail/<name>.txt` (the text part) and `mail/<name>.html` (the HTML part), looked up in the
realm's `templates:` directory first, then the engine's (`engine/web/templates/mail/`).

Only `.html` templates are autoescaped: the text part keeps links and names verbatim.
"""

from __future__ import annotations

import email.policy
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from engine.accounts.emails import mailbox, needs_smtputf8
from engine.realm import Realm
from engine.templates import realm_loader

_environments: WeakKeyDictionary[Realm, jinja2.Environment] = WeakKeyDictionary()


def environment(realm: Realm, base_dir: Path) -> jinja2.Environment:
    env = _environments.get(realm)
    if env is None:
        env = SandboxedEnvironment(  # realm templates are configuration input (issue 23 item 7)
            loader=realm_loader(realm, base_dir, providers=False),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            keep_trailing_newline=True,
        )
        _environments[realm] = env
    return env


def compose(
    realm: Realm,
    base_dir: Path,
    template: str,
    *,
    to: str,
    sender: str,
    now: datetime,
    reply_to: str | None = None,
    context: dict[str, Any] | None = None,
) -> EmailMessage:
    env = environment(realm, base_dir)
    values = {"realm": realm, "display_name": realm.display_name, **(context or {})}
    subject = " ".join(env.get_template(f"mail/{template}.subject.txt").render(values).split())
    text = env.get_template(f"mail/{template}.txt").render(values)
    html = env.get_template(f"mail/{template}.html").render(values)
    # The recipient is parsed and validated (InvalidEmail otherwise) and written as one
    # `Address`: a text such as "a@x.com, b@y.com" can never become a second recipient.
    recipient = mailbox(to)
    message = EmailMessage(policy=email.policy.SMTPUTF8 if needs_smtputf8(recipient) else email.policy.default)
    message["From"] = sender
    message["To"] = recipient
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(text, cte=_transfer_encoding(text))
    message.add_alternative(html, subtype="html", cte=_transfer_encoding(html))
    return message


def _transfer_encoding(body: str) -> str | None:
    """Plain 7bit when the part allows it (RFC 5322: ASCII, lines of at most 998
    characters), so a link in an `.eml` file reads and copies as it is; otherwise the
    email package's choice (quoted-printable or base64)."""
    if body.isascii() and all(len(line) <= 998 for line in body.splitlines()):
        return "7bit"
    return None
