"""Email addresses as Tessera accepts them (issue 16 item 6), validated and normalised with
`email-validator` (no DNS: syntax only, so no network on any request path).

The rule, in full:
- the text is Unicode-normalised with NFKC first, so compatibility forms (the Kelvin sign
  U+212A for `K`, fullwidth letters, ligatures) become the characters they stand for and
  cannot squat an existing address that looks the same;
- then `email_validator.validate_email` with every lenient option off: no quoted local
  part (so no `"`, spaces, commas or angle brackets can hide inside one), no display name
  (`Name <a@b>`), no domain literal (`a@[127.0.0.1]`), no empty local part; its own checks
  refuse controls (CR, LF, NUL, ...), zero-width and other invisible characters, commas,
  angle brackets and anything else outside RFC 5322 `dot-atom` (internationalised per
  RFC 6531); the apostrophe stays allowed (`o'neil@example.com` is a real mailbox and is
  harmless once headers are built from parsed addresses);
- the domain is IDNA (UTS 46) normalised: lower case, and an `xn--` A-label becomes the
  Unicode form, so both spellings of one domain are one address; it must contain a dot
  and not be a special-use name (`localhost`, `.local`, `.invalid`, `.onion`, `.arpa`;
  RFC 2606 `.test` is allowed for test installations);
- the local part keeps its case as typed (mail servers may treat it as case-sensitive),
  and accounts are unique case-insensitively: the stores compare `lower()` of this form.
"""

from __future__ import annotations

import unicodedata
from email.headerregistry import Address

import email_validator

MAX_EMAIL = 254  # RFC 5321 §4.5.3.1.3, as a path
MAX_LOCAL_PART = 64  # octets, RFC 5321 §4.5.3.1.1


class InvalidEmail(ValueError):
    """Not an address Tessera accepts; the message says why (safe to show to the user)."""


def normalise_email(text: str) -> str:
    """The normalised address, or InvalidEmail."""
    return _validate(text).normalized


def _validate(text: str) -> email_validator.ValidatedEmail:
    if not isinstance(text, str):
        raise InvalidEmail("an email address must be text")
    candidate = unicodedata.normalize("NFKC", text.strip())
    if len(candidate) > MAX_EMAIL:
        raise InvalidEmail(f"an email address has at most {MAX_EMAIL} characters")
    try:
        valid = email_validator.validate_email(
            candidate,
            check_deliverability=False,  # no DNS: no network on a request path
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
            globally_deliverable=False,  # an intranet's `.internal`/`.corp` domains are fine ...
            test_environment=True,  # ... and RFC 2606 `.test` (other special-use names stay refused)
        )
    except email_validator.EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    if len(valid.local_part.encode()) > MAX_LOCAL_PART:  # not enforced by email-validator unless `strict`
        raise InvalidEmail(f"the part before the @-sign has at most {MAX_LOCAL_PART} characters")
    if "." not in valid.domain:  # ... but a bare host name (`a@localhost`) is not a mail domain
        raise InvalidEmail("the part after the @-sign should have a period")
    if unicodedata.normalize("NFKC", valid.normalized) != valid.normalized:  # stable, never seen
        raise InvalidEmail("the email address does not normalise to one form")
    return valid


def parse_email(text: str) -> str | None:
    """The normalised address, or None if `text` is not one."""
    try:
        return normalise_email(text)
    except InvalidEmail:
        return None


def email_identity(text: str) -> str:
    """What identifies an account for counting and limiting (lockout, rate limits): the
    normalised address in lower case, or, for text that is no address at all, the text
    stripped and lowered (still counted, so garbage gets no free attempts)."""
    normalised = parse_email(text)
    return (normalised if normalised is not None else text.strip()).lower()


def mailbox(text: str) -> Address:
    """The address as a mail header value (`email.headerregistry.Address`), built only from
    a validated address: its domain in ASCII (IDNA A-labels), so no header can carry a
    second recipient, a display name or anything else the text smuggled in. InvalidEmail
    otherwise. A non-ASCII local part needs an SMTPUTF8 message (see `needs_smtputf8`)."""
    valid = _validate(text)
    return Address(username=valid.local_part, domain=valid.ascii_domain)


def needs_smtputf8(address: Address) -> bool:
    return not address.username.isascii()
