"""Control characters typed into account forms (issue 23 item 8): refused with the page's
readable 400 before anything is stored, the same on SQLite (which would store a NUL) and
PostgreSQL (which refuses one in text, a `DataError` that must never become a 500)."""

from __future__ import annotations

import pytest

from tests.accounts.conftest import PASSWORD
from tests.accounts.helpers import register


@pytest.mark.parametrize("field", ["name", "email", "password"])
async def test_register_with_a_nul_is_a_readable_400_on_both_backends(idp, field):
    values = {"email": "nul@example.com", "password": PASSWORD, "name": "Nul Person"}
    values[field] = values[field][:3] + "\x00" + values[field][3:]
    resp = await register(idp, **values)
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "text/html" and "control character" in await resp.text()
    assert await idp.services.accounts.by_email("acme", "nul@example.com") is None
