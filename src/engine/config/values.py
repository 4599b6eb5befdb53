"""Validators for configuration values that reach browsers, mail headers and the file
system, so that `idp check` refuses a dangerous value instead of the server serving it
(issue 16 item 15, issue 23 items 6 and 7). Each raises `ValueError` with the reason.
"""

from __future__ import annotations

import ipaddress
import re
from email.errors import HeaderParseError
from email.headerregistry import HeaderRegistry
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

# Schemes a browser runs or reads locally instead of navigating to a client.
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about", "filesystem"})
# RFC 8252 §7.1: a private-use scheme is a reverse-DNS name the app controls (com.example.app).
_PRIVATE_USE_SCHEME = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def is_loopback_host(host: str | None) -> bool:
    """`localhost` or a loopback IP literal (RFC 8252 §7.3, §8.3)."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    try:
        return is_loopback_host(urlsplit(url).hostname)
    except ValueError:
        return False


def redirect_uri(value: str) -> str:
    """A redirect URI (or post-logout redirect URI) a client may register: `https`; `http`
    on loopback only (RFC 8252 §7.3, §8.3); a private-use reverse-DNS scheme for native
    apps (RFC 8252 §7.1). Never a scheme a browser executes, a wildcard, a fragment
    (RFC 6749 §3.1.2), credentials or white space."""
    if _CONTROL_OR_SPACE.search(value):
        raise ValueError(f"{value!r} contains white space or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URI: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError(f"{value!r} is not an absolute URI")
    if scheme in FORBIDDEN_SCHEMES:
        raise ValueError(f"{value!r}: {scheme}: URIs are never redirect targets")
    if "*" in value:
        raise ValueError(f"{value!r}: wildcards are not allowed, redirect URIs are compared exactly (RFC 9700 §4.1.3)")
    if parts.fragment or "#" in value:
        raise ValueError(f"{value!r} must not contain a fragment (RFC 6749 §3.1.2)")
    if "\\" in value:
        raise ValueError(f"{value!r} contains a backslash")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError(f"{value!r} must not contain credentials (user@host)")
    if scheme == "https":
        if not parts.hostname:
            raise ValueError(f"{value!r} is not an absolute URI")
    elif scheme == "http":
        if not parts.hostname:
            raise ValueError(f"{value!r} is not an absolute URI")
        if not is_loopback_host(parts.hostname):
            raise ValueError(f"{value!r}: http is allowed only on loopback (localhost, 127.0.0.1, [::1];"
                             " RFC 8252 §8.3); use https")
    elif not _PRIVATE_USE_SCHEME.match(scheme):
        raise ValueError(f"{value!r}: a custom scheme must be private-use in reverse-DNS form, e.g."
                         " com.example.app:/callback (RFC 8252 §7.1)")
    del port
    return value


def logo_url(value: str) -> str:
    """`https:` or a same-origin absolute path (`/static/logo.png`): nothing a page
    would load in clear, run, or fetch from a protocol-relative `//host`."""
    if _CONTROL_OR_SPACE.search(value) or "\\" in value or '"' in value:
        raise ValueError("logo_url contains white space, control characters, quotes or backslashes")
    if value.startswith("/") and not value.startswith("//"):
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("logo_url is not a valid URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc:
        raise ValueError("logo_url must be an https: URL or a path on this server (/static/logo.png)")
    return value


_HEADERS = HeaderRegistry()
# A host name (RFC 1035 labels, after IDNA): special-use names such as `localhost` or `.test`
# are fine for a sender (test deployments); what matters is one well-formed mailbox.
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return ""


def mailbox(value: str) -> str:
    """One RFC 5322 mailbox (`Name <local@domain>` or `local@domain`) with a valid
    address: no CR/LF or other control characters, no address lists."""
    if _CONTROL_OR_SPACE.search(value.replace(" ", "")):
        raise ValueError("a mail address must not contain control characters or line breaks")
    try:
        header = _HEADERS("From", value)
    except (HeaderParseError, IndexError, ValueError):
        raise ValueError(f"{value!r} is not a mail address (Name <local@example.com>)") from None
    if header.defects or len(header.addresses) != 1:
        raise ValueError(f"{value!r} must be exactly one mail address (Name <local@example.com>)")
    address = header.addresses[0]
    if not address.username or not _DOMAIN.match(_ascii_domain(address.domain)):
        raise ValueError(f"{value!r} is not a mail address (Name <local@example.com>)")
    if not address.addr_spec.isascii():
        raise ValueError(f"{value!r}: the address must be ASCII (an IDN domain in its xn-- form;"
                         " senders cannot rely on SMTPUTF8)")
    return value


def relative_directory(value: str) -> str:
    """A directory inside the configuration directory, written relative to it."""
    if _CONTROL_OR_SPACE.search(value.replace(" ", "")):
        raise ValueError("the path contains control characters")
    for flavour in (PurePosixPath, PureWindowsPath):
        path: PurePath = flavour(value)
        if path.is_absolute() or path.drive or path.root:
            raise ValueError("must be a path relative to the configuration directory, not absolute")
        if ".." in path.parts:
            raise ValueError("must stay inside the configuration directory (no `..`)")
    return value
