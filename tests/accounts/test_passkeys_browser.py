"""Passkeys end to end in a real Chromium with a CDP virtual authenticator (issue 20
"How it is judged"), both store pairs: WebAuthn Level 3 §7.1 (registration) and §7.2
(authentication) through the realm's pages and script."""

from __future__ import annotations

from tests.accounts.passkey_browser import cdp_id_to_base64url, passkey_world


async def test_enrol_a_passkey_on_the_account_page(tmp_path, backend, aiohttp_server, unused_tcp_port_factory):
    """Signed in with a password, the user adds a named passkey: the authenticator holds a
    discoverable credential (resident key, §5.4.6), and the store holds its public key
    under the same credential id, named as the user typed it, listed on the page."""
    async with passkey_world(tmp_path, backend, aiohttp_server, unused_tcp_port_factory) as world:
        user = await world.add_user()
        await world.sign_in_with_password()
        await world.page.wait_for_selector("#email")
        await world.enrol_passkey("Work laptop")
        assert await world.page.locator(".passkey-name").all_inner_texts() == ["Work laptop"]
        on_device = await world.authenticator_credentials()
        assert len(on_device) == 1 and on_device[0]["isResidentCredential"] is True
        stored = await world.services.durable.list_passkeys("acme", user.id)
        assert [(c.name, c.credential_id) for c in stored] == [
            ("Work laptop", cdp_id_to_base64url(on_device[0]["credentialId"]))]
        assert stored[0].last_used_at is None
        events = [e.type for e in await world.services.durable.list_events("acme")]
        assert "passkey_added" in events
