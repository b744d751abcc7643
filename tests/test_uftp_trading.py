"""UFTP 3.1 flexibility trading, flexbridge as the DSO: an overload at a congestion point
-> FlexRequest -> FlexOffer -> FlexOrder, and revocations; over real HTTP with the AGR of
tests/uftp_agr.py. Rules quoted from shared/specs/wave2-requirements.md part B and
uftp-3.1-notes.md section 6."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from uftp_agr import AMSTERDAM, CP, isp_nodes
from uftp_agr import flex_attributes as _flex
from uftp_agr import isps_of as _isps
from uftp_agr import tomorrow as _tomorrow
from uftp_agr import valid_outbound as _valid_outbound

from adapter.keys import BACKGROUND, DB
from protocols.common.context import HUB
from protocols.uftp.v3_1 import MARKET, clock
from protocols.uftp.v3_1.codec import Node, timestamp
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.surface import surface as uftp_surface
from store.outbox import list_outbox
from store.series import ensure_series
from store.series_types import SeriesType
from store.tables import uftp_flex_offers, uftp_flex_orders
from store.values import Point, write_values

Q = timedelta(minutes=15)


async def _capacity(dso: Any, period: date, kw: list[float]) -> None:
    start = datetime.combine(period, datetime.min.time(), AMSTERDAM).astimezone(UTC)
    async with dso.app[DB].transaction() as tx:
        series = await ensure_series(
            tx, dso.tenant, dso.point, SeriesType.MAX_CAPACITY, resolution=Q
        )
        points = [Point(start + n * Q, start + (n + 1) * Q, v) for n, v in enumerate(kw)]
        await write_values(tx, dso.tenant, series, points, source="cpapi")


async def _overloaded(dso: Any) -> tuple[date, Any]:
    """A Period whose ISPs 41-44 are prognosed 20 kW over a 100 kW capacity; the FlexRequest."""
    period = _tomorrow()
    count = _isps(period)
    await _capacity(dso, period, [100.0] * count)
    powers = [80_000] * count
    for n in range(40, 44):
        powers[n] = 120_000
    status, _ = await dso.send("D-Prognosis", isp_nodes(powers), **_flex(period, Revision="1"))
    assert status == 200
    assert (await dso.agr.next("D-PrognosisResponse")).attributes["Result"] == "Accepted"
    return period, await dso.agr.next("FlexRequest")


def _offer(
    dso: Any, period: date, request: Any, options: list[tuple[str, str, str, int]], **more: str
) -> bytes:
    """options: (reference, price, min activation factor, reduction in W on ISPs 41-44)."""
    expires = datetime.now(UTC) + timedelta(hours=2)
    children = [
        Node(
            "OfferOption",
            {"OptionReference": ref, "Price": price, "MinActivationFactor": factor},
            [Node("ISP", {"Power": str(-watts), "Start": "41", "Duration": "4"})],
        )
        for ref, price, factor, watts in options
    ]
    attributes = dso.agr.metadata(
        ConversationID=request.attributes["ConversationID"],
        **_flex(period),
        ExpirationDateTime=timestamp(expires),
        FlexRequestMessageID=request.attributes["MessageID"],
        Currency="EUR",
    )
    attributes.update(more)
    return dso.agr.signed(dso.agr.message("FlexOffer", attributes, children))


async def test_an_overload_asks_for_exactly_the_overload_in_a_flex_request(dso):
    """ "FlexRequest when a congestion point's expected load (summed D-Prognoses plus other
    known load) exceeds its capacity"; "a Requested ISP must have a direction"; the
    remaining ISPs of the period are sent as Available."""
    period, request = await _overloaded(dso)
    _valid_outbound(request.inner)
    assert request.attributes["CongestionPoint"] == CP
    assert request.attributes["Period"] == period.isoformat()
    isps = {int(e.attrib["Start"]): e.attrib for e in request.children}
    assert len(isps) == _isps(period)
    requested = {n: a for n, a in isps.items() if a["Disposition"] == "Requested"}
    assert sorted(requested) == [41, 42, 43, 44]
    assert {(a["MinPower"], a["MaxPower"]) for a in requested.values()} == {("-20000", "0")}
    assert isps[1]["Disposition"] == "Available" and isps[1]["MaxPower"] == "20000"


async def test_the_prognosis_making_an_overload_queues_its_request_right_after_its_response(dso):
    """The FlexRequest is made in the transaction that accepts the D-Prognosis causing the
    overload, not at a later sweep of the clock: with the clock stopped, it is queued when
    the prognosis's 200 comes back, behind the D-PrognosisResponse."""
    await dso.app[BACKGROUND].clock.stop()
    period = _tomorrow()
    count = _isps(period)
    await _capacity(dso, period, [100.0] * count)
    powers = [80_000] * count
    powers[40] = 130_000
    status, _ = await dso.send("D-Prognosis", isp_nodes(powers), **_flex(period, Revision="1"))
    assert status == 200
    async with dso.app[DB].read() as tx:
        queued = [r.message_type for r in reversed(await list_outbox(tx, dso.tenant))]
    assert queued == ["D-PrognosisResponse", "FlexRequest"]
    request = await dso.agr.next("FlexRequest")
    requested = [e.attrib for e in request.children if e.attrib["Disposition"] == "Requested"]
    assert [(a["Start"], a["MinPower"]) for a in requested] == [("41", "-30000")]


