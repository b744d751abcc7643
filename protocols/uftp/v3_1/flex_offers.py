"""FlexOffer and FlexOfferRevocation (AGR -> DSO), and what their answers change.

A FlexOffer is checked, after the generic rules, in the specification's order:
ISP-Duration and TimeZone (as a D-Prognosis), each option's ISPs ("ISPs out of bounds",
"ISP conflict"), the Period (not over: "Period out of bounds"), the congestion point
("Invalid CongestionPoint"), ExpirationDateTime (in the future and not after the last ISP
offered: "ExpirationDateTime out of bounds"), then the request it answers: FlexRequestMessageID
is required unless Unsolicited="true" ("Invalid Message"), must name our request to this AGR
("Unknown FlexRequestMessageID reference") for the same Period ("Reference Period
mismatch"), neither expired nor superseded ("Reference message expired"), and at least one
option must cover one of its Requested ISPs ("Request mismatch"); a ContractID, when given,
must name the AGR's contract at the congestion point running on the Period ("Invalid
Message: ..."). Options are mutually exclusive. Once its response is queued, the offer's
transaction asks flex_orders.py whether the offers now cover the need, and places the orders
when they do.

A FlexOfferRevocation names an offer of the same AGR ("Unknown FlexOfferMessageID
reference"); an offer already ordered cannot be revoked ("Flexibility procured").
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from protocols.uftp.v3_1.clock import at_once
from protocols.uftp.v3_1.codec import moment, spans_of
from protocols.uftp.v3_1.d_prognosis import congestion_point, day_of
from protocols.uftp.v3_1.errors import Rejected
from protocols.uftp.v3_1.flex_orders import place_orders
from protocols.uftp.v3_1.flex_series import write_ordered
from protocols.uftp.v3_1.handling import Accepted, Received
from protocols.uftp.v3_1.isp import Day, check_spans
from store.entities import Entity, get_entity_by_id
from store.timeutil import utcnow
from store.uftp import Trade, TradeStatus, add_trade, find_trade, set_trade_status
from store.uftp_contracts import MAX_ID, find_contract

_REASON = 2000  # characters of a RejectionReason kept (its column)


def _expiry(text: str | None) -> datetime:
    if not text:
        raise Rejected("ExpirationDateTime out of bounds")
    try:
        return moment(text, "ExpirationDateTime")
    except Rejected as exc:
        raise Rejected("ExpirationDateTime out of bounds") from exc


def _options(received: Received, day: Day) -> list[dict[str, Any]]:
    options = []
    for option in received.inner.root.iter("OfferOption"):
        isps = spans_of(option.iter("ISP"))
        check_spans((span for span, _ in isps), day)
        options.append(
            {
                "reference": option.attrib["OptionReference"].strip(),
                "price": str(Decimal(option.attrib["Price"].strip())),
                "min_activation_factor": str(
                    Decimal(option.attrib.get("MinActivationFactor", "1.00").strip())
                ),
                "isps": [
                    {"start": s.start, "duration": s.duration, "power_w": int(e.attrib["Power"])}
                    for s, e in isps
                ],
            }
        )
    return options


def _last_end(day: Day, options: list[dict[str, Any]]) -> datetime:
    last = max(i["start"] + i["duration"] - 1 for o in options for i in o["isps"])
    return day.interval(last)[1]


def _covers(options: list[dict[str, Any]], requested: set[int]) -> bool:
    return any(
        requested & set(range(i["start"], i["start"] + i["duration"]))
        for o in options
        for i in o["isps"]
    )


async def _request_answered(
    received: Received, day: Day, options: list[dict[str, Any]]
) -> str | None:
    inner = received.inner
    reference = inner.attr("FlexRequestMessageID")
    if (inner.attr("Unsolicited") or "false") == "true":
        return reference
    if reference is None:
        raise Rejected("Invalid Message: FlexRequestMessageID required unless Unsolicited")
    request = await find_trade(received.tx, "request", received.peer, reference)
    if request is None:
        raise Rejected("Unknown FlexRequestMessageID reference")
    if request.period != day.period:
        raise Rejected("Reference Period mismatch")
    if (
        request.status not in (TradeStatus.SENT, TradeStatus.ACCEPTED)
        or request.parts["expires_at"] <= utcnow()
    ):
        raise Rejected("Reference message expired")
    requested = {i["start"] for i in request.parts["isps"] if i["disposition"] == "Requested"}
    if not _covers(options, requested):
        raise Rejected("Request mismatch")
    return reference


async def _contract_named(received: Received, point: Entity, day: Day, contract_id: str) -> None:
    """The ContractID an offer names must be the sender's contract at the offer's congestion
    point, running on its Period. The specification lists no reason of its own, so the
    words are "Invalid Message" (valid against the schema, unacceptable in meaning), the
    same for a contract that does not exist and for another AGR's: an AGR learns nothing
    of contracts that are not its own."""
    contract = None
    if len(contract_id) <= MAX_ID:
        contract = await find_contract(received.tx, received.tenant, contract_id)
    if contract is None or (contract.peer_id, contract.entity_id) != (received.peer.id, point.id):
        shown = contract_id if len(contract_id) <= MAX_ID else contract_id[:MAX_ID] + "..."
        raise Rejected(
            f"Invalid Message: ContractID {shown} is not a contract of {received.peer.name}"
            " at this CongestionPoint"
        )
    if not contract.runs_on(day.period):
        raise Rejected(f"Invalid Message: contract {contract_id} does not run on {day.period}")


async def flex_offer(received: Received) -> Accepted:
    day = day_of(received)
    options = _options(received, day)
    now = utcnow()
    if day.end <= now:
        raise Rejected("Period out of bounds")
    flex = received.inner
    point = await congestion_point(received, flex.attr("CongestionPoint") or "")
    expires = _expiry(flex.attr("ExpirationDateTime"))
    if expires <= now or expires > _last_end(day, options):
        raise Rejected("ExpirationDateTime out of bounds")
    reference = await _request_answered(received, day, options)
    contract_id = flex.attr("ContractID")
    if contract_id is not None:
        await _contract_named(received, point, day, contract_id)
    await add_trade(
        received.tx,
        "offer",
        received.tenant,
        received.peer,
        point,
        day.period,
        message_id=flex.header.message_id,
        conversation_id=flex.header.conversation_id,
        status=TradeStatus.OPEN,
        flex_request_message_id=reference,
        expires_at=expires,
        currency=flex.attr("Currency") or "EUR",
        version=flex.header.version,
        options=options,
        contract_id=contract_id,
    )
    address = flex.attr("CongestionPoint") or ""
    return Accepted(then=partial(at_once, place_orders, received, point, address, day.period))


async def flex_offer_revocation(received: Received) -> Accepted:
    reference = received.inner.attr("FlexOfferMessageID") or ""
    offer = await find_trade(received.tx, "offer", received.peer, reference, for_update=True)
    if offer is None:
        raise Rejected("Unknown FlexOfferMessageID reference")
    if offer.status is TradeStatus.ORDERED:
        raise Rejected("Flexibility procured")
    await set_trade_status(received.tx, "offer", offer.id, TradeStatus.REVOKED)
    return Accepted()


async def _ordered_flex(received: Received, order: Trade) -> None:
    """The order's congestion point gets its OrderedFlexibility anew (flex_series.py)."""
    point = await get_entity_by_id(received.tx, received.tenant, order.entity_id)
    day = Day(order.period, received.market.time_zone, received.market.isp)
    await write_ordered(received.tx, received.tenant, point, day, received.identity)


