"""Whoever proves the address owns the account (issue 16 item 2; "account pre-hijacking",
Sudhodanan & Paverd 2022, the "classic-federated merge" and "unexpired session" attacks;
OWASP ASVS 5.0 V6.4): an attacker registers the victim's address with a password of her
own. When the victim proves the address — the verification link, or a reset link — the
attacker's password, sessions, access and refresh tokens and federated links stop working,
and the victim chooses the password.

The realm here is the most permissive one (unverified users get codes and refresh
tokens), so the attacker holds every kind of credential before the proof.
(The same attack through a verified upstream email: tests/federation/test_takeover.py.)"""

from __future__ import annotations

import dataclasses

import pytest

from engine.store.protocols import ExternalIdentity as IdentityLink
from engine.store.protocols import TotpFactor, WebAuthnCredential
from tests.accounts.conftest import ACME, build_idp, form_action, hidden_fields, link_in, mail_yaml
from tests.accounts.helpers import forgot, register, reset, verify
from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange, login_for_code, submit_login

VICTIM = "victim@example.com"
ATTACKER_PASSWORD = "mallory's own passphrase"
VICTIM_PASSWORD = "the victim's real passphrase"

PERMISSIVE_ACME = ACME.replace("    registration: true\n",
                               "    registration: true\n    require_verified_email: false\n").replace(
    "providers:\n", "refresh_requires_verified_email: false\nproviders:\n", 1)


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    outbox = tmp_path / "outbox"
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                           mail=mail_yaml(outbox), outbox=outbox, realms={"acme": PERMISSIVE_ACME})


async def refresh(browser, token: str):
    return await browser.client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                     "client_id": "spa"})


async def pre_registered(idp, aiohttp_client):
    """Mallory, in her browser, registers the victim's address and signs in: a session, an
    access token, a refresh token; and an upstream identity of hers is linked (as an
    account made before this fix could have). Returns (her browser, her tokens, user)."""
    mallory = dataclasses.replace(idp, client=await aiohttp_client(idp.client.server))
    assert (await register(mallory, VICTIM, ATTACKER_PASSWORD, name="Mallory")).status == 200
    code, verifier, _ = await login_for_code(mallory, VICTIM, ATTACKER_PASSWORD)
    tokens = await (await exchange(mallory, code, verifier)).json()
    assert {"access_token", "refresh_token"} <= set(tokens)
    user = await idp.services.accounts.by_email("acme", VICTIM)
    await idp.services.durable.link_identity(IdentityLink(
        realm="acme", provider_id="github", issuer="https://github.com", subject="666", user_id=user.id,
        email=None, claims={}, created_at=idp.clock.now()))
    idp.clock.advance(1)  # the victim comes later
    return mallory, tokens, user


async def assert_attacker_locked_out(idp, mallory, tokens) -> None:
    resp, _ = await authorize(mallory, prompt="none")
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    resp = await refresh(mallory, tokens["refresh_token"])
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
    resp = await mallory.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert resp.status == 401
    resp, _ = await authorize(mallory)
    resp = await submit_login(mallory, resp.headers["Location"], VICTIM, ATTACKER_PASSWORD)
    assert resp.status == 400 and "not correct" in await resp.text()
    assert await idp.services.durable.find_identity("acme", "https://github.com", "666") is None


async def test_verification_link_takes_the_account_from_the_registrant(idp, aiohttp_client):
    """The victim opens the verification link (in her own browser): the address is hers,
    Mallory's password, session, tokens and link are dead, and the page lets the victim
    choose her password; then she signs in with it. The audit trail names what went."""
    mallory, tokens, user = await pre_registered(idp, aiohttp_client)
    link = link_in(await idp.last_mail(VICTIM), "/verify-email")
    idp.client.session.cookie_jar.clear()  # the victim's browser
    resp = await verify(idp, link)
    html = await resp.text()
    assert resp.status == 200 and "Choose a new password" in html and f"{VICTIM} is verified" in html
    assert (await idp.services.accounts.by_email("acme", VICTIM)).email_verified
    assert await idp.services.accounts.password_hash("acme", user.id) is None
    idp.clock.advance(1)
    await assert_attacker_locked_out(idp, mallory, tokens)

    resp = await idp.client.post(form_action(html), allow_redirects=False, data={
        **hidden_fields(html), "password": VICTIM_PASSWORD, "password_confirm": VICTIM_PASSWORD})
    assert resp.status == 200 and "Your password has been changed" in await resp.text()
    idp.clock.advance(1)
    code, verifier, _ = await login_for_code(idp, VICTIM, VICTIM_PASSWORD)
    victim_tokens = await (await exchange(idp, code, verifier)).json()
    info = await idp.client.get("/userinfo", headers={"Authorization": f"Bearer {victim_tokens['access_token']}"})
    assert info.status == 200 and (await info.json())["sub"] == user.id

    events = {e.type: e for e in await idp.services.durable.list_events("acme")}
    assert events["password_cleared"].data["via"] == "verification_link"
    assert events["identities_unlinked"].data["providers"] == ["github"]
    assert events["email_verified"].data["families_revoked"] == 1


