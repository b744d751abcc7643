"""The source of what an AGR, or we, write to the store through UFTP: `uftp:<domain>`, so
that every AGR's prognoses and meterings on one series stay apart and any protocol can tell
whose they are."""

from __future__ import annotations


def source_of(domain: str) -> str:
    return f"uftp:{domain}"