def test_the_clock_sweeps_congestion_points_once_per_congestion_check(monkeypatch):
    """`uftp_congestion_check_seconds`: the peer clock ticks about every second, the UFTP
    sweep of every congestion point and Period runs only once per interval."""
    sweeps: list[datetime] = []

    async def sweep(db: Any, hub: Any, now: datetime, market: Any) -> None:
        sweeps.append(now)

    monkeypatch.setattr(clock, "tick", sweep)
    tick = uftp_surface(Market("dso.example.com", congestion_check=timedelta(seconds=5))).clock
    assert tick is not None
    start = datetime(2026, 12, 7, 12, tzinfo=UTC)
    for second in (0, 1, 4.9, 5, 6, 10.5):
        asyncio.run(tick(None, None, start + timedelta(seconds=second)))  # type: ignore[arg-type]
    assert [(s - start).total_seconds() for s in sweeps] == [0, 5, 10.5]


async def test_an_offer_covering_the_request_is_ordered_at_once_in_its_conversation(dso):
    """ "a FlexOrder goes out as soon as accepted offers cover the requested flex"; the ISP
    list must be copied exactly from the FlexOffer; FlexRequest, FlexOffer and FlexOrder
    share one conversation; the order's Price is the option's ("Price mismatch" otherwise),
    a partial activation said by the ActivationFactor."""
    period, request = await _overloaded(dso)
    offer = _offer(dso, period, request, [("A", "40.0000", "0.50", 40_000)])
    assert (await dso.post(offer))[0] == 200
    assert (await dso.agr.next("FlexOfferResponse")).attributes["Result"] == "Accepted"
    order = await dso.agr.next("FlexOrder")
    _valid_outbound(order.inner)
    a = order.attributes
    assert a["ConversationID"] == request.attributes["ConversationID"]
    assert a["OptionReference"] == "A"
    assert a["ActivationFactor"] == "0.50"  # 20 kW of the 40 kW offered
    assert a["Price"] == "40.0000"
    assert [
        (e.attrib["Power"], e.attrib["Start"], e.attrib["Duration"]) for e in order.children
    ] == [("-40000", "41", "4")]


