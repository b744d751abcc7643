"""UFTP 3.1 bilateral contracts, flexbridge as the DSO: FlexReservationUpdate (on demand and
by the clock) and its response, the ContractID of FlexRequests, FlexOffers and FlexOrders,
and the ContractSettlements a FlexSettlement is given; over real HTTP with the AGR of
tests/uftp_agr.py, on SQLite and PostgreSQL. Rules from wave2-requirements B.3 and the
reference XSD's documentation (docs/protocols/uftp-3.1.md, "Contracts")."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xmlschema
from conftest import TEST_KEY
from sqlalchemy import select, update
from test_uftp_fuzz import (
    ALLOWED,
    ODD_VALUES,
    SEED,
    El,
    Messages,
    Raw,
    _signed,
    outcome_of,
    post,
    random_shot,
    reply_to,
)
from test_uftp_fuzz import DOMAIN as FUZZ_DOMAIN
from test_uftp_fuzz import document as fuzz_document
from test_uftp_schemas import reference_xsd_dir
from uftp_agr import AMSTERDAM, CP, Agr, isp_nodes
from uftp_agr import flex_attributes as _flex
from uftp_agr import isps_of as _isps
from uftp_agr import valid_outbound as _valid_outbound

from adapter import peer_admin, uftp_admin
from adapter.cli import _environment_errors, _parser
from adapter.keys import DB
from adapter.settings import Settings, SettingsError, load_settings
from protocols.common.context import HUB
from protocols.common.xmlschemas import parse
from protocols.uftp.v3_1 import MARKET, clock, contracts
from protocols.uftp.v3_1.codec import Node, document, timestamp
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.contract_settlement import (
    contract_settlement_node,
    contract_settlements,
)
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.reservations import still_reserved
from protocols.uftp.v3_1.sealing import SigningKey
from store.db import open_database
from store.errors import Conflict, StoreError, ValidationError
from store.migrate import upgrade
from store.peers import find_peer
from store.secret_box import SecretBox
from store.series import ensure_series
from store.series_types import SeriesType
from store.tables import uftp_contracts, uftp_flex_orders, uftp_reservation_updates
from store.tenants import add_tenant
from store.uftp import TradeStatus
from store.uftp_contracts import NewContract, ReservedSpan
from store.values import Point, write_values

Q = timedelta(minutes=15)
RESERVED_W = -30_000
PEAK = range(41, 45)  # ISPs prognosed 20 kW over the capacity
OTHER_CP = "ea1.2026-12.nl.example.dso:cp-2"


def _period() -> date:
    """Three days ahead: beyond the clock's own day-ahead update (10 h before the Period),
    which the fixture's running clock would otherwise send by itself."""
    return datetime.now(AMSTERDAM).date() + timedelta(days=3)


async def _contract(dso: Any, contract_id: str = "C-1", **more: Any) -> Any:
    period = more.pop("period", _period())
    new = NewContract(contract_id, period, period + timedelta(days=1), **more)
    if new.reserved_w is None and not new.reserved_isps:
        new = replace(new, reserved_w=RESERVED_W)
    return await contracts.add(dso.app[DB], "grid", dso.agr.domain, CP, new)


async def _prognose(dso: Any, period: date, peak_w: int = 120_000, revision: int = 1) -> None:
    """MaxCapacity 100 kW on every ISP; prognosed 80 kW, `peak_w` on ISPs 41-44."""
    count = _isps(period)
    start = datetime.combine(period, datetime.min.time(), AMSTERDAM).astimezone(UTC)
    async with dso.app[DB].transaction() as tx:
        series = await ensure_series(
            tx, dso.tenant, dso.point, SeriesType.MAX_CAPACITY, resolution=Q
        )
        points = [Point(start + n * Q, start + (n + 1) * Q, 100.0) for n in range(count)]
        await write_values(tx, dso.tenant, series, points, source="cpapi")
    powers = [peak_w if n + 1 in PEAK else 80_000 for n in range(count)]
    status, _ = await dso.send(
        "D-Prognosis", isp_nodes(powers), **_flex(period, Revision=str(revision))
    )
    assert status == 200
    assert (await dso.agr.next("D-PrognosisResponse")).attributes["Result"] == "Accepted"


