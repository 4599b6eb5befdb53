"""Argument checks every ephemeral backend makes, before it writes anything."""

from __future__ import annotations


def check_ttl(ttl: int) -> None:
    if ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")


def check_counter(ttl: int, amount: int) -> None:
    check_ttl(ttl)
    if amount < 1:
        raise ValueError(f"amount must be at least 1, got {amount!r}")
