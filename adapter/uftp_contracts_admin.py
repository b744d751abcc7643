"""`flexbridge uftp contract add|list|remove` and `flexbridge uftp reservation-update`: the
CLI's words around bilateral contracts (protocols/uftp/v3_1/contracts.py), mounted by
uftp_admin.py under `flexbridge uftp`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from datetime import date

from adapter.settings import Settings
from protocols.uftp.v3_1 import contracts
from store.db import Database
from store.errors import ValidationError
from store.uftp_contracts import Contract, NewContract, ReservedSpan

Command = Callable[[Database], Awaitable[str]]
ACTIONS = frozenset({"contract", "reservation-update"})
_ISP = re.compile(r"(?P<first>[0-9]{1,3})(?:-(?P<last>[0-9]{1,3}))?=(?P<w>-?[0-9]{1,13})")


def add_commands(
    uftp: argparse._SubParsersAction,  # type: ignore[type-arg]
    settings_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    contract = uftp.add_parser("contract", help="bilateral contracts with AGRs").add_subparsers(
        dest="what", required=True
    )
    add = contract.add_parser("add", help="record a contract: flex an AGR reserves for us")
    add.add_argument("--tenant", required=True)
    add.add_argument("--contract", required=True, help="its ContractID, as both sides know it")
    add.add_argument("--agr", required=True, help="the AGR's domain (a uftp peer)")
    add.add_argument("--congestion-point", required=True, help="its EA1 entity address")
    add.add_argument("--from", dest="valid_from", required=True, help="first Period, YYYY-MM-DD")
    add.add_argument("--to", dest="valid_to", required=True, help="last Period, YYYY-MM-DD")
    add.add_argument(
        "--reserved-w", type=str, help="W reserved on every ISP (negative: a reduction)"
    )
    add.add_argument(
        "--isp",
        action="append",
        default=[],
        help="START[-END]=W reserved on those ISPs of every Period (repeatable; others: 0)",
    )
    settings_flags(add)
    listed = contract.add_parser("list", help="the contracts, one a line")
    listed.add_argument("--tenant", required=True)
    listed.add_argument("--agr", help="only this AGR's")
    settings_flags(listed)
    remove = contract.add_parser("remove", help="end a contract (kept for its settlement)")
    remove.add_argument("--tenant", required=True)
    remove.add_argument("--contract", required=True)
    settings_flags(remove)
    update = uftp.add_parser(
        "reservation-update",
        help="send a contract's FlexReservationUpdate for a Period now",
    )
    update.add_argument("--tenant", required=True)
    update.add_argument("--contract", required=True)
    update.add_argument("--period", required=True, help="YYYY-MM-DD, not begun yet")
    settings_flags(update)


def command(args: argparse.Namespace, settings: Settings) -> Command:
    if args.action == "reservation-update":
        return _reservation_update(args, settings)
    return {"add": _add, "list": _list, "remove": _remove}[args.what](args)


def period_named(text: str, flag: str) -> date:
    try:
        period = date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(flag, f"{text!r} is not YYYY-MM-DD") from exc
    if len(text) != 10:  # fromisoformat also takes 20261207
        raise ValidationError(flag, f"{text!r} is not YYYY-MM-DD")
    return period


def _watts(text: str, flag: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,13}", text):
        raise ValidationError(flag, f"{text!r} is not whole watts")
    return int(text)


def _spans(texts: list[str]) -> tuple[ReservedSpan, ...]:
    out = []
    for text in texts:
        match = _ISP.fullmatch(text)
        if match is None:
            raise ValidationError("--isp", f"{text!r} is not START[-END]=W")
        first = int(match["first"])
        last = int(match["last"] or first)
        if last < first:
            raise ValidationError("--isp", f"{text!r} ends before it starts")
        out.append(ReservedSpan(first, last - first + 1, int(match["w"])))
    return tuple(out)


def _new(args: argparse.Namespace) -> NewContract:
    if (args.reserved_w is None) == (not args.isp):
        raise ValidationError("--reserved-w", "give --reserved-w or --isp, not both")
    return NewContract(
        args.contract,
        period_named(args.valid_from, "--from"),
        period_named(args.valid_to, "--to"),
        None if args.reserved_w is None else _watts(args.reserved_w, "--reserved-w"),
        _spans(args.isp),
    )


def _isps(start: int, duration: int) -> str:
    return f"{start}-{start + duration - 1}" if duration > 1 else str(start)


def reserved_text(contract: Contract) -> str:
    if contract.reserved_w is not None:
        return f"{contract.reserved_w} W every ISP"
    return ", ".join(f"{_isps(s.start, s.duration)}={s.power_w}" for s in contract.reserved_isps)


def _line(view: contracts.ContractView) -> str:
    c = view.contract
    return "  ".join(
        [
            c.contract_id,
            view.agr,
            view.congestion_point,
            f"{c.valid_from}..{c.valid_to}",
            reserved_text(c),
            str(c.status),
        ]
    )


def _add(args: argparse.Namespace) -> Command:
    async def run(db: Database) -> str:
        new = _new(args)
        view = await contracts.add(db, args.tenant, args.agr, args.congestion_point, new)
        return _line(view)

    return run


def _list(args: argparse.Namespace) -> Command:
    async def run(db: Database) -> str:
        views = await contracts.listing(db, args.tenant, args.agr)
        return "\n".join(_line(v) for v in views) if views else "no contracts"

    return run


def _remove(args: argparse.Namespace) -> Command:
    async def run(db: Database) -> str:
        removed = await contracts.remove(db, args.tenant, args.contract)
        return f"contract {removed.contract_id} removed"

    return run


def _reservation_update(args: argparse.Namespace, settings: Settings) -> Command:
    from adapter.app import uftp_market

    async def run(db: Database) -> str:
        period = period_named(args.period, "--period")
        update = await contracts.reservation_update(
            db, args.tenant, args.contract, period, uftp_market(settings)
        )
        reserved = ", ".join(
            f"ISP {_isps(s['start'], s['duration'])}: {s['power_w']} W"
            for s in update.parts["isps"]
        )
        return f"FlexReservationUpdate {update.message_id} queued for {period}: {reserved}"

    return run
