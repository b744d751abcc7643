"""UFTP 3.1 bilateral contracts, flexbridge as the DSO: FlexReservationUpdate (on demand and
by the clock) and its response, the ContractID of FlexRequests, FlexOffers and FlexOrders,
and the ContractSettlements a FlexSettlement is given; over real HTTP with the AGR of
tests/uftp_agr.py, on SQLite and PostgreSQL. Rules from wave2-requirements B.3 and the
reference XSD's documentation (docs/protocols/uftp-3.1.md, "Contracts")."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import xmlschema
from sqlalchemy import select
from test_uftp_schemas import reference_xsd_dir
from uftp_agr import AMSTERDAM, CP, Agr, isp_nodes
from uftp_agr import flex_attributes as _flex
from uftp_agr import isps_of as _isps
from uftp_agr import valid_outbound as _valid_outbound

from adapter import peer_admin
from adapter.keys import DB
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
from store.errors import Conflict, ValidationError
from store.peers import find_peer
from store.series import ensure_series
from store.series_types import SeriesType
from store.tables import uftp_reservation_updates
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


async def test_contract_settlements_give_reserved_requested_offered_and_ordered_power(dso):
    """ContractSettlement ISP: ReservedPower "reserved (and not released using a
    FlexReservationUpdate)", RequestedPower "both reserved and requested (i.e. the lowest
    amount)", OfferedPower covered in an offer, OrderedPower ordered under the contract;
    the element, inside a FlexSettlement, is valid against our schema and the reference."""
    period = _period()
    await _contract(dso)
    await _prognose(dso, period)
    request = await dso.agr.next("FlexRequest")
    assert (await dso.post(_offer(dso, period, request, 25_000, ContractID="C-1")))[0] == 200
    await dso.agr.next("FlexOrder")
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
