"""`flexbridge uftp key|congestion-point add|settle`: the CLI's words around UFTP's
identity, congestion points and the monthly settlement (protocols/uftp/v3_1); contracts and
reservation updates are in uftp_contracts_admin.py, `uftp list` in uftp_list_admin.py. The
command names are fixed: checks outside the repository call them."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from adapter import uftp_contracts_admin, uftp_list_admin, uftp_portfolio_admin
from adapter.settings import Settings
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.identity import default_domain, identity_of, kept_domain
from store.db import Database
from store.tenants import get_tenant
from store.timeutil import utcnow

if TYPE_CHECKING:
    from protocols.uftp.v3_1.settlement import MonthReport, Sent

Command = Callable[[Database], Awaitable[str]]


def add_commands(
    commands: argparse._SubParsersAction, settings_flags: Callable[[argparse.ArgumentParser], None]
) -> None:  # type: ignore[type-arg]
    uftp = commands.add_parser("uftp", help="UFTP 3.1 (DSO)").add_subparsers(
        dest="action", required=True
    )
    key = uftp.add_parser(
        "key", help="make once, then print, our DSO domain and raw base64 public key"
    )
    key.add_argument("--tenant", required=True)
    key.add_argument(
        "--domain", help="the DSO domain (default: uftp_domain, else public_url's host)"
    )
    settings_flags(key)
    point = uftp.add_parser("congestion-point", help="congestion points").add_subparsers(
        dest="what", required=True
    )
    add = point.add_parser("add", help="create a congestion point and print its platform key")
    add.add_argument("--tenant", required=True)
    add.add_argument("--ea", required=True, help="its EA1 entity address")
    add.add_argument(
        "--connection", action="append", default=[], help="an EAN address of a connection"
    )
    add.add_argument("--agr", action="append", default=[], help="the domain of an AGR active there")
    settings_flags(add)
    uftp_contracts_admin.add_commands(uftp, settings_flags)
    uftp_list_admin.add_commands(uftp, settings_flags)
    uftp_portfolio_admin.add_commands(uftp, settings_flags)
    settle = uftp.add_parser(
        "settle", help="send each AGR the FlexSettlement of a month's accepted FlexOrders"
    )
    settle.add_argument("--tenant", required=True)
    settle.add_argument("--month", required=True, help="YYYY-MM, in uftp_time_zone")
    settle.add_argument(
        "--force",
        action="store_true",
        help="settle a month not over yet (only the orders of days that are over)",
    )
    settings_flags(settle)


def command(args: argparse.Namespace, settings: Settings) -> Command:
    if args.action in uftp_contracts_admin.ACTIONS:
        return uftp_contracts_admin.command(args, settings)
    if args.action in uftp_list_admin.ACTIONS:
        return uftp_list_admin.command(args)
    if args.action in uftp_portfolio_admin.ACTIONS:
        return uftp_portfolio_admin.command(args, settings)
    if args.action == "key":
        return _key(args, settings)
    if args.action == "settle":
        return _settle(args, settings)
    return _congestion_point(args, settings)


def _key(args: argparse.Namespace, settings: Settings) -> Command:
    async def run(db: Database) -> str:
        wanted = default_domain(args.domain or settings.uftp_domain, settings.base_url)
        async with db.transaction() as tx:
            tenant = await get_tenant(tx, args.tenant)
            kept = await kept_domain(tx, tenant)
            identity = await identity_of(tx, tenant, wanted)
        note = ""
        if args.domain and kept is not None and kept != args.domain.lower():
            note = f"\n(the identity was made with domain {kept}; --domain {args.domain} ignored)"
        return f"domain {identity.domain}\npublic key {identity.key.public}{note}"

    return run


def _congestion_point(args: argparse.Namespace, settings: Settings) -> Command:
    async def run(db: Database) -> str:
        from adapter.app import uftp_market

        new = NewCongestionPoint(args.tenant, args.ea, tuple(args.connection), tuple(args.agr))
        point = await add_congestion_point(db, new, uftp_market(settings))
        return str(point.key)

    return run


def _settle(args: argparse.Namespace, settings: Settings) -> Command:
    async def run(db: Database) -> str:
        from adapter.app import uftp_market
        from protocols.uftp.v3_1.settlement import month_named, settle_month

        month = month_named(args.month)
        market = uftp_market(settings)
        report = await settle_month(db, market, args.tenant, month, now=utcnow(), force=args.force)
        return describe(report, args.tenant, market.time_zone.key)

    return run


def _totals(sent: Sequence[Sent]) -> str:
    by_currency: dict[str, list[Decimal]] = {}
    for message in sent:
        figures = by_currency.setdefault(message.currency, [Decimal(0)] * 3)
        for n, what in enumerate(("price", "penalty", "net")):
            figures[n] += message.total(what)
    return "; ".join(
        f"Price {p:.4f} {c}, Penalty {q:.4f}, NetSettlement {n:.4f}"
        for c, (p, q, n) in sorted(by_currency.items())
    )


def describe(report: MonthReport, tenant: str, zone: str) -> str:
    """What `uftp settle` did: a line per FlexSettlement and order, what earlier runs sent,
    and a summary."""
    month = report.month.label
    lines = [f"settling {month} ({zone}) for tenant {tenant}"]
    for message in report.sent:
        lines.append(
            f"sent FlexSettlement {message.message_id} to {message.peer}: "
            f"{len(message.orders)} order(s), {_totals([message])}"
        )
        for s in message.orders:
            gaps = f", {s.unmetered} without Metering" if s.unmetered else ""
            gaps += f", {s.unbaselined} without a baseline" if s.unbaselined else ""
            lines.append(
                f"  order {s.order.parts['order_reference']} {s.day.period} {s.address}: "
                f"Price {s.price:.4f}, Penalty {s.penalty:.4f}, NetSettlement {s.net:.4f} "
                f"({len(s.isps)} ISPs{gaps})"
            )
    for earlier in report.before:
        lines.append(
            f"already sent FlexSettlement {earlier.message_id} to {report.peers[earlier.peer_id]}"
            f" ({earlier.status}): {len(earlier.orders)} order(s), not sent again"
        )
    orders = sum(len(m.orders) for m in report.sent)
    agrs = len({m.peer for m in report.sent})
    if report.sent:
        summary = (
            f"settled {orders} order(s) of {agrs} AGR(s) in {len(report.sent)} "
            f"FlexSettlement(s): {_totals(report.sent)}"
        )
    else:
        summary = f"nothing new to settle for {month}"
    if report.unanswered:
        summary += f"; {report.unanswered} order(s) never answered by their AGR, not settled"
    if report.later:
        summary += f"; {report.later} order(s) of days not over yet, left for later"
    lines.append(summary)
    return "\n".join(lines)
