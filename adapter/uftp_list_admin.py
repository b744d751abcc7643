"""`flexbridge uftp list`: the UFTP trades and D-Prognoses of a tenant (protocols/uftp/v3_1/
listing.py), a table per kind or, with --json, one JSON document; mounted by uftp_admin.py
under `flexbridge uftp`."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from protocols.uftp.v3_1.listing import KINDS, Entry, Listing, Query, listing
from store.db import Database
from store.errors import ValidationError
from store.timeutil import utcnow

Command = Callable[[Database], Awaitable[str]]
ACTIONS = frozenset({"list"})
_COMMON = ("MESSAGE ID", "CONVERSATION", "AGR", "CONGESTION POINT", "PERIOD", "STATE")


def add_commands(
    uftp: argparse._SubParsersAction,  # type: ignore[type-arg]
    settings_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    listed = uftp.add_parser(
        "list", help="the FlexRequests, FlexOffers, FlexOrders and D-Prognoses, newest first"
    )
    listed.add_argument("--tenant", required=True)
    listed.add_argument(
        "kinds", nargs="*", metavar="KIND", help=f"{'|'.join(KINDS)} (default: all)"
    )
    listed.add_argument("--agr", help="only this AGR's (its domain)")
    listed.add_argument("--congestion-point", help="only this congestion point's (EA1 address)")
    listed.add_argument("--state", help="only those in this state (open, offered, expired, ...)")
    listed.add_argument("--limit", default="100", help="the newest N of each kind (default 100)")
    listed.add_argument("--json", action="store_true", help="one JSON document")
    settings_flags(listed)


def _limit(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise ValidationError("--limit", f"{text!r} is not a whole number")
    return int(text)


def command(args: argparse.Namespace) -> Command:
    async def run(db: Database) -> str:
        query = Query(
            args.tenant,
            tuple(args.kinds) or tuple(KINDS),
            args.agr,
            args.congestion_point,
            args.state,
            _limit(args.limit),
        )
        found = await listing(db, query, utcnow())
        return as_json(found) if args.json else as_tables(found)

    return run


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _rows(entries: list[Entry]) -> list[tuple[str, ...]]:
    return [
        (
            e.message_id,
            _cell(e.conversation_id),
            e.agr,
            e.congestion_point,
            e.period.isoformat(),
            str(e.state),
            *(_cell(v) for v in e.figures.values()),
        )
        for e in entries
    ]


def _table(name: str, entries: list[Entry], truncated: bool) -> str:
    if not entries:
        return f"{name}: none"
    header = _COMMON + tuple(k.upper().replace("_", " ") for k in entries[0].figures)
    rows = [header, *_rows(entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{name}:"] + [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if truncated:
        lines.append(f"(the newest {len(entries)} shown; --limit for more)")
    return "\n".join(lines)


def as_tables(found: Listing) -> str:
    """A table per kind, a blank line between them."""
    return "\n\n".join(
        _table(name, entries, name in found.truncated) for name, entries in found.entries.items()
    )


def _record(entry: Entry) -> dict[str, Any]:
    return {
        "message_id": entry.message_id,
        "conversation_id": entry.conversation_id,
        "agr": entry.agr,
        "congestion_point": entry.congestion_point,
        "period": entry.period.isoformat(),
        "state": str(entry.state),
        "at": entry.at.isoformat().replace("+00:00", "Z"),
        **entry.figures,
    }


def as_json(found: Listing) -> str:
    """One document: the moment the states are read at, a list per kind, the kinds cut short."""
    document = {
        "now": found.now.isoformat().replace("+00:00", "Z"),
        **{name: [_record(e) for e in entries] for name, entries in found.entries.items()},
        "truncated": list(found.truncated),
    }
    return json.dumps(document, indent=2)
