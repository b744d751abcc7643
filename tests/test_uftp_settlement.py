"""UFTP 3.1 FlexSettlement (DSO -> AGR, monthly) and FlexSettlementResponse, flexbridge as the
DSO, with the AGR of tests/uftp_agr.py (its `dso` fixture), on SQLite and PostgreSQL; and
`flexbridge uftp settle` as a real process.

Orders of a past month cannot be placed by the trading flow (a Period over takes no offers),
so they are recorded through the store as the flow records them; Metering of those days
arrives as real signed Metering messages. Rules quoted from the Shapeshifter specification
(message catalog, settle phase) and the reference XSD's annotations."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY
from sqlalchemy import func, select
from test_uftp_schemas import reference_xsd_dir
from uftp_agr import AMSTERDAM, CP, valid_outbound

from adapter import peer_admin
from adapter.keys import DB
from protocols.common.context import HUB
from protocols.common.xmlschemas import parse
from protocols.uftp.v3_1 import MARKET
from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.settlement import month_named, settle_month
from protocols.uftp.v3_1.settlement_rules import amounts, settle_isp
from store.db import open_database
from store.errors import NotFound, ValidationError
from store.migrate import upgrade
from store.peers import find_peer
from store.secret_box import SecretBox
from store.tables import (
    outbox,
    uftp_flex_orders,
    uftp_order_settlements,
    uftp_prognoses,
    uftp_settlements,
)
from store.tenants import add_tenant
from store.timeutil import utcnow
from store.uftp import TradeStatus, add_trade

EAN = "E871685900012345678"
PEAK = range(41, 45)
FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))


def last_month() -> tuple[str, date, date]:
    """The month before this one (Amsterdam), and its 10th and 11th (96 ISPs each)."""
    first = datetime.now(AMSTERDAM).date().replace(day=1)
    previous = (first - timedelta(days=1)).replace(day=10)
    return previous.strftime("%Y-%m"), previous, previous + timedelta(days=1)


@dataclass
class Ordered:
    reference: str
    prognosis_id: str
    message_id: str


async def record_order(
    db: Any,
    tenant: Any,
    agr_domain: str,
    point: Any,
    period: date,
    *,
    power_w: int,
    factor: str,
    price: str,
    baseline_w: int,
    status: TradeStatus = TradeStatus.ACCEPTED,
) -> Ordered:
    """A FlexOrder on ISPs 41-44 as the order policy records it (its baseline with it)."""
    ordered = Ordered(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))
    async with db.transaction() as tx:
        peer = await find_peer(tx, tenant, "uftp", agr_domain)
        await add_trade(
            tx,
            "order",
            tenant,
            peer,
            point,
            period,
            message_id=ordered.message_id,
            conversation_id=str(uuid.uuid4()),
            status=status,
            flex_offer_message_id=str(uuid.uuid4()),
            option_reference="A",
            activation_factor=factor,
            price=price,
            currency="EUR",
            order_reference=ordered.reference,
            isps=[{"start": PEAK[0], "duration": len(PEAK), "power_w": power_w}],
            baseline={str(n): baseline_w for n in PEAK},
            d_prognosis_message_id=ordered.prognosis_id,
        )
    return ordered


async def meter(dso: Any, period: date, kw: dict[int, float]) -> None:
    """A signed Metering of the congestion point's connection: Power (kW) per ISP."""
    isps = [Node("ISP", {"Start": str(n), "Value": f"{v:.3f}"}) for n, v in kw.items()]
    attributes = {
        "Revision": "1",
        "ISP-Duration": "PT15M",
        "TimeZone": "Europe/Amsterdam",
        "Period": period.isoformat(),
        "EAN": EAN,
    }
    status, _ = await dso.send(
        "Metering", [Node("Profile", {"ProfileType": "Power", "Unit": "kW"}, isps)], **attributes
    )
    assert status == 200
    assert (await dso.agr.next("MeteringResponse")).attributes["Result"] == "Accepted"


