"""Mail (issue 5, rule 5): a mailer hook with two built-in senders, SMTP (host, port,
STARTTLS, credentials from `${ENV}`) and an `outbox` directory (one `.eml` per message,
the link logged; the embedded default); messages are Jinja2 templates per realm with
text and HTML parts. Caught here by a real SMTP server on loopback (aiosmtpd) and by
reading the outbox."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine import hookimpl
from engine.config.models import MailSettings
from engine.plugins import Plugins
from tests.accounts.conftest import ACME, SmtpSink, build_idp, html_of, link_in, mail_yaml, text_of
from tests.accounts.helpers import register, verify


async def test_outbox_writes_one_eml_per_message_with_text_and_html(idp):
    """Rule 5: the outbox sender: a parseable RFC 5322 file per message, multipart/alternative."""
    await register(idp, "one@example.com")
    await register(idp, "two@example.com")
    await idp.services.mail.drain()
    files = sorted(idp.outbox.glob("*.eml"))
    assert len(files) == 2
    mail = (await idp.mails())[0]
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["To"] == "one@example.com" and mail["Message-ID"] and mail["Date"]
    assert mail["Auto-Submitted"] == "auto-generated"
    link = link_in(mail, "/verify-email")
    assert link.split("token=")[1] in text_of(mail) and link.split("token=")[1] in html_of(mail)
    assert "<a href=" in html_of(mail) and "&amp;" not in text_of(mail)
    # The raw file shows the link as it is (7bit, not quoted-printable), ready to copy.
    assert "http://" + idp.client.server.host in files[0].read_text()
    assert link.split("token=")[1] in files[0].read_text()


async def test_outbox_logs_the_link(idp, caplog):
    """Rule 5: the outbox logs each message's links (a fresh install has no mail server)."""
    with caplog.at_level(logging.INFO, logger="engine.mail"):
        await register(idp, "log@example.com")
        await idp.services.mail.drain()
    line = next(r.getMessage() for r in caplog.records if "log@example.com" in r.getMessage())
    assert "/verify-email?token=" in line and ".eml" in line


async def test_smtp_delivers_to_a_real_server(smtp_idp):
    """Rule 5: the SMTP sender, caught by aiosmtpd on loopback; the link in it works."""
    await register(smtp_idp, "smtp@example.com")
    mails = await smtp_idp.mails()
    assert len(mails) == 1 and mails[0]["To"] == "smtp@example.com"
    assert smtp_idp.smtp.envelopes[0].mail_from == "accounts@acme.test"  # the realm's sender
    assert smtp_idp.smtp.envelopes[0].rcpt_tos == ["smtp@example.com"]
    assert mails[0].get_body(("html",)) is not None
    assert (await verify(smtp_idp, link_in(mails[0], "/verify-email"))).status == 200


def self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_smtp_with_starttls_and_credentials_from_env(tmp_path, backend, aiohttp_client,
                                                           unused_tcp_port_factory):
    """Rule 5: STARTTLS (required by the server), AUTH with a password from `${SMTP_PASSWORD}`,
    the server's certificate checked against `ca_file`."""
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    logins = []

    def authenticator(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"idp", b"s3cret-from-env")
        logins.append((mechanism, session.ssl is not None, ok))
        return AuthResult(success=ok)

    sink = SmtpSink()
    port = unused_tcp_port_factory()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_required=True)
    controller.start()
    try:
        smtp = {"host": "127.0.0.1", "port": port, "starttls": "true", "username": "idp",
                "password": "'${SMTP_PASSWORD}'", "ca_file": f"'{cert_file}'"}
        idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                              mail=mail_yaml(smtp=smtp), environ={"SMTP_PASSWORD": "s3cret-from-env"}, smtp=sink)
        await register(idp, "tls@example.com")
        mails = await idp.mails()
    finally:
        controller.stop()
    assert [m["To"] for m in mails] == ["tls@example.com"]
    assert logins and all(encrypted and ok for _mechanism, encrypted, ok in logins)


def test_smtp_password_is_a_secret_in_config():
    """Rule 5: the SMTP password is a SecretStr (never printed, `${ENV}` in YAML)."""
    settings = MailSettings.model_validate({"type": "smtp", "smtp": {"password": "hunter2hunter2"}})
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.model_dump_json()