def answer_of(kind: str) -> tuple[str, str]:
    """Of a response to one of our trade messages: the trade kind and its reference attribute."""
    sent = kind.removesuffix("Response")
    kinds = {"FlexRequest": "request", "FlexOrder": "order", "FlexReservationUpdate": "reservation"}
    return kinds[sent], f"{sent}MessageID"


async def trade_answered(received: Received) -> Accepted:
    """A FlexRequestResponse, FlexOrderResponse or FlexReservationUpdateResponse: our message
    is accepted or rejected, a rejected FlexReservationUpdate with the AGR's reason, an
    accepted FlexOrder counted in the OrderedFlexibility of its congestion point (an unknown
    reference is logged only: a response is never answered)."""
    kind, attribute = answer_of(received.inner.header.kind)
    reference = received.inner.attr(attribute) or ""
    trade = await find_trade(received.tx, kind, received.peer, reference, for_update=True)
    if trade is None or trade.status is not TradeStatus.SENT:
        return Accepted()
    if received.inner.attr("Result") == "Accepted":
        await set_trade_status(received.tx, kind, trade.id, TradeStatus.ACCEPTED)
        if kind == "order":
            await _ordered_flex(received, trade)
        return Accepted()
    reason = {}
    if kind == "reservation":
        reason["rejection_reason"] = (received.inner.attr("RejectionReason") or "")[:_REASON]
    await set_trade_status(received.tx, kind, trade.id, TradeStatus.REJECTED, **reason)
    return Accepted()
