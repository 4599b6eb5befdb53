"""Email addresses (issue 16 item 6): validated and normalised with `email-validator`
(RFC 5322 dot-atom local parts, RFC 6531 internationalised; Unicode NFKC; IDNA/UTS 46
domains), refused when they hide anything (controls, zero-width characters, commas,
quotes, angle brackets, display names, domain literals); no DNS."""

from __future__ import annotations

import pytest

from engine.accounts.emails import InvalidEmail, email_identity, mailbox, normalise_email, parse_email


@pytest.mark.parametrize(("typed", "normalised"), [
    ("kate@example.com", "kate@example.com"),
    ("  Kate@EXAMPLE.com ", "Kate@example.com"),  # the domain is case-insensitive (RFC 5321 §2.4)
    ("\u212aate@example.com", "Kate@example.com"),  # KELVIN SIGN: NFKC makes it a K
    ("\uff4bate@example.com", "kate@example.com"),  # FULLWIDTH LATIN SMALL K
    ("kate@xn--bcher-kva.example", "kate@b\u00fccher.example"),  # IDNA A-label and U-label: one domain
    ("kate@B\u00dcCHER.example", "kate@b\u00fccher.example"),
    ("o'neil@example.com", "o'neil@example.com"),  # an apostrophe is an ordinary atext character
    ("user+tag@example.test", "user+tag@example.test"),  # RFC 2606 .test is usable in test setups
])
def test_addresses_are_normalised(typed, normalised):
    assert normalise_email(typed) == normalised


def test_the_kelvin_sign_cannot_squat_an_address():
    """`Kate@example.com` written with U+212A is the same account key as `kate@example.com`."""
    assert email_identity("\u212aate@example.com") == email_identity("kate@example.com") == "kate@example.com"


@pytest.mark.parametrize("typed", [
    "a@x.com, b@y.com", "a,b@x.com",  # a second recipient
    '"a b"@x.com', '"victim@example.com"@evil.example', 'a"b@x.com',  # quotes
    "Name <a@x.com>", "<a@x.com>", "a<b@x.com", "a>b@x.com",  # display names, angle brackets
    "a\u200b@x.com", "a@x\u200b.com", "a\u200d@x.com", "a\u2060@x.com", "a\u00ad@x.com", "a\ufeff@x.com",
    "a\u202e@x.com",  # zero-width, soft hyphen, BOM, bidi override
    "a\x00@x.com", "a@x.com\r\nBcc: c@d.com", "a\t@x.com", "a\x7f@x.com",  # controls
    "a@[127.0.0.1]", "a@localhost", "a@printer.local", "a b@x.com", "@x.com", "a@", "a", "",
    "a" * 65 + "@x.com", "a@" + "b" * 250 + ".com",
])
def test_hidden_or_dangerous_addresses_are_refused(typed):
    with pytest.raises(InvalidEmail):
        normalise_email(typed)
    assert parse_email(typed) is None


def test_a_mail_header_address_comes_only_from_a_validated_address():
    address = mailbox("Kate@B\u00dcCHER.example")
    assert (address.username, address.domain) == ("Kate", "xn--bcher-kva.example")
    with pytest.raises(InvalidEmail):
        mailbox("a@x.com, b@y.com")
