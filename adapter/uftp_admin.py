"""`flexbridge uftp key|congestion-point add`: the CLI's words around UFTP's identity and
congestion points (protocols/uftp/v3_1); contracts and reservation updates are in
uftp_contracts_admin.py. The command names are fixed: checks outside the
repository call them."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from adapter import uftp_contracts_admin
from adapter.settings import Settings
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.identity import default_domain, identity_of, kept_domain
from store.db import Database
from store.tenants import get_tenant

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


def command(args: argparse.Namespace, settings: Settings) -> Command:
    if args.action in uftp_contracts_admin.ACTIONS:
        return uftp_contracts_admin.command(args, settings)
    if args.action == "key":
        return _key(args, settings)
    return _congestion_point(args)


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


def _congestion_point(args: argparse.Namespace) -> Command:
    async def run(db: Database) -> str:
        new = NewCongestionPoint(args.tenant, args.ea, tuple(args.connection), tuple(args.agr))
        point = await add_congestion_point(db, new)
        return str(point.key)

    return run