def _powers(update: Any) -> dict[int, int]:
    """ISP -> W of a received FlexReservationUpdate."""
    powers = {}
    for isp in update.children:
        start, duration = int(isp.attrib["Start"]), int(isp.attrib.get("Duration", "1"))
        for n in range(start, start + duration):
            powers[n] = int(isp.attrib["Power"])
    return powers


def _reference_valid(inner: bytes) -> None:
    """Valid against the specification's UFTP-dso.xsd (skipped where it is not found)."""
    folder = reference_xsd_dir()
    if folder is None:
        pytest.skip("the reference UFTP 3.1.0 XSDs are not found (tests/test_uftp_schemas.py)")
    schema = xmlschema.XMLSchema10(str(folder / "UFTP-dso.xsd"), allow="sandbox")
    schema.validate(xmlschema.XMLResource(inner, defuse="always", allow="none"))


async def _update_status(dso: Any, message_id: str) -> tuple[str, str | None]:
    async with dso.app[DB].read() as tx:
        row = (
            await tx.execute(
                select(
                    uftp_reservation_updates.c.status, uftp_reservation_updates.c.rejection_reason
                ).where(uftp_reservation_updates.c.message_id == message_id)
            )
        ).one()
    return row.status, row.rejection_reason


async def _answer(dso: Any, update: Any, **result: str) -> None:
    status, _ = await dso.send(
        "FlexReservationUpdateResponse",
        ConversationID=update.attributes["ConversationID"],
        FlexReservationUpdateMessageID=update.attributes["MessageID"],
        **result,
    )
    assert status == 200


# --- FlexReservationUpdate --------------------------------------------------------------


async def test_a_reservation_update_keeps_reserved_only_what_the_overload_needs(dso):
    """FlexReservationUpdate "used by the DSO to signal which part of the contracted
    flexibility is still reserved": of a 30 kW reservation, the 20 kW the prognosed overload
    needs on ISPs 41-44 and nothing elsewhere; signed, valid against our schema and the
    reference XSD, with the contract's ContractID and a Reference of ours."""
    period = _period()
    await _contract(dso)
    await _prognose(dso, period)
    await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, dso.app[MARKET])
    update = await dso.agr.next("FlexReservationUpdate")
    _valid_outbound(update.inner)
    _reference_valid(update.inner)
    a = update.attributes
    assert (a["ContractID"], a["CongestionPoint"], a["Period"]) == ("C-1", CP, str(period))
    assert a["Reference"] and a["ISP-Duration"] == "PT15M"
    powers = _powers(update)
    assert sorted(powers) == list(range(1, _isps(period) + 1))
    assert {n: w for n, w in powers.items() if w} == {n: -20_000 for n in PEAK}


async def test_without_a_prognosis_nothing_is_released(dso):
    """Nothing known of the Period's load, nothing the DSO can give back: the whole
    reservation stays."""
    period = _period()
    await _contract(dso)
    await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, dso.app[MARKET])
    update = await dso.agr.next("FlexReservationUpdate")
    assert set(_powers(update).values()) == {RESERVED_W}


async def test_flex_once_released_is_not_reserved_again(dso):
    """Released flex may have been sold elsewhere: a later, higher prognosis (30 kW over)
    keeps at most what the previous update kept (20 kW)."""
    period = _period()
    await _contract(dso)
    await _prognose(dso, period)
    market = dso.app[MARKET]
    await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, market)
    await dso.agr.next("FlexReservationUpdate")
    await _prognose(dso, period, peak_w=130_000, revision=2)
    await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, market)
    again = await dso.agr.next("FlexReservationUpdate")
    assert {n: w for n, w in _powers(again).items() if w} == {n: -20_000 for n in PEAK}