async def settle(dso: Any, month: str, *, force: bool = False) -> Any:
    report = await settle_month(
        dso.app[DB], dso.app[MARKET], "grid", month_named(month), now=utcnow(), force=force
    )
    dso.app[HUB].wake_outbox()
    return report


def valid_by_reference(inner: bytes) -> None:
    """The reference UFTP-dso.xsd accepts it (skipped when the reference is not here)."""
    import xmlschema

    folder = reference_xsd_dir()
    if folder is None:
        pytest.skip("reference UFTP 3.1.0 XSDs not found (tests/test_uftp_schemas.py says where)")
    schema = xmlschema.XMLSchema10(str(folder / "UFTP-dso.xsd"), allow="sandbox")
    schema.validate(xmlschema.XMLResource(inner, defuse="always", allow="none"))


def isps_of(element: Any) -> dict[int, dict[str, str]]:
    return {int(i.attrib["Start"]): dict(i.attrib) for i in element.iter("ISP")}


async def two_orders(dso: Any) -> tuple[str, Ordered, Ordered, date, date]:
    """Last month: order A (10th) delivered in full, order B (11th) in part and partly
    unmetered."""
    month, first, second = last_month()
    a = await record_order(
        dso.app[DB], dso.tenant, dso.agr.domain, dso.point, first,
        power_w=-40_000, factor="0.50", price="40.0000", baseline_w=120_000,
    )  # fmt: skip
    b = await record_order(
        dso.app[DB], dso.tenant, dso.agr.domain, dso.point, second,
        power_w=-20_000, factor="1.00", price="30.0000", baseline_w=120_000,
    )  # fmt: skip
    await meter(dso, first, {n: 100.0 for n in PEAK})
    await meter(dso, second, {41: 100.0, 42: 100.0, 43: 110.0})  # ISP 44: no Metering
    return month, a, b, first, second


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allocation_mw", "delivered_mw", "deficiency_mw"),
    [(7, -2, 0), (8, -2, 0), (9, -1, -1), (10, 0, -2), (11, 0, -2)],
)
def test_delivered_flex_is_what_was_both_ordered_and_delivered(
    allocation_mw, delivered_mw, deficiency_mw
):
    """Settle phase, the example: baseline 10 MW, 2 MW of flex ordered; "The delivered flex
    quantity represents the flexibility that is both acquired (therefore maximum of 2) and
    delivered. Passive contributions (as in the row with allocation=7) are not rewarded";
    PowerDeficiency is "flex power sold but not delivered" (never more than was sold)."""
    mw = 1_000_000
    isp = settle_isp(1, -2 * mw, 10 * mw, allocation_mw * mw)
    assert (isp.delivered_w, isp.deficiency_w) == (delivered_mw * mw, deficiency_mw * mw)


def test_without_metering_or_baseline_nothing_counts_as_delivered():
    """Settle phase: "There should be a check first, to ensure that the procured flexibility
    was actually delivered": where no figure shows it, none was."""
    assert settle_isp(1, -5000, 120_000, None).deficiency_w == -5000
    assert settle_isp(1, -5000, None, 90_000).deficiency_w == -5000
    assert settle_isp(1, 5000, None, None).deficiency_w == 5000


def test_net_settlement_is_price_minus_the_undelivered_share_of_the_price():
    """FlexOrderSettlement NetSettlement: "Price minus Penalty"; the Price is the order's at
    its activation ("the settlement price is set to 80% of the original price in the
    offer")."""
    isps = [settle_isp(n, -1000, 10_000, 9_000 if n < 3 else 9_500) for n in range(1, 5)]
    due = amounts(Decimal("12.3456"), Decimal("0.80"), isps)
    assert due.price == Decimal("9.8765")  # 9.87648 half up
    assert due.penalty == Decimal("2.4691")  # 2000 of 4000 W missing: half, half up
    assert due.net == due.price - due.penalty


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "26-01", "2026-01-01", "", "x" * 500])
def test_a_month_is_yyyy_mm(text):
    with pytest.raises(ValidationError, match="--month"):
        month_named(text)


# --- flexbridge sends it ----------------------------------------------------------------------


