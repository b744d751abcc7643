"""The baseline of a FlexOrder: the AGR's D-Prognosis for the order's congestion point,
Period and ISPs as it stood when the order was placed (docs/protocols/uftp-3.1.md,
"Settlement").

"A flexibility order is linked to a flexibility offer and a baseline for settlement
purposes", and "the load profile resulting from a flexibility deal will be stored
independently from any subsequent updates of the D-prognosis" (Shapeshifter, validate
phase): an AGR revises its prognosis after an order to include the flex ordered, and the
series keeps only the newest belief per ISP, so the order keeps a copy (W per ISP number)
and the D-Prognosis's MessageID, taken in the transaction that places it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.sources import source_of
from store.entities import Entity
from store.peers import Peer
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.uftp import prognosis_message
from store.values import read_values

_HOUR = timedelta(hours=1)


def isp_numbers(isps: Iterable[dict[str, int]]) -> list[int]:
    """The ISP numbers an order's ISP elements ({start, duration, ...}) cover."""
    return [n for i in isps for n in range(i["start"], i["start"] + i["duration"])]


async def prognosed_w(
    tx: AsyncConnection, tenant: Tenant, peer: Peer, point: Entity, day: Day, numbers: list[int]
) -> dict[str, int]:
    """The peer's prognosed power (W) now, per ISP number (as text) of `numbers` it has."""
    series = await find_series(tx, tenant, point, SeriesType.NET_ENERGY)
    if series is None:
        return {}
    wanted = set(numbers)
    hours = day.isp / _HOUR
    found: dict[str, int] = {}
    rows = await read_values(tx, tenant, series, day.start, day.end, sources=[source_of(peer.name)])
    for p in rows:
        n = (p.start - day.start) // day.isp + 1
        if n in wanted and p.value is not None:
            found[str(n)] = round(p.value / hours * 1000)
    return found


async def baseline_now(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    point: Entity,
    day: Day,
    isps: Iterable[dict[str, int]],
) -> dict[str, object]:
    """What an order placed now records: `baseline` {ISP number: W} and the
    `d_prognosis_message_id` it comes from (None: no prognosis)."""
    watts = await prognosed_w(tx, tenant, peer, point, day, isp_numbers(isps))
    message_id = await prognosis_message(tx, peer, point, day.period) if watts else None
    return {"baseline": watts, "d_prognosis_message_id": message_id}