async def test_a_pattern_contract_reserves_only_its_isps(dso):
    """A contract of ISPs (41-44 at -10 kW): the others reserve nothing, and an overload of
    20 kW keeps all 10 kW."""
    period = _period()
    await _contract(dso, reserved_isps=(ReservedSpan(41, 4, -10_000),))
    await _prognose(dso, period)
    await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, dso.app[MARKET])
    update = await dso.agr.next("FlexReservationUpdate")
    assert {n: w for n, w in _powers(update).items() if w} == {n: -10_000 for n in PEAK}


async def test_the_response_marks_the_update_accepted_or_rejected_with_its_reason(dso):
    """FlexReservationUpdateResponse (FlexReservationUpdateMessageID): our update is
    accepted, or rejected with the AGR's reason ("reject when it does not match the
    bilateral contract or arrives after the deadline")."""
    period = _period()
    await _contract(dso)
    market = dso.app[MARKET]
    for result in ({"Result": "Accepted"}, {"Result": "Rejected", "RejectionReason": "late"}):
        await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, market)
        update = await dso.agr.next("FlexReservationUpdate")
        await _answer(dso, update, **result)
        expected = ("accepted", None) if len(result) == 1 else ("rejected", "late")
        assert await _update_status(dso, update.attributes["MessageID"]) == expected


async def test_a_response_naming_no_update_of_ours_changes_nothing(dso):
    """A response is never answered; one naming an unknown update is only logged."""
    period = _period()
    await _contract(dso)
    await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, dso.app[MARKET])
    update = await dso.agr.next("FlexReservationUpdate")
    status, _ = await dso.send(
        "FlexReservationUpdateResponse",
        FlexReservationUpdateMessageID="00000000-0000-4000-8000-000000000000",
        Result="Rejected",
    )
    assert status == 200
    assert await _update_status(dso, update.attributes["MessageID"]) == ("sent", None)


async def test_an_update_for_a_period_begun_or_outside_the_contract_is_refused(dso):
    """The AGR may "reject when it ... arrives after the deadline": flexbridge sends none
    for a Period that has begun, nor for one its contract does not run on."""
    await _contract(dso, period=datetime.now(AMSTERDAM).date())
    market = dso.app[MARKET]
    today = datetime.now(AMSTERDAM).date()
    with pytest.raises(ValidationError, match="has begun"):
        await contracts.reservation_update(dso.app[DB], "grid", "C-1", today, market)
    with pytest.raises(ValidationError, match="does not run"):
        await contracts.reservation_update(
            dso.app[DB], "grid", "C-1", today + timedelta(days=5), market
        )


async def test_the_clock_sends_each_contract_its_update_once_when_the_lead_is_reached(dso):
    """Day-ahead by default: `uftp_reservation_lead_seconds` (10 h) before the Period
    begins, the clock sends each running contract's update for it, once; not before."""
    period = _period()
    await _contract(dso)
    market = dso.app[MARKET]
    start = Day(period, market.time_zone, market.isp).start
    db, hub = dso.app[DB], dso.app[HUB]
    await clock.tick(db, hub, start - market.reservation_lead - timedelta(seconds=1), market)
    await clock.tick(db, hub, start - market.reservation_lead + timedelta(minutes=1), market)
    await clock.tick(db, hub, start - market.reservation_lead + timedelta(minutes=2), market)
    update = await dso.agr.next("FlexReservationUpdate")
    assert update.attributes["Period"] == str(period)
    async with db.read() as tx:
        rows = (await tx.execute(select(uftp_reservation_updates.c.period))).scalars().all()
    assert rows == [str(period)]


# --- contracts and ContractID ------------------------------------------------------------


async def test_contracts_of_one_agr_at_one_congestion_point_may_not_overlap(dso):
    """A Period has at most one contract per AGR and congestion point, so a message names
    one; ContractIDs are unique."""
    await _contract(dso)
    with pytest.raises(Conflict, match="may not overlap"):
        await _contract(dso, "C-2")
    with pytest.raises(Conflict, match="exists already"):
        await _contract(dso, "C-1", period=_period() + timedelta(days=10))
    await contracts.remove(dso.app[DB], "grid", "C-1")
    assert (await _contract(dso, "C-2")).contract.contract_id == "C-2"


