"""Counts in messages: "1 message", "2 messages", "1,500 messages"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, in the plural (`plural`, else `noun` + "s") unless `n` is 1; thousands separated."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
