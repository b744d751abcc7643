"""Meter data and prognoses (A.4): average power per interval of connections, in MW,
consumption positive, stored as each connection's NetInstantPower series (kW, the same one
the CP-API and OCMP read and write).

    postMeterData (v1+), postPrognosis (v1_1+)    write, each value with its belief time
                                                  (timing.py)
    getMeterData (v1+, v1 also POST),             read back, in the connection's resolution
    getPrognosis (v1_1+)                          or a multiple of it

Meter data and prognoses of one sender are two sources, `usef:<username>` and
`usef:<username>:prognosis`, so that neither overwrites the other (the store keeps one
belief per interval and source). Posted values coarser than the connection's resolution are
repeated onto it (upsampled); finer ones, or a resolution that is no whole multiple, are
INVALID_RESOLUTION. A connection's resolution is its series', PT15M for a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.limits import Budget, answer_budget, blocks_budget, check_items
from protocols.common.context import caller_of, database_of, limits_of
from protocols.usef.v1_v2_0.addresses import resources_at
from protocols.usef.v1_v2_0.envelope import processed
from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.fields import check_type, fields_of, version_of
from protocols.usef.v1_v2_0.groups import Group, groups_of, plural
from protocols.usef.v1_v2_0.periods import QUARTER, Period, parse_duration, parse_time, period_of
from protocols.usef.v1_v2_0.timing import beliefs, parse_horizon
from store.accounts import accounts_of
from store.catalogue import AssetSubType
from store.entities import Entity
from store.series import (
    Series,
    ensure_series,
    series_of_entities,
    source_names,
)
from store.series_types import SeriesType
from store.tenants import Tenant
from store.timeutil import EPOCH, utcnow
from store.units import Unit
from store.values import Point, read_values, write_many

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


def check_unit(fields: dict[str, Any]) -> None:
    unit = fields.get("unit")
    if unit is None:
        raise UsefError("INVALID_UNIT", detail="Data should be given a unit.")
    if unit != "MW":
        raise UsefError("INVALID_UNIT", detail="Data for power should be given in MW.")


def iso(duration: timedelta) -> str:
    """PT15M, PT1H, P1D: the duration as FlexMeasures writes it."""
    seconds = int(duration.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    body = (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return f"P{body}" if body else "PT0M"


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


def repeats(period: Period, count: int, resolution: timedelta) -> int:
    """How many of the connection's intervals each of `count` posted values covers."""
    step = period.duration / count
    if step * count != period.duration or step % resolution:
        raise UsefError(
            "INVALID_RESOLUTION",
            detail=f"Only the following resolutions are supported: {iso(resolution)}",
        )
    return step // resolution


def _sign_check(entity: Entity, values: tuple[float, ...]) -> None:
    """A pure producer consumes nothing, a pure consumer produces nothing (A.1 Signs)."""
    if entity.asset_subtype is AssetSubType.GENERATION and any(v > 0 for v in values):
        raise UsefError("POWER_VALUE_TOO_BIG", f"{entity.name} only produces (values <= 0).")
    if entity.asset_subtype is AssetSubType.LOAD and any(v < 0 for v in values):
        raise UsefError("POWER_VALUE_TOO_SMALL", f"{entity.name} only consumes (values >= 0).")


def _points(period: Period, group: Group, resolution: timedelta, k: int) -> list[Point]:
    start, step = period.start, resolution * k
    return [
        Point(start + i * step + j * resolution, start + i * step + (j + 1) * resolution, value)
        for i, value in enumerate(group.values)
        for j in range(k)
    ]


@dataclass(frozen=True, slots=True)
class _Write:
    """One group's values as its connections' intervals, and when each was known."""

    entities: list[Entity]
    resolution: timedelta
    points: list[Point]
    known: list[datetime]