async def test_the_offer_completing_the_cover_queues_its_order_right_after_its_response(dso):
    """The FlexOrder is placed in the transaction that accepts the offer completing the
    cover, not at a later clock tick (issue 14: FlexOffer in -> FlexOrder delivered within
    1 s): with the clock stopped, the order is queued when the offer's 200 comes back, and
    behind the FlexOfferResponse, so the AGR hears the offer accepted before it is ordered."""
    period, request = await _overloaded(dso)
    await dso.app[BACKGROUND].clock.stop()
    offer = _offer(dso, period, request, [("A", "40.0000", "1.00", 20_000)])
    assert (await dso.post(offer))[0] == 200
    async with dso.app[DB].read() as tx:
        queued = [r.message_type for r in reversed(await list_outbox(tx, dso.tenant))]
    assert queued[-2:] == ["FlexOfferResponse", "FlexOrder"]
    assert (await dso.agr.next("FlexOfferResponse")).attributes["Result"] == "Accepted"
    assert (await dso.agr.next("FlexOrder")).attributes["OptionReference"] == "A"


async def test_competing_offers_arriving_together_are_ordered_once(dso):
    """Ten offers, each covering the need alone, posted at once: their transactions place
    orders one after the other (on PostgreSQL they wait for the congestion point's lock), so
    exactly one is ordered."""
    period, request = await _overloaded(dso)
    offers = [
        _offer(dso, period, request, [(f"o{n}", f"{50 - n}.0000", "1.00", 20_000)])
        for n in range(10)
    ]
    statuses = await asyncio.gather(*(dso.post(offer) for offer in offers))
    assert [status for status, _ in statuses] == [200] * 10
    arrived = [await dso.agr.next() for _ in range(len(offers) + 1)]
    assert sorted(m.kind for m in arrived) == ["FlexOfferResponse"] * 10 + ["FlexOrder"]
    assert {m.attributes.get("Result") for m in arrived if m.kind != "FlexOrder"} == {"Accepted"}
    await clock.tick(dso.app[DB], dso.app[HUB], datetime.now(UTC), dso.app[MARKET])
    async with dso.app[DB].read() as tx:
        assert (await tx.execute(select(func.count()).select_from(uftp_flex_orders))).scalar() == 1


async def test_of_mutually_exclusive_options_the_cheapest_cover_is_ordered(dso):
    """FlexOrder "choosing, with the optimizer, the cheapest set of offer options"; the
    options of one offer are alternatives: one is ordered."""
    period, request = await _overloaded(dso)
    offer = _offer(
        dso,
        period,
        request,
        [("dear", "90.0000", "1.00", 20_000), ("cheap", "30.0000", "1.00", 20_000)],
    )
    assert (await dso.post(offer))[0] == 200
    order = await dso.agr.next("FlexOrder")
    assert (order.attributes["OptionReference"], order.attributes["Price"]) == ("cheap", "30.0000")


async def test_a_need_covered_by_an_order_orders_nothing_more(dso):
    """Flex already ordered for a request counts against its need: an offer that comes after
    the cover is left open (the benchmark once saw every later offer ordered, one a tick)."""
    period, request = await _overloaded(dso)
    first = _offer(dso, period, request, [("first", "10.0000", "1.00", 20_000)])
    assert (await dso.post(first))[0] == 200
    await dso.agr.next("FlexOrder")
    later = _offer(dso, period, request, [("later", "5.0000", "1.00", 20_000)])
    assert (await dso.post(later))[0] == 200
    assert (await dso.agr.next("FlexOfferResponse")).attributes["Result"] == "Accepted"
    await clock.tick(dso.app[DB], dso.app[HUB], datetime.now(UTC), dso.app[MARKET])
    async with dso.app[DB].read() as tx:
        assert (await tx.execute(select(func.count()).select_from(uftp_flex_orders))).scalar() == 1