async def test_a_flex_request_for_a_congestion_point_under_contract_carries_its_contract_id(dso):
    """FlexRequest: "ContractID?" — the AGR's contract at the congestion point that runs on
    the Period."""
    period = _period()
    await _contract(dso)
    await _prognose(dso, period)
    request = await dso.agr.next("FlexRequest")
    _valid_outbound(request.inner)
    assert request.attributes["ContractID"] == "C-1"


def _offer(dso: Any, period: date, request: Any, watts: int, **more: str) -> bytes:
    option = Node(
        "OfferOption",
        {"OptionReference": "A", "Price": "10.0000", "MinActivationFactor": "1.00"},
        [Node("ISP", {"Power": str(-watts), "Start": "41", "Duration": "4"})],
    )
    attributes = dso.agr.metadata(
        ConversationID=request.attributes["ConversationID"],
        **_flex(period),
        ExpirationDateTime=timestamp(datetime.now(UTC) + timedelta(hours=2)),
        FlexRequestMessageID=request.attributes["MessageID"],
        Currency="EUR",
        **more,
    )
    return dso.agr.signed(dso.agr.message("FlexOffer", attributes, [option]))


async def _second_agr(dso: Any) -> Agr:
    other = Agr(domain="agr2.example.com")
    await peer_admin.add(
        dso.app[DB],
        peer_admin.NewPeer(
            "grid",
            "uftp",
            other.domain,
            "http://127.0.0.1:9/m",
            role="AGR",
            public_keys=(other.key.public,),
        ),
    )
    await add_congestion_point(dso.app[DB], NewCongestionPoint("grid", CP, (), (other.domain,)))
    await add_congestion_point(
        dso.app[DB], NewCongestionPoint("grid", OTHER_CP, (), (dso.agr.domain,))
    )
    return other


@pytest.mark.parametrize("whose", ["unknown", "another AGR's", "another congestion point's"])
async def test_an_offer_naming_a_contract_not_its_own_here_is_an_invalid_message(dso, whose):
    """FlexOffer "ContractID?": one that names no contract of the AGR at the congestion
    point is Rejected "Invalid Message" (the specification has no reason of its own), with
    the same words whether it exists elsewhere or not; nothing is stored."""
    period = _period()
    await _contract(dso)
    await _prognose(dso, period)
    request = await dso.agr.next("FlexRequest")
    named = "C-404"
    if whose != "unknown":
        await _second_agr(dso)
        named = "C-X"
        owner = "agr2.example.com" if whose == "another AGR's" else dso.agr.domain
        point = CP if whose == "another AGR's" else OTHER_CP
        new = NewContract(named, period, period, reserved_w=-1)
        await contracts.add(dso.app[DB], "grid", owner, point, new)
    assert (await dso.post(_offer(dso, period, request, 20_000, ContractID=named)))[0] == 200
    reply = await dso.agr.next("FlexOfferResponse")
    assert reply.attributes["Result"] == "Rejected"
    assert reply.attributes["RejectionReason"] == (
        f"Invalid Message: ContractID {named} is not a contract of {dso.agr.domain}"
        " at this CongestionPoint"
    )


async def test_an_order_of_an_offer_under_contract_carries_the_contract_id(dso):
    """FlexOrder "ContractID?": the order of an offer made under the contract names it."""
    period = _period()
    await _contract(dso)
    await _prognose(dso, period)
    request = await dso.agr.next("FlexRequest")
    assert (await dso.post(_offer(dso, period, request, 20_000, ContractID="C-1")))[0] == 200
    assert (await dso.agr.next("FlexOfferResponse")).attributes["Result"] == "Accepted"
    order = await dso.agr.next("FlexOrder")
    _valid_outbound(order.inner)
    assert order.attributes["ContractID"] == "C-1"


# --- ContractSettlement --------------------------------------------------------------------