async def test_a_month_of_accepted_orders_is_one_flex_settlement_with_each_order(dso):
    """FlexSettlement "includes a list of all FlexOrders placed by the originating party
    during the settlement period"; per order OrderReference, Period, D-PrognosisMessageID,
    CongestionPoint, Price, Penalty, NetSettlement and per ISP BaselinePower,
    OrderedFlexPower, ActualPower, DeliveredFlexPower, PowerDeficiency. The 3.x schema
    requires Result and at least one ContractSettlement: with no contract, one that reserves
    nothing on the days settled. Valid against our schema and the reference XSD."""
    month, a, b, first, second = await two_orders(dso)
    report = await settle(dso, month)
    message = await dso.agr.next("FlexSettlement")
    valid_outbound(message.inner)
    attributes = message.attributes
    assert (attributes["Result"], attributes["Currency"]) == ("Accepted", "EUR")
    assert attributes["PeriodStart"] == first.replace(day=1).isoformat()
    assert attributes["PeriodEnd"] == month_named(month).last.isoformat()
    assert [s.message_id for s in report.sent] == [attributes["MessageID"]]
    root = parse(message.inner)
    orders = {o.attrib["OrderReference"]: o for o in root.iter("FlexOrderSettlement")}
    assert sorted(orders) == sorted([a.reference, b.reference])

    full = orders[a.reference].attrib
    assert (full["Period"], full["CongestionPoint"]) == (first.isoformat(), CP)
    assert full["D-PrognosisMessageID"] == a.prognosis_id
    assert (full["Price"], full["Penalty"], full["NetSettlement"]) == (
        "20.0000",
        "0.0000",
        "20.0000",
    )
    assert isps_of(orders[a.reference])[41] == {
        "Start": "41",
        "Duration": "1",
        "BaselinePower": "120000",
        "OrderedFlexPower": "-20000",
        "ActualPower": "100000",
        "DeliveredFlexPower": "-20000",
        "PowerDeficiency": "0",
    }

    part = orders[b.reference].attrib
    # 30000 of 80000 W not delivered: 37.5% of the price
    assert (part["Price"], part["Penalty"], part["NetSettlement"]) == (
        "30.0000",
        "11.2500",
        "18.7500",
    )
    figures = isps_of(orders[b.reference])
    assert [figures[n]["DeliveredFlexPower"] for n in PEAK] == ["-20000", "-20000", "-10000", "0"]
    assert [figures[n]["PowerDeficiency"] for n in PEAK] == ["0", "0", "-10000", "-20000"]
    assert figures[44]["ActualPower"] == figures[44]["BaselinePower"]  # no Metering

    (contract,) = root.iter("ContractSettlement")
    assert "ContractID" not in contract.attrib
    assert [(p.attrib["Period"], isps_of(p)) for p in contract.iter("Period")] == [
        (day.isoformat(), {1: {"Start": "1", "Duration": "96", "ReservedPower": "0"}})
        for day in (first, second)
    ]
    valid_by_reference(message.inner)


async def test_an_agr_with_a_contract_gets_its_contract_settlement_instead(dso):
    """ContractSettlement "only in case of bilateral contracts": a contract of the AGR that
    ran in the month is settled by its own rules (contract_settlement.py), and then no
    nothing-reserved stand-in is added. Valid against the reference XSD."""
    from store.uftp_contracts import NewContract, add_contract

    month, _, _, first, second = await two_orders(dso)
    async with dso.app[DB].transaction() as tx:
        peer = await find_peer(tx, dso.tenant, "uftp", dso.agr.domain)
        await add_contract(
            tx, dso.tenant, peer, dso.point, NewContract("C-1", first, second, reserved_w=-5000)
        )
    await settle(dso, month)
    message = await dso.agr.next("FlexSettlement")
    valid_outbound(message.inner)
    (contract,) = parse(message.inner).iter("ContractSettlement")
    assert contract.attrib == {"ContractID": "C-1"}
    periods = [p.attrib["Period"] for p in contract.iter("Period")]
    assert periods == [first.isoformat(), second.isoformat()]
    assert {i.attrib["ReservedPower"] for i in contract.iter("ISP")} == {"-5000"}
    valid_by_reference(message.inner)