def _group_write(
    fields: dict[str, Any],
    version: str,
    kind: Kind,
    period: Period,
    located: tuple[Group, list[Entity]],
    series: dict[int, Series],
    received: datetime,
    budget: Budget,
) -> _Write:
    group, entities = located
    resolution = resolution_of(entities, series)
    k = repeats(period, len(group.values), resolution)
    budget.take(len(group.values) * k * len(entities), "values", "intervals they become")
    for entity in entities:
        _sign_check(entity, group.values)
    points = _points(period, group, resolution, k)
    # Each interval is known when the value it repeats was: at that value's end.
    ends = [period.start + (i // k + 1) * k * resolution for i in range(len(points))]
    known = beliefs(fields, version, ends, received, observed=kind.observed)
    return _Write(entities, resolution, points, known)


def post_handler(kind: Kind) -> Any:
    async def handler(request: web.Request) -> web.Response:
        version = version_of(request)
        fields = await fields_of(request)
        check_type(fields, kind.post)
        check_unit(fields)
        period = period_of(fields, version)
        groups = groups_of(fields, "connection", with_values=True)
        limits = limits_of(request)
        check_items(limits, sum(len(g.addresses) for g in groups), "connections", "connections")
        budget = blocks_budget(limits)
        caller = caller_of(request)
        received = utcnow()
        async with database_of(request).transaction() as tx:
            located = await _located(tx, caller.tenant, groups)
            series = await series_at(tx, caller.tenant, [e for _, es in located for e in es])
            writes = [
                _group_write(fields, version, kind, period, one, series, received, budget)
                for one in located
            ]
            source = source_name(caller.account.username, kind)
            await _store(tx, caller.tenant, writes, series, source)
        return processed(kind.post)

    return handler


async def _located(
    tx: AsyncConnection, tenant: Tenant, groups: list[Group]
) -> list[tuple[Group, list[Entity]]]:
    """Each group with the resources at its addresses, all found in one lookup."""
    addresses = [a for g in groups for a in g.addresses]
    found = iter(await resources_at(tx, tenant, addresses, unknown="UNRECOGNIZED_ASSET"))
    return [(g, [next(found) for _ in g.addresses]) for g in groups]


async def _store(
    tx: AsyncConnection,
    tenant: Tenant,
    writes: list[_Write],
    series: dict[int, Series],
    source: str,
) -> None:
    """Every group's points into its connections' series (made at the group's resolution
    where new), one statement for the groups that share their belief times."""
    by_belief: dict[tuple[datetime, ...], list[tuple[Series, Sequence[Point]]]] = {}
    for write in writes:
        for entity in write.entities:
            if entity.id not in series:
                series[entity.id] = await ensure_series(
                    tx, tenant, entity, SERIES, resolution=write.resolution
                )
            by_belief.setdefault(tuple(write.known), []).append((series[entity.id], write.points))
    for known, batch in by_belief.items():
        await write_many(tx, tenant, batch, source=source, belief=list(known), unit=Unit.MW)


def _read_resolution(fields: dict[str, Any], stored: timedelta) -> timedelta:
    text = fields.get("resolution")
    if text is None:
        return stored
    try:
        wanted = parse_duration(text, "resolution")
    except UsefError:
        raise UsefError(
            "INVALID_RESOLUTION",
            detail=f"The resolution string cannot be parsed as ISO8601 duration: {str(text)[:60]}",
        ) from None
    if wanted % stored:
        raise UsefError(
            "INVALID_RESOLUTION",
            detail=f"Only the following resolutions are supported: {iso(stored)} or a "
            "multiple hereof.",
        )
    return wanted


async def _sources(
    tx: AsyncConnection, caller: Any, fields: dict[str, Any], kind: Kind
) -> list[str] | None:
    """The source names to read (A.1 Sources): the named USEF roles' and account ids'
    sources and the caller's own; without `source`, every source of this kind (meter data:
    any protocol's but USEF prognoses; prognoses: every USEF prognosis)."""
    named = plural(fields, "source")
    if named is None:
        every = await source_names(tx, caller.tenant)
        prognosis = [
            n for n in every if n.startswith("usef:") and n.endswith(PROGNOSIS.source_suffix)
        ]
        return prognosis if kind is PROGNOSIS else [n for n in every if n not in prognosis]
    accounts = await accounts_of(tx, caller.tenant)
    wanted = {source_name(caller.account.username, kind)}
    for name in named:
        matches = [a for a in accounts if str(name) in a.usef_roles or str(name) == str(a.id)]
        if not matches:
            raise UsefError("INVALID_SOURCE", str(name)[:80])
        wanted.update(source_name(a.username, kind) for a in matches)
    return sorted(wanted)


def _laid_out(points: list[Point], period: Period, step: timedelta) -> list[float | None]:
    """One value per `step` of the period, in MW; None where nothing is known."""
    by_start = {p.start: p.value for p in points}
    count = period.duration // step
    out: list[float | None] = []
    for n in range(count):
        value = by_start.get(period.start + n * step)
        out.append(None if value is None else value / 1000)
    return out


def _answer(
    kind: Kind, fields: dict[str, Any], period: Period, laid: list[tuple[str, list[Any]]]
) -> web.Response:
    times = {
        "start": period.start.isoformat().replace("+00:00", "Z"),
        "duration": iso(period.duration),
        "unit": "MW",
    }
    if fields.get("groups") is None and len(laid) == 1:
        address, values = laid[0]
        return processed(kind.get, connection=address, values=values, **times)
    collapsed: dict[str, tuple[list[str], list[Any]]] = {}
    for address, values in laid:
        collapsed.setdefault(repr(values), ([], values))[0].append(address)
    groups = [{"connections": a, "values": v} for a, v in collapsed.values()]
    return processed(kind.get, groups=groups, **times)


@dataclass(frozen=True, slots=True)
class _Filters:
    """Which beliefs a GET keeps (A.2): recorded by `prior`, at least `horizon` before the
    interval start (the store's measure), from `sources` (None: all)."""

    prior: datetime | None
    horizon: timedelta | None
    sources: list[str] | None


async def _laid(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series | None,
    period: Period,
    steps: tuple[timedelta, timedelta],
    filters: _Filters,
) -> list[float | None]:
    """One connection's values over the period at `steps` (answered, stored)."""
    step, stored = steps
    if series is None:
        return [None] * (period.duration // step)
    points = await read_values(
        tx,
        tenant,
        series,
        period.start,
        period.end,
        resolution=None if step == stored else step,
        prior=filters.prior,
        horizon=filters.horizon,
        sources=filters.sources,
    )
    return _laid_out(points, period, step)


def _steps(
    fields: dict[str, Any], period: Period, stored: timedelta
) -> tuple[timedelta, timedelta]:
    step = _read_resolution(fields, stored)
    if period.duration % step or (period.start - EPOCH) % stored:
        raise UsefError("INVALID_PERIOD", f"The period is not made of whole {iso(step)} intervals.")
    return step, stored


def get_handler(kind: Kind) -> Any:
    async def handler(request: web.Request) -> web.Response:
        version = version_of(request)
        fields = await fields_of(request)
        check_type(fields, kind.get)
        check_unit(fields)
        period = period_of(fields, version)
        groups = groups_of(fields, "connection", with_values=False)
        addresses = [a for g in groups for a in g.addresses]
        limits = limits_of(request)
        check_items(limits, len(addresses), "connections", "connections")
        horizon = (
            None if fields.get("horizon") is None else parse_horizon(fields["horizon"], version)
        )
        prior = None if fields.get("prior") is None else parse_time(fields["prior"], "prior")
        caller = caller_of(request)
        async with database_of(request).read() as tx:
            entities = await resources_at(
                tx, caller.tenant, addresses, unknown="UNRECOGNIZED_CONNECTION_GROUP"
            )
            series = await series_at(tx, caller.tenant, entities)
            steps = _steps(fields, period, resolution_of(entities, series))
            answer_budget(limits).take(
                period.duration // steps[0] * len(entities), "duration", "values"
            )
            filters = _Filters(
                prior,
                None if horizon is None else horizon.before - steps[1],
                await _sources(tx, caller, fields, kind),
            )
            laid = [
                (
                    address,
                    await _laid(tx, caller.tenant, series.get(entity.id), period, steps, filters),
                )
                for address, entity in zip(addresses, entities, strict=True)
            ]
        return _answer(kind, fields, period, laid)

    return handler
