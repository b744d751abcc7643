"""`flexbridge uftp portfolio update|query` and `flexbridge uftp test-message`: the CLI's
words around what the DSO sends a CRO, and any peer, on demand
(protocols/uftp/v3_1/on_demand.py), mounted by uftp_admin.py under `flexbridge uftp`.

The messages go into the outbox, which the running server (or a `flexbridge worker`)
delivers; with --wait the command waits for the answers it takes in and prints them."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence

from adapter.settings import Settings
from adapter.uftp_contracts_admin import period_named
from protocols.uftp.v3_1 import on_demand
from protocols.uftp.v3_1.market import Market
from store.db import Database
from store.uftp_exchanges import Exchange, ExchangeStatus

Command = Callable[[Database], Awaitable[str]]
ACTIONS = frozenset({"portfolio", "test-message"})
_WAIT_HELP = "wait up to S seconds for the answer and print it"


def add_commands(
    uftp: argparse._SubParsersAction,  # type: ignore[type-arg]
    settings_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    portfolio = uftp.add_parser(
        "portfolio", help="our congestion points at the CRO"
    ).add_subparsers(dest="what", required=True)
    update = portfolio.add_parser("update", help="send each CRO a DSOPortfolioUpdate now")
    update.add_argument("--tenant", required=True)
    update.add_argument("--congestion-point", help="its EA1 address (default: all)")
    settings_flags(update)
    query = portfolio.add_parser(
        "query", help="ask each CRO which AGRs represent a congestion point's connections"
    )
    query.add_argument("--tenant", required=True)
    query.add_argument("--congestion-point", help="its EA1 address (default: each)")
    query.add_argument("--period", help="YYYY-MM-DD (default: today in uftp_time_zone)")
    query.add_argument("--wait", metavar="S", help=_WAIT_HELP)
    settings_flags(query)
    test = uftp.add_parser("test-message", help="send a uftp peer a TestMessage")
    test.add_argument("--tenant", required=True)
    test.add_argument("--peer", required=True, help="the peer's domain")
    test.add_argument("--wait", metavar="S", help=_WAIT_HELP)
    settings_flags(test)


def command(args: argparse.Namespace, settings: Settings) -> Command:
    if args.action == "test-message":
        return _test_message(args, settings)
    return {"update": _update, "query": _query}[args.what](args, settings)


def _market(settings: Settings) -> Market:
    from adapter.app import uftp_market

    return uftp_market(settings)


def _queued(exchange: Exchange, peer: str, what: str) -> str:
    return f"{exchange.kind} {exchange.message_id} queued for {peer}: {what}"


def _update(args: argparse.Namespace, settings: Settings) -> Command:
    async def run(db: Database) -> str:
        sent = await on_demand.portfolio_update(
            db, args.tenant, _market(settings), args.congestion_point
        )
        peers = await on_demand.peer_names(db, args.tenant, sent)
        return "\n".join(_queued(e, peers[e.peer_id], _registered(e)) for e in sent)

    return run


def _registered(exchange: Exchange) -> str:
    points = exchange.request["congestion_points"]
    connections = sum(len(p["connections"]) for p in points)
    names = ", ".join(p["address"] for p in points)
    return f"{len(points)} congestion point(s) ({names}), {connections} connection(s)"


def _query(args: argparse.Namespace, settings: Settings) -> Command:
    async def run(db: Database) -> str:
        wait = on_demand.wait_seconds(args.wait)
        period = None if args.period is None else period_named(args.period, "--period")
        sent = await on_demand.portfolio_query(
            db, args.tenant, _market(settings), args.congestion_point, period
        )
        peers = await on_demand.peer_names(db, args.tenant, sent)
        lines = [
            _queued(
                e, peers[e.peer_id], f"{e.request['congestion_point']} on {e.request['period']}"
            )
            for e in sent
        ]
        if wait is not None:
            for answered in await on_demand.answers(db, sent, wait):
                lines += _query_answer(answered, peers[answered.peer_id], wait)
        return "\n".join(lines)

    return run


def _asked(exchange: Exchange) -> str:
    return f"{exchange.request['congestion_point']} on {exchange.request['period']}"


def _verdict(exchange: Exchange, response: str, peer: str, wait: float) -> str | None:
    """The line for an answer that carries nothing else, or None when it was Accepted."""
    if exchange.status is ExchangeStatus.SENT:
        return f"no {response} from {peer} within {wait:g} s (still waiting: {exchange.message_id})"
    if exchange.status is ExchangeStatus.REJECTED:
        return f"{response} from {peer}: Rejected: {exchange.rejection_reason}"
    return None


def _query_answer(exchange: Exchange, peer: str, wait: float) -> Sequence[str]:
    verdict = _verdict(exchange, "DSOPortfolioQueryResponse", peer, wait)
    if verdict is not None:
        return [verdict]
    answer = exchange.answer or {}
    connections = answer.get("connections", [])
    lines = [
        f"DSOPortfolioQueryResponse from {peer}: Accepted, {answer.get('congestion_point')}: "
        f"{len(connections)} connection(s)"
    ]
    for c in connections:
        if c["agr"] is None:
            agr = "no AGR"
        else:
            agr = f"AGR {c['agr']} " + ("(linked)" if c["linked"] else "(not linked)")
        lines.append(f"  {c['ean']}  {agr}")
    return lines


def _test_message(args: argparse.Namespace, settings: Settings) -> Command:
    async def run(db: Database) -> str:
        wait = on_demand.wait_seconds(args.wait)
        sent = await on_demand.send_test(db, args.tenant, _market(settings), args.peer)
        lines = [_queued(sent, args.peer, f"conversation {sent.conversation_id}")]
        if wait is not None:
            (answered,) = await on_demand.answers(db, [sent], wait)
            verdict = _verdict(answered, "TestMessageResponse", args.peer, wait)
            result = (answered.answer or {}).get("result")
            lines.append(
                verdict
                or f"TestMessageResponse from {args.peer}"
                + (f" (Result {result})" if result else "")
            )
        return "\n".join(lines)

    return run
