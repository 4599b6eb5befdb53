"""Password policy after NIST SP 800-63B §3.1.1.2 (memorized secrets):

- at least `min_length` characters (8 by default), counted as Unicode code points after
  NFKC normalisation; long passphrases allowed (up to `max_length`, 1024 by default);
- no composition rules (no "one digit, one symbol"), no periodic expiry;
- refused: values from breach corpuses (the bundled list, `common_passwords.txt`, also
  under a short suffix of digits and symbols: "dragon2024!"), repetitive or sequential
  characters ("aaaaaaaa", "12345678", "abcabcabc"), and context-specific words (the
  email address, its local part, the user's name, the service's name).

Each refusal says why, so the user can pick something better (§3.1.1.2 asks for that).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

COMMON_PASSWORDS = Path(__file__).parent / "common_passwords.txt"
SEQUENCES = (
    "0123456789012345678901234567890",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnmqwertyuiop",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)
_EDGE = re.compile(r"^[\d\W_]+|[\d\W_]+$")

TOO_SHORT = "Use at least {min_length} characters. A few unrelated words make a strong, memorable passphrase."
TOO_LONG = "Use at most {max_length} characters."
COMMON = ("This password is too common: it is on the lists attackers try first. Choose another;"
          " a few unrelated words make a strong, memorable passphrase.")
REPETITIVE = "This password is a repeated or sequential pattern that is easy to guess. Choose another."
CONTEXTUAL = "Don't use your email address, your name or the name of this service as your password."


def normalise(password: str) -> str:
    """NFKC (§5.1.1.2: normalise before hashing, so the same password typed on another
    keyboard or OS still matches)."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _bases(candidate: str) -> set[str]:
    """The password and what is left of it without a leading/trailing run of digits and symbols."""
    stripped = _EDGE.sub("", candidate)
    return {candidate, stripped} if len(stripped) >= 4 else {candidate}


def _repetitive(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if len(set(compact)) <= 2:
        return True
    for size in (1, 2, 3, 4):  # "abcabcabc", "12121212"
        unit = compact[:size]
        if len(compact) >= 2 * size and unit * (len(compact) // size) + unit[: len(compact) % size] == compact:
            return True
    for sequence in SEQUENCES:
        if compact in sequence or compact in sequence[::-1]:
            return True
    return False


def _context_words(email: str | None, name: str | None, service_names: Iterable[str]) -> set[str]:
    words: set[str] = set()
    if email:
        email = email.lower().strip()
        words.add(email)
        local = email.partition("@")[0]
        if len(local) >= 3:
            words.add(local)
    if name and len(name.strip()) >= 3:
        words.add(name.lower().strip())
        words.add(name.lower().replace(" ", ""))
    words.update(s.lower() for s in service_names if s and len(s) >= 3)
    return words


def password_problem(
    password: str,
    *,
    min_length: int = 8,
    max_length: int = 1024,
    email: str | None = None,
    name: str | None = None,
    service_names: Iterable[str] = (),
) -> str | None:
    """Why `password` is refused (a sentence for the user), or None if it is acceptable."""
    password = normalise(password)
    if len(password) < min_length:
        return TOO_SHORT.format(min_length=min_length)
    if len(password) > max_length:
        return TOO_LONG.format(max_length=max_length)
    candidate = password.lower()
    bases = _bases(candidate)
    if bases & common_passwords():
        return COMMON
    if _repetitive(candidate):
        return REPETITIVE
    context = _context_words(email, name, service_names)
    if {b.replace(" ", "") for b in bases} & {w.replace(" ", "") for w in context}:
        return CONTEXTUAL
    return None