async def _ordered_under_contract(dso: Any, offered_w: int) -> date:
    """Contract C-1, a prognosis over it, and an offer of `offered_w` under it, ordered:
    the Period."""
    period = _period()
    await _contract(dso)
    await _prognose(dso, period)
    request = await dso.agr.next("FlexRequest")
    assert (await dso.post(_offer(dso, period, request, offered_w, ContractID="C-1")))[0] == 200
    await dso.agr.next("FlexOrder")
    return period


async def test_contract_settlements_give_reserved_requested_offered_and_ordered_power(dso):
    """ContractSettlement ISP: ReservedPower "reserved (and not released using a
    FlexReservationUpdate)", RequestedPower "both reserved and requested (i.e. the lowest
    amount)", OfferedPower covered in an offer, OrderedPower ordered under the contract;
    the element, inside a FlexSettlement, is valid against our schema and the reference."""
    period = await _ordered_under_contract(dso, 25_000)
    market = dso.app[MARKET]
    await contracts.reservation_update(dso.app[DB], "grid", "C-1", period, market)
    following = period + timedelta(days=1)
    async with dso.app[DB].read() as tx:
        agr = await find_peer(tx, dso.tenant, "uftp", dso.agr.domain)
        (settled,) = await contract_settlements(tx, dso.tenant, agr, period, market)
        months = {period.replace(day=1), following.replace(day=1)}
        days = {
            p.period: p
            for month in months
            for s in await contract_settlements(tx, dso.tenant, agr, month, market)
            for p in s.periods
        }
    assert (settled.contract_id, settled.congestion_point) == ("C-1", CP)
    assert sorted(days) == [period, following]  # the contract's two days, in their months
    first = settled.periods[0]
    assert first.period == period and len(first.isps) == _isps(period)
    peak = first.isps[PEAK[0] - 1]
    assert (peak.reserved_w, peak.requested_w, peak.offered_w, peak.ordered_w) == (
        -20_000,
        -20_000,
        -20_000,
        -25_000,
    )
    quiet = first.isps[0]
    assert (quiet.reserved_w, quiet.requested_w, quiet.offered_w, quiet.ordered_w) == (0, 0, 0, 0)
    # The contract's second day: nothing sent, all reserved, no request.
    second = days[following].isps[0]
    assert (second.reserved_w, second.requested_w, second.ordered_w) == (RESERVED_W, None, None)

    node = contract_settlement_node(settled)
    settlement = _flex_settlement(dso, period, node)
    _valid_outbound(settlement)
    _reference_valid(settlement)
    assert parse(settlement).find("ContractSettlement/Period/ISP").attrib["Duration"] == "40"


async def test_ordered_power_counts_the_orders_an_earlier_flex_settlement_settled(dso):
    """OrderedPower: the orders "not rejected" placed under the contract, those a first
    FlexSettlement of the month settled (settle --force, then again) among them, so that the
    second says of the contract what the first did."""
    period = await _ordered_under_contract(dso, 25_000)
    market = dso.app[MARKET]

    async def ordered_at_peak() -> int | None:
        async with dso.app[DB].read() as tx:
            agr = await find_peer(tx, dso.tenant, "uftp", dso.agr.domain)
            (settled,) = await contract_settlements(tx, dso.tenant, agr, period, market)
        return settled.periods[0].isps[PEAK[0] - 1].ordered_w

    assert await ordered_at_peak() == -25_000
    async with dso.app[DB].transaction() as tx:  # what a first FlexSettlement does to them
        marked = await tx.execute(update(uftp_flex_orders).values(status=str(TradeStatus.SETTLED)))
    assert marked.rowcount == 1
    assert await ordered_at_peak() == -25_000


