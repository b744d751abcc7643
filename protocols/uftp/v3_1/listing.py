"""What `flexbridge uftp list` holds: the tenant's FlexRequests, FlexOffers, FlexOrders and
D-Prognoses, newest first, each with its conversation, AGR, congestion point, Period, state
at `now` (store/uftp_listing.py says how each state is read) and its key figures
(docs/protocols/uftp-3.1.md, "Listing").

Key figures, powers in kW signed as UFTP signs them (negative: less consumption), "peak"
being the ISP whose power is furthest from 0:
- request: revision, the Requested ISPs and their peak, ExpirationDateTime;
- offer: its options, the ISPs any option covers, the peak of any option, the lowest option
  Price and Currency, ExpirationDateTime, the request it answers;
- order: its ISPs, their peak x ActivationFactor, the ActivationFactor, Price and Currency,
  the offer it orders;
- prognosis: the revision kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.congestion_points import address_of
from protocols.uftp.v3_1.transport import PROTOCOL
from store.addresses import EA1Address
from store.db import Database
from store.entities import get_entity_by_id
from store.errors import NotFound, ValidationError
from store.peers import Peer, find_peer
from store.references import find, parse_address
from store.tenants import Tenant, get_tenant
from store.uftp import Trade
from store.uftp_listing import Listed, ListedState, listed

# The kinds as the command names them -> as the store does.
KINDS = {"requests": "request", "offers": "offer", "orders": "order", "prognoses": "prognosis"}
MAX_LIMIT = 10_000  # rows of one kind a listing may ask for


@dataclass(frozen=True, slots=True)
class Query:
    tenant: str
    kinds: Sequence[str] = tuple(KINDS)  # of KINDS
    agr: str | None = None  # domain
    congestion_point: str | None = None  # EA1 address
    state: str | None = None  # a ListedState
    limit: int = 100  # per kind


@dataclass(frozen=True, slots=True)
class Entry:
    message_id: str
    conversation_id: str | None  # None: not kept (D-Prognoses)
    agr: str
    congestion_point: str
    period: date
    state: ListedState
    at: datetime  # when we sent or accepted it
    figures: dict[str, Any]  # the kind's key figures, JSON-ready


@dataclass(frozen=True, slots=True)
class Listing:
    now: datetime
    entries: dict[str, list[Entry]]  # per kind asked (KINDS), newest first
    truncated: tuple[str, ...]  # kinds with more than `limit` entries


def _peak_kw(watts: Iterable[float]) -> float | None:
    peak = max(watts, key=abs, default=None)
    return None if peak is None else round(peak / 1000, 3)


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _isp_watts(isps: Iterable[dict[str, Any]], factor: float = 1.0) -> dict[int, float]:
    return {
        n: isp["power_w"] * factor
        for isp in isps
        for n in range(isp["start"], isp["start"] + isp["duration"])
    }


def _request_figures(parts: dict[str, Any]) -> dict[str, Any]:
    requested = [
        float(i["min_w"] if i["min_w"] < 0 else i["max_w"])
        for i in parts["isps"]
        if i["disposition"] == "Requested"
    ]
    return {
        "revision": parts["revision"],
        "requested_isps": len(requested),
        "requested_kw": _peak_kw(requested),
        "expires_at": _when(parts["expires_at"]),
    }


def _offer_figures(parts: dict[str, Any]) -> dict[str, Any]:
    options = parts["options"]
    by_option = [_isp_watts(o["isps"]) for o in options]
    return {
        "options": len(options),
        "isps": len({n for watts in by_option for n in watts}),
        "offered_kw": _peak_kw(w for watts in by_option for w in watts.values()),
        "price": str(min((Decimal(o["price"]) for o in options), default=Decimal(0))),
        "currency": parts["currency"],
        "expires_at": _when(parts["expires_at"]),
        "flex_request": parts["flex_request_message_id"],
    }


def _order_figures(parts: dict[str, Any]) -> dict[str, Any]:
    watts = _isp_watts(parts["isps"], float(parts["activation_factor"]))
    return {
        "isps": len(watts),
        "ordered_kw": _peak_kw(watts.values()),
        "activation_factor": parts["activation_factor"],
        "price": parts["price"],
        "currency": parts["currency"],
        "flex_offer": parts["flex_offer_message_id"],
    }


_FIGURES = {
    "request": _request_figures,
    "offer": _offer_figures,
    "order": _order_figures,
    "prognosis": lambda parts: {"revision": parts["revision"]},
}


def _state(text: str | None) -> ListedState | None:
    if text is None:
        return None
    try:
        return ListedState(text)
    except ValueError:
        known = ", ".join(ListedState)
        raise ValidationError("--state", f"unknown state {text!r} (one of {known})") from None


def _address(text: str | None) -> EA1Address | None:
    if text is None:
        return None
    address = parse_address(text, "--congestion-point")
    if not isinstance(address, EA1Address):
        raise ValidationError("--congestion-point", "a congestion point is named by an EA1 address")
    return address


def check(query: Query) -> None:
    """Refuse what names no kind, or a limit out of 1..MAX_LIMIT."""
    for kind in query.kinds:
        if kind not in KINDS:
            raise ValidationError("KIND", f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ValidationError("--limit", f"must be 1..{MAX_LIMIT}, got {query.limit}")


def _text(text: str, flag: str) -> str:
    """A name as the database can compare it (argv may carry bytes that are not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(flag, f"{text!r} is not UTF-8 text") from None
    return text


async def _tenant(tx: AsyncConnection, name: str) -> Tenant:
    _text(name, "--tenant")
    try:
        return await get_tenant(tx, name)
    except NotFound:
        raise ValidationError("--tenant", f"no tenant {name!r}") from None


async def _peer(tx: AsyncConnection, tenant: Tenant, domain: str | None) -> Peer | None:
    if domain is None:
        return None
    peer = await find_peer(tx, tenant, PROTOCOL, _text(domain, "--agr"))
    if peer is None:
        raise ValidationError("--agr", f"no uftp peer {domain!r}")
    return peer


async def _point_id(tx: AsyncConnection, tenant: Tenant, address: EA1Address | None) -> int | None:
    if address is None:
        return None
    point = await find(tx, tenant, address)
    if point is None:
        raise ValidationError("--congestion-point", f"no congestion point {address}")
    return point.id


class _Addresses:
    """The EA1 address of each congestion point, looked up once a listing."""

    def __init__(self, tx: AsyncConnection, tenant: Tenant) -> None:
        self.tx, self.tenant = tx, tenant
        self.known: dict[int, str] = {}

    async def of(self, entity_id: int) -> str:
        if entity_id not in self.known:
            point = await get_entity_by_id(self.tx, self.tenant, entity_id)
            self.known[entity_id] = await address_of(self.tx, self.tenant, point)
        return self.known[entity_id]


def _entry(kind: str, item: Listed, address: str) -> Entry:
    trade: Trade = item.trade
    return Entry(
        trade.message_id,
        trade.conversation_id or None,
        item.agr,
        address,
        trade.period,
        item.state,
        trade.created_at,
        _FIGURES[kind](trade.parts),
    )


async def listing(db: Database, query: Query, now: datetime) -> Listing:
    """The listing `query` asks for, every state as it stands at `now`."""
    check(query)
    state, address = _state(query.state), _address(query.congestion_point)
    entries: dict[str, list[Entry]] = {}
    truncated = []
    async with db.read() as tx:
        tenant = await _tenant(tx, query.tenant)
        peer = await _peer(tx, tenant, query.agr)
        point_id = await _point_id(tx, tenant, address)
        addresses = _Addresses(tx, tenant)
        for name in dict.fromkeys(query.kinds):
            kind = KINDS[name]
            rows = await listed(
                tx,
                kind,
                tenant,
                now=now,
                limit=query.limit + 1,
                peer=peer,
                entity_id=point_id,
                state=state,
            )
            if len(rows) > query.limit:
                truncated.append(name)
            entries[name] = [
                _entry(kind, r, await addresses.of(r.trade.entity_id)) for r in rows[: query.limit]
            ]
    return Listing(now, entries, tuple(truncated))
