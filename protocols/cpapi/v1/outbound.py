"""Messages from the platform to a tenant's external system (CP-API section 6).

Each tenant may configure one endpoint (a peer of protocol `cpapi`): its URL, the user and
password to present, the external system name whose cross-references name entities in the
messages (6.1.1), and which message names to send. Series of the Table 8 types (and the
flexibility offers of 6.1.6) become a TimeSeriesMessageV1 queued in the outbox, in the same
transaction that wrote the series; the delivery worker sends it with retries.

Equal consecutive values go out as one band (ValueTime..ValueToTime), as 6.1.4 allows
("this should also be acceptable, where control signal is returned in one value").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub import outbound
from hub.peer_state import PeerState, edit, state_of
from protocols.cpapi.v1.codec.timeseries import resolution_name
from protocols.cpapi.v1.codec.wire import iso
from store.entities import Entity
from store.peers import OutboundAuth, Peer, add_peer, find_peer, list_peers, update_peer
from store.references import references_of
from store.series import Series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.values import Point

PROTOCOL = "cpapi"


class MessageName(StrEnum):
    CONTROL_ON_OFF = "ControlOnOffMessage"
    CONTROL_REGULATION = "ControlRegulationMessage"
    FLEXIBILITY_OFFER = "FlexibilityOfferMessage"


@dataclass(frozen=True, slots=True)
class Kind:
    name: MessageName
    action: str  # ActionType: Set, Info, Offer


_T = SeriesType
# Table 8, plus the flexibility offers of 6.1.6. OptimalCapacityRegulation goes out as a
# ControlRegulationMessage, as 6.1.5's Example 2 prints it (Table 8 calls it "CapacityRegulation").
KINDS: dict[SeriesType, Kind] = {
    _T.PRODUCTION_POWER_REGULATION: Kind(MessageName.CONTROL_REGULATION, "Set"),
    _T.LOAD_POWER_REGULATION: Kind(MessageName.CONTROL_REGULATION, "Set"),
    _T.CHARGING_POWER_REGULATION: Kind(MessageName.CONTROL_REGULATION, "Set"),
    _T.DISCHARGING_POWER_REGULATION: Kind(MessageName.CONTROL_REGULATION, "Set"),
    _T.OPTIMAL_CAPACITY_REGULATION: Kind(MessageName.CONTROL_REGULATION, "Set"),
    _T.PRODUCTION_ON_OFF_POWER_REGULATION: Kind(MessageName.CONTROL_ON_OFF, "Set"),
    _T.LOAD_ON_OFF_POWER_REGULATION: Kind(MessageName.CONTROL_ON_OFF, "Set"),
    _T.CHARGING_POWER_ON_OFF_REGULATION: Kind(MessageName.CONTROL_ON_OFF, "Set"),
    _T.DISCHARGING_POWER_ON_OFF_REGULATION: Kind(MessageName.CONTROL_ON_OFF, "Set"),
    _T.FLEXIBILITY_UP: Kind(MessageName.FLEXIBILITY_OFFER, "Offer"),
    _T.FLEXIBILITY_DOWN: Kind(MessageName.FLEXIBILITY_OFFER, "Offer"),
}


def bands(points: Sequence[Point]) -> list[dict[str, Any]]:
    """Consecutive blocks with equal values merged into one ValueTime..ValueToTime band."""
    merged: list[dict[str, Any]] = []
    for point in sorted(points, key=lambda p: p.start):
        if point.value is None:
            continue
        last = merged[-1] if merged else None
        if last is not None and last["Value"] == point.value and last["_end"] == point.start:
            last["_end"] = point.end
            continue
        merged.append({"_start": point.start, "_end": point.end, "Value": point.value})
    names: dict[datetime, str] = {}  # a band's end is the next one's start: written once

    def name(moment: datetime) -> str:
        if (text := names.get(moment)) is None:
            text = names[moment] = iso(moment)
        return text

    return [
        {"ValueTime": name(b["_start"]), "ValueToTime": name(b["_end"]), "Value": b["Value"]}
        for b in merged
    ]


async def entity_key(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, system: str | None
) -> dict[str, Any]:
    """The ExternalEntityReference the receiver knows: its cross-reference when it has one
    (4.1.2), with our platform key beside it; the platform key alone otherwise."""
    key: dict[str, Any] = {"Key": str(entity.key), "FriendlyName": entity.name}
    if system:
        names = await references_of(tx, tenant, entity, system=system)
        if names:
            key = {
                "SystemIdentifier": system,
                "ExternalEntityReferenceType": names[0].reference_type,
                **key,
                "ExternalKey": names[0].external_key,
            }
    return key


def encode(
    kind: Kind, series: Series, key: dict[str, Any], points: Sequence[Point], message_id: str
) -> dict[str, Any]:
    """A TimeSeriesMessageV1 (6.1.3.1)."""
    values = bands(points)
    resolution = resolution_name(series.resolution)
    return {
        "MessageId": message_id,
        "MessageName": str(kind.name),
        "ActionType": kind.action,
        "TimeSeries": {
            "EntityKey": key,
            "TimeSeriesType": str(series.series_type),
            "FromDateTime": values[0]["ValueTime"] if values else None,
            "ToDateTime": values[-1]["ValueToTime"] if values else None,
            "Unit": str(series.unit),
            "TimeZone": None,
            "Resolution": resolution,
            "TimeSeriesValueList": values,
        },
    }


def _endpoint_wants(state: PeerState, name: MessageName) -> bool:
    return not state.messages or str(name) in state.messages


async def emit(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, series: Series, points: Sequence[Point]
) -> list[int]:
    """Queue the message for newly written `points` of `series` to the tenant's endpoint(s);
    returns the outbox ids (none when the type is not sent or nobody is configured)."""
    kind = KINDS.get(series.series_type)
    if kind is None or not any(p.value is not None for p in points):
        return []
    queued = []
    for peer in await list_peers(tx, tenant, protocol=PROTOCOL):
        state = state_of(peer)
        if not _endpoint_wants(state, kind.name):
            continue
        message_id = str(uuid.uuid4())
        key = await entity_key(tx, tenant, entity, state.system)
        queued_id = await outbound.send(
            tx,
            peer,
            protocol=PROTOCOL,
            message_type=str(kind.name),
            path="",
            body=encode(kind, series, key, points, message_id),
            message_id=message_id,
        )
        if queued_id is not None:
            queued.append(queued_id)
    return queued


ENDPOINT = "endpoint"  # the name of a tenant's one endpoint peer


async def configure_endpoint(
    tx: AsyncConnection,
    tenant: Tenant,
    *,
    url: str,
    username: str | None,
    password: str | None,
    system: str | None,
    messages: Sequence[str] = (),
) -> Peer:
    """Where the tenant's section 6 messages go (`flexbridge cpapi endpoint`): the URL and
    login, the system whose cross-references name entities, the message names wanted (none:
    all). Created on first use, changed after."""
    peer = await find_peer(tx, tenant, PROTOCOL, ENDPOINT)
    if peer is None:
        peer = await add_peer(
            tx, tenant, protocol=PROTOCOL, name=ENDPOINT, base_url=url, auth=OutboundAuth.BASIC
        )
    peer = await update_peer(
        tx, tenant, peer, base_url=url, auth=OutboundAuth.BASIC, username=username, secret=password
    )
    async with edit(tx, peer) as state:
        state.system, state.messages = system, list(messages)
    return peer