def _flex_settlement(dso: Any, period: date, contract: Node) -> bytes:
    """A FlexSettlement around the ContractSettlement (the 3.x schema wants an order
    settlement beside it)."""
    order = Node(
        "FlexOrderSettlement",
        {
            "OrderReference": "o-1",
            "Period": str(period),
            "CongestionPoint": CP,
            "Price": "10.0000",
            "NetSettlement": "10.0000",
        },
        [
            Node(
                "ISP",
                {
                    "Start": "1",
                    "BaselinePower": "0",
                    "OrderedFlexPower": "0",
                    "ActualPower": "0",
                    "DeliveredFlexPower": "0",
                },
            )
        ],
    )
    attributes = {
        "Version": "3.1.0",
        "SenderDomain": "dso.example.com",
        "RecipientDomain": dso.agr.domain,
        "TimeStamp": timestamp(datetime.now(UTC)),
        "MessageID": "00000000-0000-4000-8000-000000000001",
        "ConversationID": "00000000-0000-4000-8000-000000000002",
        "Result": "Accepted",
        "PeriodStart": str(period.replace(day=1)),
        "PeriodEnd": str(period),
        "Currency": "EUR",
    }
    return document(Node("FlexSettlement", attributes, [order, contract]))


async def test_a_month_without_a_contract_day_has_no_contract_settlement(dso):
    """A FlexSettlement's ContractSettlements cover the contracts that ran in the month."""
    period = _period()
    await _contract(dso)
    async with dso.app[DB].read() as tx:
        agr = await find_peer(tx, dso.tenant, "uftp", dso.agr.domain)
        later = (period.replace(day=1) + timedelta(days=70)).replace(day=1)
        assert await contract_settlements(tx, dso.tenant, agr, later, dso.app[MARKET]) == []


# --- the CLI, as users run it ------------------------------------------------------------

FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))


async def test_the_contract_commands_add_remove_and_list(tmp_path):
    """`flexbridge uftp contract add`, `uftp contract remove` and `uftp contract list`, each
    a real process on one SQLite file (the tenant, the AGR and the congestion point made
    through the store beforehand, as their own commands' tests cover those;
    `uftp reservation-update` runs as a process in tests/test_uftp_shapeshifter.py)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    db = open_database(url, secrets=SecretBox([TEST_KEY]))
    agr = "agr.example.com"
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            await add_tenant(tx, "grid")
        await peer_admin.add(
            db,
            peer_admin.NewPeer(
                "grid",
                "uftp",
                agr,
                "http://127.0.0.1:9/m",
                role="AGR",
                public_keys=(SigningKey.generate().public,),
            ),
        )
        await add_congestion_point(db, NewCongestionPoint("grid", CP, (), (agr,)))
    finally:
        await db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    env |= {
        "FLEXBRIDGE_DATABASE_URL": url,
        "FLEXBRIDGE_SECRET_KEYS": TEST_KEY,
        "FLEXBRIDGE_UFTP_DOMAIN": "dso.example.com",
    }

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [FLEXBRIDGE, "uftp", *args, "--tenant", "grid"]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done

    period = _period().isoformat()
    added = await run(
        "contract", "add", "--contract", "C-1", "--agr", agr, "--congestion-point", CP,
        "--from", period, "--to", period, "--reserved-w", "-5000",
    )  # fmt: skip
    assert added.stdout.split() == [
        "C-1", agr, CP, f"{period}..{period}", "-5000", "W", "every", "ISP", "active",
    ]  # fmt: skip
    assert (await run("contract", "remove", "--contract", "C-1")).stdout.strip() == (
        "contract C-1 removed"
    )
    assert (await run("contract", "list")).stdout.split()[-1] == "removed"


async def test_the_contract_commands_say_what_they_did_or_in_one_line_why_not(dso):
    """`uftp reservation-update` prints what stays reserved; an overlapping contract, both
    kinds of reservation, a backwards span, an unknown contract, an update under a removed
    contract: exit 2 and one line naming the reason."""
    period = _period().isoformat()
    base = ["uftp", "contract", "add", "--tenant", "grid", "--agr", dso.agr.domain]
    base += ["--congestion-point", CP, "--from", period, "--to", period]
    assert (await _cli(dso, [*base, "--contract", "C-1", "--reserved-w", "-1"]))[0] == 0
    for argv, reason in [
        ([*base, "--contract", "C-2", "--isp", "1=-1"], "may not overlap"),
        ([*base, "--contract", "C-3", "--isp", "1=-1", "--reserved-w", "-1"], "not both"),
        ([*base, "--contract", "C-3", "--isp", "5-1=-1"], "ends before it starts"),
        (["uftp", "contract", "remove", "--tenant", "grid", "--contract", "C-9"], "not found"),
    ]:
        code, said = await _cli(dso, argv)
        assert (code, "\n" in said) == (2, False) and reason in said, (argv, said)
    update = ["uftp", "reservation-update", "--tenant", "grid", "--contract", "C-1"]
    code, said = await _cli(dso, [*update, "--period", period])
    assert code == 0 and said.endswith(f"queued for {period}: ISP 1-{_isps(_period())}: -1 W")
    await _cli(dso, ["uftp", "contract", "remove", "--tenant", "grid", "--contract", "C-1"])
    code, said = await _cli(dso, [*update, "--period", period])
    assert code == 2 and "does not run" in said


# --- hostile input, seeded -------------------------------------------------------------

CLI_CASES = int(os.environ.get("FLEXBRIDGE_UFTP_CONTRACT_FUZZ_CASES", "100"))
CLI_VALUES = [
    *(v for v in ODD_VALUES if not isinstance(v, Raw)),
    "2026-02-30",
    "20261207",
    "0001-01-01",
    "9999-12-31",
    "1-96=-20000",
    "96-1=5",
    "0=1",
    "101=1",
    "1-2=1,3=4",
    "1=" + "9" * 14,
    "-20000",
    "--help",
    "C-1",
    "ea1.2026-12.nl.example.dso:cp-1",
    "agr.example.com",
]


def _cli_case(rng: random.Random, period: str) -> list[str]:
    """`uftp contract add` with one or two arguments odd (or dropped)."""
    flags = {
        "--tenant": "grid",
        "--contract": f"C-{rng.randrange(5)}",
        "--agr": "agr.example.com",
        "--congestion-point": CP,
        "--from": period,
        "--to": period,
        rng.choice(["--reserved-w", "--isp"]): "-1000" if rng.random() < 0.5 else "41-44=-1",
    }
    for _ in range(rng.choice([1, 2])):
        flag = rng.choice([*flags, "--isp", "--reserved-w"])
        if rng.random() < 0.15:
            flags.pop(flag, None)
        else:
            flags[flag] = rng.choice(CLI_VALUES)
    return ["uftp", "contract", "add", *(x for pair in flags.items() for x in pair)]


async def _cli(dso: Any, argv: list[str]) -> tuple[int, str]:
    """The command as `flexbridge` runs it (its parser, its command, its refusal of a store
    error in one line), on the fixture's open database: (exit status, what it printed)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: usage and one error line on stderr
        return int(exc.code or 0), ""
    try:
        return 0, await uftp_admin.command(args, Settings())(dso.app[DB])
    except (StoreError, *_environment_errors()) as exc:
        return 2, f"error: {exc}"


