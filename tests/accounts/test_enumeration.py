"""No account enumeration by timing (issue 16 item 7; OWASP Authentication Cheat Sheet,
"Authentication and Error Messages": the answer and its timing must not tell whether an
account exists). `/forgot-password` and `/register` answer before anything that depends
on the account runs: the lookup, the token, the new account and the mail happen after the
response, tracked by the mail service (`services.mail.background`) and awaited by its
`drain()` (at shutdown, and here).

Shown without clocks: the account lookup is held by a gate. If a handler looked the
address up before answering, its answer would wait for the gate (and time out here);
both answers come back while the gate is closed, and the mail arrives once it opens."""

from __future__ import annotations

import asyncio
import re

from tests.accounts.conftest import PASSWORD, link_in
from tests.accounts.helpers import submit

ANSWER_WITHIN = 5  # seconds; the answers must not wait for the gate at all


def strip_tokens(html: str) -> str:
    return re.sub(r'value="[^"]*"', 'value=""', html)


class GatedLookups:
    """`services.accounts.by_email` held until `gate` is set (a slow store stand-in)."""

    def __init__(self, idp):
        self.gate = asyncio.Event()
        self.looked_up: list[str] = []
        self.original = idp.services.accounts.by_email
        idp.services.accounts.by_email = self

    async def __call__(self, realm: str, email: str):
        self.looked_up.append(email)
        await self.gate.wait()
        return await self.original(realm, email)


async def test_forgot_password_answers_alike_before_the_account_is_looked_up(idp):
    """The known and the unknown address get the same page, both produced while the
    account lookup is still held; the reset mail reaches the known address afterwards."""
    await idp.add_user("known@example.com", PASSWORD)
    lookups = GatedLookups(idp)
    known = await asyncio.wait_for(submit(idp, "/forgot-password", email="known@example.com"), ANSWER_WITHIN)
    unknown = await asyncio.wait_for(submit(idp, "/forgot-password", email="unknown@example.com"), ANSWER_WITHIN)
    assert known.status == unknown.status == 200
    assert strip_tokens(await known.text()).replace("known@", "X@") == \
        strip_tokens(await unknown.text()).replace("unknown@", "X@")
    assert len(lookups.looked_up) == 2  # the work was handed on and waits for the gate
    lookups.gate.set()
    mails = await idp.mails()
    assert [m["To"] for m in mails] == ["known@example.com"]
    assert link_in(mails[0], "/reset-password").startswith("/reset-password?token=")
    requested = [e for e in await idp.services.durable.list_events("acme") if e.type == "password_reset_requested"]
    assert len(requested) == 2 and sorted(e.user_id is None for e in requested) == [False, True]


async def test_registration_answers_alike_before_the_address_is_looked_up(idp):
    """A new and a taken address get the same page while the lookup is held; then the new
    account is created (and mailed its link) and the owner of the taken one is told."""
    owner = await idp.add_user("taken@example.com", "the owner's own passphrase")
    lookups = GatedLookups(idp)
    fields = {"password": PASSWORD, "name": "Somebody"}
    new = await asyncio.wait_for(submit(idp, "/register", email="fresh@example.com", **fields), ANSWER_WITHIN)
    taken = await asyncio.wait_for(submit(idp, "/register", email="taken@example.com", **fields), ANSWER_WITHIN)
    assert new.status == taken.status == 200
    assert strip_tokens(await new.text()).replace("fresh@", "X@") == \
        strip_tokens(await taken.text()).replace("taken@", "X@")
    lookups.gate.set()
    mails = {m["To"]: m for m in await idp.mails()}
    assert mails["fresh@example.com"]["Subject"].startswith("Verify your email address")
    assert mails["taken@example.com"]["Subject"].startswith("Someone tried to sign up")
    user = await lookups.original("acme", "fresh@example.com")
    assert user is not None and not user.email_verified
    assert (await lookups.original("acme", "taken@example.com")).id == owner.id


async def test_background_work_is_awaited_at_shutdown(idp):
    """Work handed to the background is tracked: `drain()` (run by the app's cleanup
    before the stores close) waits for it, and a failure is logged, never raised."""
    done = []

    async def work():
        await asyncio.sleep(0)
        done.append(True)

    async def failing():
        raise RuntimeError("boom")

    idp.services.mail.background(work(), "test work")
    idp.services.mail.background(failing(), "failing work")
    await idp.services.mail.drain()
    assert done == [True]


async def test_verification_resend_answers_alike_before_the_account_is_looked_up(idp):
    """`/verify-email/resend` for an address with an unverified account and for an unknown
    one: the same page, both produced while the lookup is held (before, the known address's
    answer waited for the link to be made and the mail queued); the link arrives after."""
    await idp.add_user("pending@example.com", PASSWORD, verified=False)
    lookups = GatedLookups(idp)
    known = await asyncio.wait_for(submit(idp, "/verify-email/resend", email="pending@example.com"), ANSWER_WITHIN)
    unknown = await asyncio.wait_for(submit(idp, "/verify-email/resend", email="nobody@example.com"), ANSWER_WITHIN)
    assert known.status == unknown.status == 200
    assert strip_tokens(await known.text()).replace("pending@", "X@") == \
        strip_tokens(await unknown.text()).replace("nobody@", "X@")
    lookups.gate.set()
    mails = await idp.mails()
    assert [m["To"] for m in mails] == ["pending@example.com"]
    assert link_in(mails[0], "/verify-email").startswith("/verify-email?token=")