async def test_settling_a_month_again_settles_no_order_twice(dso):
    """An order is settled once: a second run sends nothing for the orders settled, names the
    FlexSettlement sent before, and settles only what was accepted since."""
    month, _, _, first, _ = await two_orders(dso)
    await settle(dso, month)
    await dso.agr.next("FlexSettlement")
    again = await settle(dso, month)
    assert again.sent == []
    assert [len(s.orders) for s in again.before] == [2]
    async with dso.app[DB].read() as tx:
        statuses = (await tx.execute(select(uftp_flex_orders.c.status))).scalars().all()
    assert statuses == ["settled", "settled"]

    late = await record_order(
        dso.app[DB], dso.tenant, dso.agr.domain, dso.point, first,
        power_w=-1000, factor="1.00", price="1.0000", baseline_w=120_000,
    )  # fmt: skip
    third = await settle(dso, month)
    assert [[o.order.parts["order_reference"] for o in s.orders] for s in third.sent] == [
        [late.reference]
    ]
    message = await dso.agr.next("FlexSettlement")
    assert [
        o.attrib["OrderReference"] for o in parse(message.inner).iter("FlexOrderSettlement")
    ] == [late.reference]
    async with dso.app[DB].read() as tx:
        sent = (
            await tx.execute(select(func.count()).where(outbox.c.message_type == "FlexSettlement"))
        ).scalar()
        settled = (
            await tx.execute(select(func.count()).select_from(uftp_order_settlements))
        ).scalar()
    assert (sent, settled) == (2, 3)


async def test_only_accepted_orders_of_the_month_are_settled(dso):
    """FlexSettlement: the FlexOrders of "the settlement period": an order the AGR rejected,
    or never answered, or of another month, is not in it (one never answered is reported)."""
    month, first, _ = last_month()
    kept = await record_order(
        dso.app[DB], dso.tenant, dso.agr.domain, dso.point, first,
        power_w=-1000, factor="1.00", price="1.0000", baseline_w=0,
    )  # fmt: skip
    for status in (TradeStatus.SENT, TradeStatus.REJECTED):
        await record_order(
            dso.app[DB], dso.tenant, dso.agr.domain, dso.point, first,
            power_w=-1000, factor="1.00", price="1.0000", baseline_w=0, status=status,
        )  # fmt: skip
    await record_order(
        dso.app[DB], dso.tenant, dso.agr.domain, dso.point, first - timedelta(days=40),
        power_w=-1000, factor="1.00", price="1.0000", baseline_w=0,
    )  # fmt: skip
    report = await settle(dso, month)
    assert [o.order.parts["order_reference"] for s in report.sent for o in s.orders] == [
        kept.reference
    ]
    assert report.unanswered == 1


async def test_a_month_not_over_is_refused_unless_forced_and_then_only_days_over_settle(dso):
    """Settlement needs "All settlement items within the period are available and complete":
    a month not over is refused; --force settles the days that are over, and an order of a
    day not over stays accepted for a later run."""
    today = datetime.now(AMSTERDAM).date()
    month = today.strftime("%Y-%m")
    await record_order(
        dso.app[DB], dso.tenant, dso.agr.domain, dso.point, today,
        power_w=-1000, factor="1.00", price="1.0000", baseline_w=0,
    )  # fmt: skip
    with pytest.raises(ValidationError, match="--force"):
        await settle(dso, month)
    forced = await settle(dso, month, force=True)
    assert (forced.sent, forced.later) == ([], 1)
    async with dso.app[DB].read() as tx:
        assert (await tx.execute(select(uftp_flex_orders.c.status))).scalar() == "accepted"


async def test_an_unknown_tenant_is_refused(dso):
    month, _, _ = last_month()
    with pytest.raises(NotFound, match="tenant"):
        await settle_month(
            dso.app[DB], dso.app[MARKET], "nobody", month_named(month), now=utcnow(), force=False
        )


