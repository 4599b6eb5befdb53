"""`idp check` refuses dangerous configuration, each problem `file:line: message`
(issue 16 item 15; issue 23 items 6 and 7)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.plugins import Plugins

SERVER = "base_url: http://localhost:4000\nrealms: realms/\nroot_realm: null\n"
PASSWORD = "providers: [{id: password, type: password}]\n"
ENVIRON = {"SECRET": "s" * 32}


@pytest.fixture(scope="module")
def models():
    return Plugins().providers.settings_models()


def write(tmp_path: Path, realm: str, server: str = SERVER) -> Path:
    (tmp_path / "realms").mkdir(exist_ok=True)
    (tmp_path / "realms" / "acme.yaml").write_text(textwrap.dedent(realm))
    (tmp_path / "idp.yaml").write_text(server)
    return tmp_path / "idp.yaml"


def problems(path: Path, models) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, models, environ=ENVIRON)
    return caught.value.problems


def client_with(field: str, uri: str) -> str:
    other = "post_logout_redirect_uris" if field == "redirect_uris" else "redirect_uris"
    return (f"name: acme\n{PASSWORD}clients:\n  - client_id: app\n    type: public\n"
            f"    {other}: ['https://app.example.com/cb']\n    {field}: ['{uri}']\n")


REFUSED_URIS = {
    "javascript": ("javascript:alert(1)", "javascript: URIs are never redirect targets"),
    "javascript-upper": ("JavaScript:alert(1)", "URIs are never redirect targets"),
    "data": ("data:text/html,<script>alert(1)</script>", "data: URIs are never redirect targets"),
    "vbscript": ("vbscript:msgbox(1)", "vbscript: URIs are never redirect targets"),
    "file": ("file:///etc/passwd", "file: URIs are never redirect targets"),
    "http-public": ("http://app.example.com/cb", "http is allowed only on loopback"),
    "http-lookalike": ("http://localhost.example.com/cb", "http is allowed only on loopback"),
    "wildcard-host": ("https://*.example.com/cb", "wildcards are not allowed"),
    "wildcard-path": ("https://app.example.com/*", "wildcards are not allowed"),
    "fragment": ("https://app.example.com/cb#x", "must not contain a fragment"),
    "custom-not-reverse-dns": ("myapp:/cb", "private-use in reverse-DNS form"),
    "credentials": ("https://app.example.com@evil.example/cb", "must not contain credentials"),
    "white-space": ("https://app.example.com/c b", "white space"),
}


@pytest.mark.parametrize("field", ["redirect_uris", "post_logout_redirect_uris"])
@pytest.mark.parametrize("case", list(REFUSED_URIS), ids=list(REFUSED_URIS))
def test_dangerous_redirect_uris_are_refused(tmp_path, models, field, case):
    """RFC 8252 §7.1, §7.3, §8.3 (https; http on loopback; private-use reverse-DNS schemes),
    RFC 6749 §3.1.2 (no fragment), RFC 9700 §4.1.3 (exact match: no wildcards). Before, a
    `javascript:` URI passed and the server sent `Location: javascript:alert(1)?error=...`."""
    uri, message = REFUSED_URIS[case]
    found = problems(write(tmp_path, client_with(field, uri)), models)
    assert any(f"acme.yaml:7: clients.0.{field}" in p and message in p for p in found), found


@pytest.mark.parametrize("uri", [
    "https://app.example.com/cb", "http://localhost:3000/callback", "http://127.0.0.1:8080/cb",
    "http://[::1]:8080/cb", "com.example.app:/oauth2redirect/example-provider", "com.example.app://callback",
])
def test_legitimate_redirect_uris_pass(tmp_path, models, uri):
    config = load_config(write(tmp_path, client_with("redirect_uris", uri)), models, environ=ENVIRON)
    assert config.realms["acme"].clients[0].redirect_uris[-1] == uri


@pytest.mark.parametrize(("realm", "line", "where"), [
    ("name: acme\n" + PASSWORD + "lifetimes: {access_token: 0}\n", 3, "lifetimes.access_token"),
    ("name: acme\n" + PASSWORD + "lifetimes: {refresh_token: 0s}\n", 3, "lifetimes.refresh_token"),
    ("name: acme\n" + PASSWORD + "lifetimes: {auth_code: -60}\n", 3, "lifetimes.auth_code"),
    ("name: acme\n" + PASSWORD + "lifetimes: {session: 0h}\n", 3, "lifetimes.session"),
    ("name: acme\n" + PASSWORD + "signing: {rotate_every: 0d}\n", 3, "signing.rotate_every"),
    ("name: acme\n" + PASSWORD + "rate_limits: {login_per_ip: {requests: 5, per: 0}}\n", 3,
     "rate_limits.login_per_ip.per"),
], ids=["access-token", "refresh-token", "negative-code", "session", "rotation", "rate-window"])
def test_zero_or_negative_lifetimes_are_refused(tmp_path, models, realm, line, where):
    found = problems(write(tmp_path, realm), models)
    assert any(f"acme.yaml:{line}: {where}: must be longer than zero" in p for p in found), found


@pytest.mark.parametrize(("realm", "line", "message"), [
    ("name: acme\n", 1, "the realm has no way to sign in"),
    ("name: acme\nclients:\n  - {client_id: app, type: public, redirect_uris: ['https://app.example.com/cb']}\n",
     3, "this client signs users in, but the realm has no provider"),
    ("name: acme\nclients:\n  - {client_id: tv, type: public,\n"
     "     grant_types: ['urn:ietf:params:oauth:grant-type:device_code']}\n",
     4, "this client signs users in, but the realm has no provider"),
], ids=["empty", "authorization-code-without-provider", "device-code-without-provider"])
def test_a_realm_with_no_way_to_sign_in_is_refused(tmp_path, models, realm, line, message):
    found = problems(write(tmp_path, realm), models)
    assert any(f"acme.yaml:{line}: " in p and message in p for p in found), found


def test_a_machine_to_machine_realm_needs_no_provider(tmp_path, models):
    realm = ("name: acme\nclients:\n  - {client_id: worker, type: confidential, secret: '${SECRET}',"
             " grant_types: [client_credentials]}\n")
    assert load_config(write(tmp_path, realm), models, environ=ENVIRON).realms["acme"].clients[0].client_id == "worker"


@pytest.mark.parametrize(("mail", "fragment"), [
    ("{sender: \"ACME <a@example.com>\\r\\nBcc: victim@example.com\"}", "mail.sender: a mail address must not"),
    ("{sender: \"a@example.com\\nX: y\"}", "mail.sender: a mail address must not"),
    ("{reply_to: 'a@example.com, b@example.com'}", "mail.reply_to: 'a@example.com, b@example.com' must be exactly one"),
    ("{sender: 'nobody'}", "mail.sender: 'nobody' must be exactly one"),
    ("{sender: 'ACME <a@-bad-.example>'}", "mail.sender: 'ACME <a@-bad-.example>' is not a mail address"),
], ids=["crlf-header-injection", "lf", "two-addresses", "no-domain", "bad-domain"])
def test_realm_mail_addresses_are_one_rfc5322_mailbox(tmp_path, models, mail, fragment):
    """Issue 23 item 6: before, a CRLF in `sender` passed `idp check` and then every
    registration answered 500 (RFC 5322 §3.4: a mailbox, no line breaks in a header)."""
    found = problems(write(tmp_path, f"name: acme\n{PASSWORD}mail: {mail}\n"), models)
    assert any("acme.yaml:3: " + fragment in p for p in found), found


def test_the_server_sender_is_a_mailbox_too(tmp_path, models):
    server = SERVER + "mail: {sender: \"Tessera <a@example.com>\\r\\nBcc: x@example.com\"}\n"
    found = problems(write(tmp_path, "name: acme\n" + PASSWORD, server), models)
    assert any("idp.yaml:4: mail.sender: a mail address must not" in p for p in found), found


def test_good_mail_addresses_pass(tmp_path, models):
    realm = f"name: acme\n{PASSWORD}mail: {{sender: '\"ACME, Inc.\" <accounts@acme.test>', reply_to: help@acme.com}}\n"
    config = load_config(write(tmp_path, realm), models, environ=ENVIRON)
    assert config.realms["acme"].mail.reply_to == "help@acme.com"


@pytest.mark.parametrize("logo", [
    "http://cdn.example.com/logo.png", "javascript:alert(1)", "data:image/svg+xml,<svg onload=alert(1)>",
    "//evil.example/logo.png", "/\\evil.example/logo.png", "logo.png", "https://user@cdn.example.com/logo.png",
])
def test_logo_url_is_https_or_same_origin(tmp_path, models, logo):
    found = problems(write(tmp_path, f"name: acme\n{PASSWORD}logo_url: '{logo}'\n"), models)
    assert any("acme.yaml:3: logo_url: " in p for p in found), found


@pytest.mark.parametrize("logo", ["https://cdn.example.com/logo.png", "/static/logo.png"])
def test_good_logo_urls_pass(tmp_path, models, logo):
    config = load_config(write(tmp_path, f"name: acme\n{PASSWORD}logo_url: '{logo}'\n"), models, environ=ENVIRON)
    assert config.realms["acme"].logo_url == logo


@pytest.mark.parametrize(("templates", "fragment"), [
    ("/etc", "not absolute"),
    ("../outside", "no `..`"),
    ("themes/../../outside", "no `..`"),
    ("escape", "resolves outside the configuration directory"),  # a symlink to /tmp/...
    ("missing", "does not exist"),
], ids=["absolute", "dot-dot", "nested-dot-dot", "symlink-out", "missing"])
def test_realm_templates_stay_inside_the_configuration_directory(tmp_path, models, templates, fragment):
    """Issue 23 item 7: a realm's `templates:` is a directory inside the configuration
    directory (symlinks resolved), never a path to elsewhere on the host."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (config_dir / "escape").symlink_to(outside)
    found = problems(write(config_dir, f"name: acme\n{PASSWORD}templates: '{templates}'\n"), models)
    assert any("acme.yaml:3: " in p and "templates" in p and fragment in p for p in found), found


def test_a_templates_directory_inside_the_configuration_directory_passes(tmp_path, models):
    (tmp_path / "themes" / "acme").mkdir(parents=True)
    config = load_config(write(tmp_path, f"name: acme\n{PASSWORD}templates: themes/acme\n"), models, environ=ENVIRON)
    assert config.realms["acme"].templates == "themes/acme"
