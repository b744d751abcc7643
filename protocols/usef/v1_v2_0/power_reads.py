"""getMeterData (v1+; v1 also as a POST) and getPrognosis (v1_1+): a period of connections'
power read back (power.py) in their resolution or a multiple of it, filtered by belief
time (`horizon`, `prior`) and source, in MW; `null` where nothing is known (A.8.16)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.limits import answer_budget
from protocols.common.context import caller_of, database_of, limits_of
from protocols.usef.v1_v2_0.addresses import resources_at
from protocols.usef.v1_v2_0.envelope import processed
from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.groups import plural
from protocols.usef.v1_v2_0.periods import Period, iso, parse_duration, parse_time
from protocols.usef.v1_v2_0.power import (
    PROGNOSIS,
    Kind,
    read_message,
    resolution_of,
    series_at,
    source_name,
)
from protocols.usef.v1_v2_0.timing import parse_horizon
from store.accounts import accounts_of
from store.series import Series, source_names
from store.tenants import Tenant
from store.timeutil import EPOCH
from store.values import Point, read_values


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
        if value is None or math.isnan(value):  # a resampled gap is NaN
            out.append(None)
        else:
            out.append(value / 1000)
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
        message = await read_message(request, kind.get, with_values=False)
        version, fields, period = message.version, message.fields, message.period
        addresses = message.addresses
        limits = limits_of(request)
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