async def test_the_proof_removes_the_registrants_second_factors(idp, aiohttp_client):
    """Issue 20 on top of issue 16: Mallory, before the victim, enrols her own passkey (it
    signs in alone), her authenticator app and recovery codes on the account. Proving the
    address removes them all, so none of them opens the account or stands in the owner's way."""
    _mallory, _tokens, user = await pre_registered(idp, aiohttp_client)
    durable, now = idp.services.durable, idp.clock.now()
    await durable.add_passkey(WebAuthnCredential(
        realm="acme", credential_id="mallorys-key", user_id=user.id, public_key=b"\xa5", sign_count=0,
        transports=("internal",), aaguid="", name="Mallory's phone", created_at=now))
    await durable.set_totp("acme", TotpFactor(user_id=user.id, secret=b"sealed", created_at=now))
    await durable.set_recovery_codes("acme", user.id, ["0" * 64, "1" * 64], now)

    idp.client.session.cookie_jar.clear()
    resp = await verify(idp, link_in(await idp.last_mail(VICTIM), "/verify-email"))
    assert resp.status == 200
    assert await durable.list_passkeys("acme", user.id) == []
    assert await durable.find_passkey("acme", "mallorys-key") is None
    assert await durable.get_totp("acme", user.id) is None
    assert await durable.count_recovery_codes("acme", user.id) == 0
    events = {e.type: e for e in await durable.list_events("acme")}
    assert events["email_verified"].data["factors_removed"] == {"totp": True, "recovery_codes": 2, "passkeys": 1}


async def test_reset_link_takes_the_account_from_the_registrant(idp, aiohttp_client):
    """The victim, finding her address taken, resets the password: the reset link proves
    the address, so besides the new password, Mallory's sessions, tokens and link go."""
    mallory, tokens, user = await pre_registered(idp, aiohttp_client)
    idp.client.session.cookie_jar.clear()
    assert (await forgot(idp, VICTIM)).status == 200
    resp = await reset(idp, link_in(await idp.last_mail(VICTIM), "/reset-password"), VICTIM_PASSWORD)
    assert resp.status == 200
    idp.clock.advance(1)
    await assert_attacker_locked_out(idp, mallory, tokens)
    code, verifier, _ = await login_for_code(idp, VICTIM, VICTIM_PASSWORD)
    assert (await exchange(idp, code, verifier)).status == 200
    events = {e.type: e for e in await idp.services.durable.list_events("acme")}
    assert events["identities_unlinked"].data == {**events["identities_unlinked"].data, "via": "reset_link",
                                                  "providers": ["github"]}


async def test_verifying_an_already_verified_address_removes_nothing(idp):
    """Only the first proof changes anything: a link for an account that is verified already
    (say, through a reset meanwhile) leaves the password and links alone."""
    await register(idp, VICTIM, VICTIM_PASSWORD)
    link = link_in(await idp.last_mail(VICTIM), "/verify-email")
    user = await idp.services.accounts.by_email("acme", VICTIM)
    await idp.services.durable.update_user("acme", user.id, email_verified=True)
    resp = await verify(idp, link)
    assert resp.status == 200 and "Choose a new password" not in await resp.text()
    assert await idp.services.accounts.password_hash("acme", user.id) is not None
    assert not any(e.type == "password_cleared" for e in await idp.services.durable.list_events("acme"))