async def test_odd_contract_arguments_are_refused_in_one_line_and_write_nothing(
    dso, database_url, capsys
):
    """Bad input never yields a traceback or a partial write: every `uftp contract add`
    exits 0 (a contract made) or 2 (one line of error, or argparse's usage), and a refused
    one leaves the contracts as they were."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the CLI's checks are the same on both backends: one is enough")
    rng = random.Random(SEED)
    period = _period().isoformat()
    codes: Counter[int] = Counter()
    for n in range(CLI_CASES):
        argv = _cli_case(rng, period)
        async with dso.app[DB].read() as tx:
            before = (await tx.execute(select(uftp_contracts))).all()
        code, said = await _cli(dso, argv)
        capsys.readouterr()
        where = f"case {n} (seed {SEED}): {argv}"
        assert code in (0, 2), f"{code} {where}"
        codes[code] += 1
        if code == 2:
            assert "\n" not in said, where
            async with dso.app[DB].read() as tx:
                after = (await tx.execute(select(uftp_contracts))).all()
            assert after == before, where
    assert codes[0] and codes[2], codes  # the cases reached both outcomes


def _fuzz_offer(messages: Messages, contract_id: str) -> El:
    offer = messages.flex_offer()
    offer.attrs["ContractID"] = contract_id
    return offer


async def test_hostile_contract_ids_and_reservation_responses_get_no_5xx_nor_write(dso):
    """Seeded: FlexOffers naming odd ContractIDs (empty, 5000 characters, NUL, lone
    surrogates, entities) and FlexReservationUpdateResponses broken as the UFTP fuzz breaks
    messages: the status is one of the spec table's, and a message refused or Rejected
    leaves the domain tables, contracts and updates as they were."""
    rng = random.Random(SEED)
    messages = Messages(dso, rng, "")
    await _contract(dso, "C-fuzz", period=datetime.now(AMSTERDAM).date() + timedelta(days=1))
    period = datetime.now(AMSTERDAM).date() + timedelta(days=1)
    await contracts.reservation_update(dso.app[DB], "grid", "C-fuzz", period, dso.app[MARKET])
    update = await dso.agr.next("FlexReservationUpdate")
    tables = (*FUZZ_DOMAIN, uftp_contracts, uftp_reservation_updates)
    before = await _fingerprint(dso, tables)
    outcomes: Counter[str] = Counter()
    for n in range(60):
        if n % 2:
            message = _fuzz_offer(messages, rng.choice([*ODD_VALUES, "C-fuzz", "C-404"]))
        else:
            message = El(
                "FlexReservationUpdateResponse",
                {
                    **messages._metadata(),
                    "ConversationID": update.attributes["ConversationID"],
                    "FlexReservationUpdateMessageID": update.attributes["MessageID"],
                    "Result": rng.choice(["Accepted", "Rejected"]),
                    "RejectionReason": rng.choice(["late", "x" * 5000, ""]),
                },
            )
        # Half go as they are, their one odd value reaching the handler; half broken more.
        if rng.random() < 0.5:
            shot = _signed(dso, f"{message.tag} as made", fuzz_document(message))
        else:
            shot = random_shot(dso, rng, message)
        status = await post(dso, shot)
        assert status in ALLOWED, f"case {n}: HTTP {status}, {shot.label}"
        reply = await reply_to(dso, shot.inner) if status == 200 and shot.inner else None
        outcome = outcome_of(status, reply)
        outcomes[outcome] += 1
        after = await _fingerprint(dso, tables)
        changed_ok = outcome.startswith("200 Accepted") or (
            message.tag.endswith("Response") and status == 200
        )
        assert changed_ok or after == before, f"case {n}: {outcome} changed {shot.label}"
        before = after
    print(f"\ncontract fuzz, seed {SEED}: {dict(sorted(outcomes.items()))}")
    assert outcomes["400"] and outcomes["200 Rejected Invalid Message"], outcomes


async def _fingerprint(dso: Any, tables: tuple[Any, ...]) -> str:
    digest = hashlib.sha256()
    async with dso.app[DB].read() as tx:
        for table in tables:
            rows = (await tx.execute(select(table).order_by(*table.primary_key.columns))).all()
            digest.update(repr([tuple(r) for r in rows]).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "604801", "inf"])
def test_a_reservation_lead_of_nothing_or_beyond_a_week_is_refused(value):
    """`uftp_reservation_lead_seconds` must be more than 0 and at most a week: the clock
    looks that far ahead on every tick."""
    with pytest.raises(SettingsError, match="setting 'uftp_reservation_lead_seconds'"):
        load_settings({}, environ={"FLEXBRIDGE_UFTP_RESERVATION_LEAD_SECONDS": value})


def test_what_stays_reserved_per_isp():
    """Of a reduction, what the overload needs; where the need is unknown, all of it; a
    reservation of more consumption, all of it (flexbridge plans against an upper limit);
    never more than the previous update kept."""
    nan = float("nan")
    reserved = [-30_000, -30_000, -30_000, 5_000, -30_000]
    need = np.array([20_000.4, 0.0, nan, 0.0, 50_000.0])
    assert still_reserved(reserved, need, None) == [-20_000, 0, -30_000, 5_000, -30_000]
    previous = [-10_000, -5_000, 0, 5_000, -40_000]
    assert still_reserved(reserved, need, previous) == [-10_000, 0, 0, 5_000, -30_000]