# --- the AGR answers ------------------------------------------------------------------------


def status_node(reference: str, disposition: str, **more: str) -> Node:
    return Node(
        "FlexOrderSettlementStatus",
        {"OrderReference": reference, "Disposition": disposition, **more},
    )


async def test_the_response_records_acceptance_and_each_order_disputed_or_accepted(dso):
    """FlexSettlementResponse: FlexOrderSettlementStatus Disposition "whether the AGR accepts
    the order settlement details provided by the DSO (and will invoice accordingly), or
    disputes these details", DisputeReason "in case the order settlement was disputed". A
    response is never answered."""
    month, a, b, _, _ = await two_orders(dso)
    await settle(dso, month)
    message = await dso.agr.next("FlexSettlement")
    statuses = [
        status_node(a.reference, "Accepted"),
        status_node(b.reference, "Disputed", DisputeReason="ISP 44 was metered"),
        status_node("not ours", "Disputed"),
    ]
    status, _ = await dso.send(
        "FlexSettlementResponse",
        statuses,
        ConversationID=message.attributes["ConversationID"],
        Result="Accepted",
        FlexSettlementMessageID=message.attributes["MessageID"],
    )
    assert status == 200
    async with dso.app[DB].read() as tx:
        rows = (
            await tx.execute(
                select(
                    uftp_order_settlements.c.order_reference,
                    uftp_order_settlements.c.disposition,
                    uftp_order_settlements.c.dispute_reason,
                )
            )
        ).all()
        settlement = (await tx.execute(select(uftp_settlements.c.status))).scalar()
    assert settlement == "accepted"
    assert sorted(rows) == sorted(
        [(a.reference, "Accepted", None), (b.reference, "Disputed", "ISP 44 was metered")]
    )
    assert dso.agr.inbox.empty()


async def test_a_rejection_is_recorded_and_an_unknown_settlement_changes_nothing(dso):
    """Result="Rejected" with its RejectionReason ("reject only if already accepted for the
    period, or if the data are invalid") is kept; a FlexSettlementMessageID we never sent
    is only logged, as for the other responses."""
    month, a, _, _, _ = await two_orders(dso)
    await settle(dso, month)
    message = await dso.agr.next("FlexSettlement")
    one = [
        Node(
            "FlexOrderSettlementStatus", {"OrderReference": a.reference, "Disposition": "Accepted"}
        )
    ]
    status, _ = await dso.send(
        "FlexSettlementResponse", one, Result="Accepted",
        FlexSettlementMessageID=str(uuid.uuid4()),
    )  # fmt: skip
    assert status == 200
    async with dso.app[DB].read() as tx:
        assert (await tx.execute(select(uftp_settlements.c.status))).scalar() == "sent"
    status, _ = await dso.send(
        "FlexSettlementResponse", one, Result="Rejected",
        RejectionReason="Missing Settlement Items",
        FlexSettlementMessageID=message.attributes["MessageID"],
    )  # fmt: skip
    assert status == 200
    async with dso.app[DB].read() as tx:
        row = (
            await tx.execute(select(uftp_settlements.c.status, uftp_settlements.c.rejection_reason))
        ).one()
    assert tuple(row) == ("rejected", "Missing Settlement Items")