async def test_offers_that_cover_the_need_only_together_are_ordered_together(dso):
    """ "a FlexOrder goes out as soon as accepted offers cover the requested flex, else a
    configurable time (default 5 minutes) before the earliest offer expires": the first
    half-cover waits (its offer expires in 2 h), the second completes it."""
    period, request = await _overloaded(dso)
    first = _offer(dso, period, request, [("half-1", "10.0000", "1.00", 10_000)])
    assert (await dso.post(first))[0] == 200
    assert (await dso.agr.next("FlexOfferResponse")).attributes["Result"] == "Accepted"
    # A tick of the UFTP clock after the offer was taken in orders nothing yet.
    await clock.tick(dso.app[DB], dso.app[HUB], datetime.now(UTC), dso.app[MARKET])
    async with dso.app[DB].read() as tx:
        assert (await tx.execute(select(func.count()).select_from(uftp_flex_orders))).scalar() == 0
    second = _offer(dso, period, request, [("half-2", "12.0000", "1.00", 10_000)])
    assert (await dso.post(second))[0] == 200
    orders = [await dso.agr.next("FlexOrder"), await dso.agr.next("FlexOrder")]
    assert sorted(o.attributes["OptionReference"] for o in orders) == ["half-1", "half-2"]


async def test_a_revocation_before_the_order_withdraws_the_offer_and_after_it_is_refused(dso):
    """FlexOfferRevocation: reject "Flexibility procured" if already ordered."""
    period, request = await _overloaded(dso)
    small = _offer(dso, period, request, [("S", "5.0000", "1.00", 5_000)])
    assert (await dso.post(small))[0] == 200
    await dso.agr.next("FlexOfferResponse")
    offer_id = _message_id(small)
    revoke = dso.agr.message("FlexOfferRevocation", dso.agr.metadata(FlexOfferMessageID=offer_id))
    assert (await dso.post(dso.agr.signed(revoke)))[0] == 200
    assert (await dso.agr.next("FlexOfferRevocationResponse")).attributes["Result"] == "Accepted"
    async with dso.app[DB].read() as tx:
        status = (await tx.execute(select(uftp_flex_offers.c.status))).scalar_one()
    assert status == "revoked"

    full = _offer(dso, period, request, [("F", "30.0000", "1.00", 20_000)])
    assert (await dso.post(full))[0] == 200
    await dso.agr.next("FlexOrder")
    late = dso.agr.message(
        "FlexOfferRevocation", dso.agr.metadata(FlexOfferMessageID=_message_id(full))
    )
    assert (await dso.post(dso.agr.signed(late)))[0] == 200
    reply = await dso.agr.next("FlexOfferRevocationResponse")
    assert reply.attributes["RejectionReason"] == "Flexibility procured"


def _message_id(signed: bytes) -> str:
    from protocols.common.xmlschemas import parse
    from protocols.uftp.v3_1.envelope import read_envelope

    return parse(read_envelope(signed).sealed[64:]).attrib["MessageID"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"FlexRequestMessageID": "00000000-0000-4000-8000-000000000000"},
            "Unknown FlexRequestMessageID reference",
        ),
        ({"ExpirationDateTime": "2020-01-01T00:00:00+00:00"}, "ExpirationDateTime out of bounds"),
    ],
)
async def test_an_offer_breaking_a_rule_is_rejected_with_its_reason(dso, change, reason):
    period, request = await _overloaded(dso)
    assert (
        await dso.post(_offer(dso, period, request, [("X", "1.0000", "1.00", 1000)], **change))
    )[0] == 200
    assert (await dso.agr.next("FlexOfferResponse")).attributes["RejectionReason"] == reason


async def test_a_flex_request_from_an_agr_is_an_invalid_sender_role(dso):
    """[R] "Message types not allowed for the sender's role: 200, then <Type>Response
    Rejected 'Invalid SenderRole'"."""
    period = _tomorrow()
    children = [
        Node("ISP", {"Disposition": "Requested", "MinPower": "-1", "MaxPower": "0", "Start": "1"})
    ]
    attributes = dso.agr.metadata(
        **_flex(period),
        Revision="1",
        ExpirationDateTime=timestamp(datetime.now(UTC) + timedelta(hours=1)),
    )
    assert (await dso.post(dso.agr.signed(dso.agr.message("FlexRequest", attributes, children))))[
        0
    ] == 200
    reply = await dso.agr.next("FlexRequestResponse")
    assert reply.attributes["RejectionReason"] == "Invalid SenderRole"