async def test_a_failing_relay_never_fails_the_request(tmp_path, backend, aiohttp_client, unused_tcp_port_factory,
                                                       caplog):
    """Rule 5: delivery is in the background; a dead relay is logged, the page is the same."""
    dead_port = unused_tcp_port_factory()
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(smtp={"host": "127.0.0.1", "port": dead_port, "starttls": "false",
                                               "timeout": 2}), smtp=SmtpSink())
    with caplog.at_level(logging.ERROR, logger="engine.mail"):
        resp = await register(idp, "lost@example.com")
        await idp.services.mail.drain()
    assert resp.status == 200 and "Check your email" in await resp.text()
    assert any("delivering mail verify_email" in r.getMessage() for r in caplog.records)


async def test_mail_templates_are_overridable_per_realm(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Rule 5 + 7: a realm's `templates:` directory overrides mail templates (subject,
    text, HTML) like pages."""
    custom = tmp_path / "acme-templates" / "mail"
    custom.mkdir(parents=True)
    (custom / "verify_email.subject.txt").write_text("Bienvenue chez {{ display_name }}")
    (custom / "verify_email.txt").write_text("Cliquez : {{ link }}\n")
    realm = ACME.replace("display_name: ACME\n", "display_name: ACME\ntemplates: acme-templates\n")
    outbox = tmp_path / "outbox"
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), mail=mail_yaml(outbox),
                          outbox=outbox, realms={"acme": realm})
    await register(idp, "fr@example.com")
    mail = await idp.last_mail()
    assert mail["Subject"] == "Bienvenue chez ACME"
    assert text_of(mail).startswith("Cliquez : http://")
    assert "Verify my email address" in html_of(mail)  # the HTML part was not overridden


class FakeQueueMailer:
    sent: list = []

    def __init__(self, settings, base_dir):
        self.queue = settings.options["queue"]

    async def send(self, message):
        FakeQueueMailer.sent.append((self.queue, message["To"]))


class QueueMailerPlugin:
    @hookimpl
    def tessera_register_mailers(self, registry):
        registry.add("queue", FakeQueueMailer)


def test_mailers_are_plugins():
    """Rule 5: `tessera_register_mailers` adds senders; the built-in ones are registered
    the same way."""
    plugins = Plugins([QueueMailerPlugin()], load_entrypoints=False)
    assert plugins.mailers.names() == ["outbox", "queue", "smtp"]
    with pytest.raises(ValueError, match="unknown mail sender type 'nope'"):
        plugins.mailers.get("nope")


async def test_a_plugin_mailer_is_used_when_configured(tmp_path, backend, aiohttp_client, unused_tcp_port_factory,
                                                       monkeypatch):
    """Rule 5: `mail: {type: queue, options: {...}}` selects a plugin's sender."""
    original = Plugins.__init__

    def with_queue(self, plugins=(), *, load_entrypoints=True):
        original(self, [*plugins, QueueMailerPlugin()], load_entrypoints=load_entrypoints)

    monkeypatch.setattr(Plugins, "__init__", with_queue)
    FakeQueueMailer.sent = []
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail="mail: {type: queue, options: {queue: outgoing}}\n")
    await register(idp, "q@example.com")
    await idp.services.mail.drain()
    assert FakeQueueMailer.sent == [("outgoing", "q@example.com")]


# ------------------------------------------- headers from validated addresses (issue 16 item 6)


async def test_an_address_with_a_comma_is_never_a_second_recipient(smtp_idp):
    """RFC 5322 §3.4: `To:` is built from one parsed `Address`; text that would read as two
    recipients (or carry a display name or a header) is not mailed at all."""
    realm = smtp_idp.realm()
    for to in ("a@example.com, b@example.com", "a@example.com\r\nBcc: b@example.com", "A <a@example.com>"):
        assert await smtp_idp.services.mail.send(realm, to, "verify_email", link="https://x.example/l",
                                                 expires_in="1 hour") is False
    assert not await smtp_idp.mails()


async def test_an_internationalised_domain_is_written_in_ascii(smtp_idp):
    """IDNA (RFC 5891): the header and the envelope carry the A-label form of the domain."""
    realm = smtp_idp.realm()
    assert await smtp_idp.services.mail.send(realm, "Kate@B\u00dcCHER.example", "verify_email",
                                             link="https://x.example/l", expires_in="1 hour")
    mail = await smtp_idp.last_mail()
    assert mail["To"] == "Kate@xn--bcher-kva.example"
    assert smtp_idp.smtp.envelopes[-1].rcpt_tos == ["Kate@xn--bcher-kva.example"]