async def test_an_order_keeps_the_prognosis_it_was_placed_against(dso):
    """ "A flexibility order is linked to a flexibility offer and a baseline for settlement
    purposes"; "The load profile resulting from a flexibility deal will be stored
    independently from any subsequent updates of the D-prognosis": the order placed by the
    trading flow keeps the AGR's prognosis of its ISPs and its MessageID, and a revision
    sent afterwards does not change them."""
    from test_uftp_trading import _offer, _overloaded
    from uftp_agr import flex_attributes, isp_nodes
    from uftp_agr import isps_of as day_isps

    period, request = await _overloaded(dso)
    async with dso.app[DB].read() as tx:
        placed_on = (await tx.execute(select(uftp_prognoses.c.message_id))).scalar_one()
    offer = _offer(dso, period, request, [("A", "40.0000", "1.00", 20_000)])
    assert (await dso.post(offer))[0] == 200
    await dso.agr.next("FlexOrder")
    revised = isp_nodes([100_000] * day_isps(period))
    assert (await dso.send("D-Prognosis", revised, **flex_attributes(period, Revision="2")))[
        0
    ] == 200
    assert (await dso.agr.next("D-PrognosisResponse")).attributes["Result"] == "Accepted"
    async with dso.app[DB].read() as tx:
        baseline, kept_id = (
            await tx.execute(
                select(uftp_flex_orders.c.baseline, uftp_flex_orders.c.d_prognosis_message_id)
            )
        ).one()
        latest = (await tx.execute(select(uftp_prognoses.c.message_id))).scalar_one()
    assert baseline == {str(n): 120_000 for n in PEAK}
    assert kept_id == placed_on != latest


# --- the command ----------------------------------------------------------------------------


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEXBRIDGE, *args], capture_output=True, text=True, env=env, timeout=60)


async def test_the_settle_command_settles_once_and_says_what_it_did(tmp_path):
    """`flexbridge uftp settle --tenant T --month YYYY-MM` as a real process: progress and a
    summary, a second run sends nothing again; an unknown tenant, a bad month and a month
    not over are one line on stderr and exit 2."""
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    env.update(FLEXBRIDGE_DATABASE_URL=url, FLEXBRIDGE_SECRET_KEYS=TEST_KEY)
    env["FLEXBRIDGE_UFTP_DOMAIN"] = "dso.example.com"
    month, first, _ = last_month()
    db = open_database(url, secrets=SecretBox([TEST_KEY]))
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            tenant, _ = await add_tenant(tx, "grid")
            await identity_of(tx, tenant, "dso.example.com")
        await peer_admin.add(
            db,
            peer_admin.NewPeer(
                "grid", "uftp", "agr.example.com", "http://127.0.0.1:9/agr", role="AGR",
                public_keys=("kSyHrhqSGtSgLegJW1Rqib3sHfL9SdLlVE6qRrexfLc=",),
            ),
        )  # fmt: skip
        point = await add_congestion_point(
            db, NewCongestionPoint("grid", CP, (f"ean.{EAN[1:]}",), ("agr.example.com",))
        )
        ordered = await record_order(
            db, tenant, "agr.example.com", point, first,
            power_w=-40_000, factor="0.50", price="40.0000", baseline_w=120_000,
        )  # fmt: skip
    finally:
        await db.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _run("uftp", "settle", *args, env=env)

    done = await asyncio.to_thread(run, "--tenant", "grid", "--month", month)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == f"settling {month} (Europe/Amsterdam) for tenant grid"
    assert (
        lines[1].startswith("sent FlexSettlement ") and "to agr.example.com: 1 order(s)" in lines[1]
    )
    assert ordered.reference in lines[2] and "NetSettlement 0.0000" in lines[2]
    assert "4 without Metering" in lines[2]
    assert lines[-1].startswith(
        "settled 1 order(s) of 1 AGR(s) in 1 FlexSettlement(s): Price 20.0000 EUR"
    )
    message_id = lines[1].split()[2]

    again = await asyncio.to_thread(run, "--tenant", "grid", "--month", month)
    assert again.returncode == 0, again.stderr
    assert f"already sent FlexSettlement {message_id} to agr.example.com (sent)" in again.stdout
    assert again.stdout.strip().splitlines()[-1] == f"nothing new to settle for {month}"

    this_month = datetime.now(AMSTERDAM).strftime("%Y-%m")
    for args, words in [
        (("--tenant", "nobody", "--month", month), "tenant not found"),
        (("--tenant", "grid", "--month", "2026-13"), "--month"),
        (("--tenant", "grid", "--month", this_month), "--force"),
    ]:
        refused = await asyncio.to_thread(run, *args)
        assert refused.returncode == 2, refused
        assert words in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert "Traceback" not in refused.stderr
    assert datetime.now(UTC)  # the runs above used the real clock
