"""`MailService`: what handlers call to mail a user.

`send` renders the message on the request path (a template error is a bug worth a 500)
and hands delivery to a background task: a slow or failing relay never delays or fails a
response, and the time a response takes cannot tell an observer whether a message was
sent (registration and password reset must not reveal who has an account). Delivery
failures are logged. `drain()` waits for pending deliveries (tests, shutdown).

`background(work)` runs the per-account part of a public form (look the address up,
issue a token, compose and send) after the response: what a response contains and how
long it takes cannot depend on whether the address has an account (issue 16 item 7). It
is tracked with the deliveries, so `drain()` (awaited at shutdown, before the stores
close, and by the tests) waits for it too.

Mail goes only to an address engine.accounts.emails validates; the `To:` header is built
from the parsed address, never from the text.

Every address gets at most `rate_limits.mail_per_recipient` messages per window (no
mail-bombing through the public forms); security notices that only the account's owner
can trigger (password changed) are exempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.accounts.emails import parse_email
from engine.config.models import MailSettings
from engine.mail.compose import compose
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.secrets_util import sha256_hex

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger("engine.mail")


class MailService:
    def __init__(self, services: Services, settings: MailSettings, mailer: Any, base_dir: Path):
        self.services = services
        self.settings = settings
        self.mailer = mailer
        self.base_dir = base_dir
        self._pending: set[asyncio.Task[None]] = set()

    async def send(self, realm: Realm, to: str, template: str, *, limited: bool = True,
                   **context: Any) -> bool:
        """Queue `template` for `to`; False if the recipient's rate limit suppressed it, or
        if `to` is no valid address (nothing is sent to what was not validated)."""
        address = parse_email(to or "")
        if address is None:
            log.warning("mail %s to an invalid address was not sent (realm %s)", template, realm.name)
            return False
        if limited:
            limit = realm.config.rate_limits.mail_per_recipient
            if await hit(self.services, realm, "mail_to", sha256_hex(address.lower()), limit) is not None:
                log.warning("mail %s to a recipient over its rate limit was not sent (realm %s)",
                            template, realm.name)
                return False
        mail = realm.config.mail
        message = compose(
            realm, self.base_dir, template, to=address, sender=mail.sender or self.settings.sender,
            reply_to=mail.reply_to, now=self.services.clock.now(), context=context,
        )
        self._track(self._deliver(message, template, realm.name))
        return True

    def background(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run `work` after the response, tracked like a delivery; failures are logged
        (`what` names the work in that line), never raised into a request."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("background work failed: %s", what)

        self._track(run())

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, message: Any, template: str, realm: str) -> None:
        try:
            await self.mailer.send(message)
        except Exception:  # logged, never raised into a request
            log.exception("delivering mail %s (realm %s) failed", template, realm)

    async def drain(self) -> None:
        """Wait until every queued message has been delivered (or has failed) and every
        background work is done (work may queue more mail: waited for too)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
