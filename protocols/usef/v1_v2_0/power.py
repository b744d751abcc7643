"""Meter data and prognoses (A.4): average power per interval of connections, in MW,
consumption positive, stored as each connection's NetInstantPower series (kW, the same one
the CP-API and OCMP read and write).

    postMeterData (v1+), postPrognosis (v1_1+)    write, each value with its belief time
                                                  (power_posts.py, timing.py)
    getMeterData (v1+, v1 also POST),             read back, in the connection's resolution
    getPrognosis (v1_1+)                          or a multiple of it (power_reads.py)

This module holds what both sides share.

Meter data and prognoses of one sender are two sources, `usef:<username>` and
`usef:<username>:prognosis`, so that neither overwrites the other (the store keeps one
belief per interval and source). Posted values coarser than the connection's resolution are
repeated onto it (upsampled); finer ones, or a resolution that is no whole multiple, are
INVALID_RESOLUTION. A connection's resolution is its series', PT15M for a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.limits import check_items
from protocols.common.context import limits_of
from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.fields import check_type, fields_of, version_of
from protocols.usef.v1_v2_0.groups import Group, groups_of
from protocols.usef.v1_v2_0.periods import QUARTER, Period, period_of
from store.entities import Entity
from store.series import Series, series_of_entities
from store.series_types import SeriesType
from store.tenants import Tenant

SERIES = SeriesType.NET_INSTANT_POWER


@dataclass(frozen=True, slots=True)
class Kind:
    """Meter data or prognoses: what differs between the two."""

    post: str  # the endpoint names
    get: str
    observed: bool  # known only after the fact (meter data)
    source_suffix: str  # of the sender's source name


METER_DATA = Kind("postMeterData", "getMeterData", observed=True, source_suffix="")
PROGNOSIS = Kind("postPrognosis", "getPrognosis", observed=False, source_suffix=":prognosis")


def source_name(username: str, kind: Kind) -> str:
    return f"usef:{username}{kind.source_suffix}"


@dataclass(frozen=True, slots=True)
class PowerMessage:
    """A meter-data or prognosis request, read and checked as far as it goes without the
    database."""

    version: str
    fields: dict[str, Any]
    period: Period
    groups: list[Group]

    @property
    def addresses(self) -> list[str]:
        return [address for group in self.groups for address in group.addresses]


async def read_message(request: web.Request, endpoint: str, *, with_values: bool) -> PowerMessage:
    """The request's fields with its `type`, unit, period and connections checked, and no
    more connections than one request may name."""
    version = version_of(request)
    fields = await fields_of(request)
    check_type(fields, endpoint)
    check_unit(fields)
    message = PowerMessage(
        version,
        fields,
        period_of(fields, version),
        groups_of(fields, "connection", with_values=with_values),
    )
    check_items(limits_of(request), len(message.addresses), "connections", "connections")
    return message


def check_unit(fields: dict[str, Any]) -> None:
    unit = fields.get("unit")
    if unit is None:
        raise UsefError("INVALID_UNIT", detail="Data should be given a unit.")
    if unit != "MW":
        raise UsefError("INVALID_UNIT", detail="Data for power should be given in MW.")


async def series_at(
    tx: AsyncConnection, tenant: Tenant, entities: list[Entity]
) -> dict[int, Series]:
    """The connections' power series that exist, by entity id, in one query."""
    found = await series_of_entities(tx, tenant, list({e.id: None for e in entities}))
    return {
        entity.id: series
        for entity in entities
        if (series := found.get((entity.id, SERIES, None))) is not None
    }


def resolution_of(entities: list[Entity], series: dict[int, Series]) -> timedelta:
    """The one resolution of the connections' series (PT15M where none exists yet)."""
    found = set()
    for entity in entities:
        known = series.get(entity.id)
        if known is not None and known.resolution is None:
            raise UsefError(
                "INVALID_RESOLUTION", detail=f"{entity.name} holds power at irregular instants."
            )
        found.add(QUARTER if known is None else known.resolution)
    if len(found) > 1:
        raise UsefError(
            "INVALID_RESOLUTION", detail="Requested assets do not have matching resolutions."
        )
    resolution = found.pop()
    assert resolution is not None
    return resolution
