"""UFTP state as the operator and the other protocols see it: `flexbridge uftp list` (the
states of issue 14 "open, offered, ordered, revoked, expired, settled", expired read from
ExpirationDateTime against the moment of reading) and the requested and ordered flex as
series on the congestion point, flexbridge as the DSO with the AGR of tests/uftp_agr.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY
from sqlalchemy import select
from uftp_agr import AMSTERDAM, CP, WAIT, isp_nodes
from uftp_agr import flex_attributes as _flex
from uftp_agr import isps_of as _isps
from uftp_agr import tomorrow as _tomorrow

from adapter import peer_admin, uftp_admin
from adapter.cli import _parser
from adapter.keys import DB
from adapter.settings import Settings
from protocols.common.context import HUB
from protocols.uftp.v3_1 import MARKET, clock
from protocols.uftp.v3_1.codec import Node, timestamp
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.listing import Listing, Query, listing
from protocols.uftp.v3_1.sealing import SigningKey
from store.db import open_database
from store.errors import StoreError
from store.migrate import upgrade
from store.peers import find_peer
from store.references import find, parse_address
from store.secret_box import SecretBox
from store.series import ensure_series, find_series
from store.series_types import SeriesType
from store.tables import uftp_flex_offers
from store.tenants import add_tenant
from store.uftp import TradeStatus, add_trade
from store.values import Point, read_values, write_values

FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))
Q = timedelta(minutes=15)
OURS = "uftp:dso.example.com"  # the source of our own series: uftp and our domain
PEAK = range(41, 45)  # ISPs 41-44, prognosed 20 kW over the capacity


async def _capacity(dso: Any, period: date, kw: float) -> None:
    start = datetime.combine(period, datetime.min.time(), AMSTERDAM).astimezone(UTC)
    points = [Point(start + n * Q, start + (n + 1) * Q, kw) for n in range(_isps(period))]
    async with dso.app[DB].transaction() as tx:
        series = await ensure_series(
            tx, dso.tenant, dso.point, SeriesType.MAX_CAPACITY, resolution=Q
        )
        await write_values(tx, dso.tenant, series, points, source="cpapi")


async def _prognose(dso: Any, period: date, peak_w: int, revision: int) -> None:
    powers = [80_000] * _isps(period)
    for n in PEAK:
        powers[n - 1] = peak_w
    attributes = _flex(period, Revision=str(revision))
    assert (await dso.send("D-Prognosis", isp_nodes(powers), **attributes))[0] == 200
    assert (await dso.agr.next("D-PrognosisResponse")).attributes["Result"] == "Accepted"


async def _overloaded(dso: Any) -> tuple[date, Any]:
    period = _tomorrow()
    await _capacity(dso, period, 100.0)
    await _prognose(dso, period, 120_000, 1)
    return period, await dso.agr.next("FlexRequest")


async def _offer(dso: Any, request: Any, watts: int, expires: datetime) -> str:
    """An offer of `watts` less on ISPs 41-44 at 40.0000 EUR, answering `request`; its id."""
    message_id = str(uuid.uuid4())
    option = Node(
        "OfferOption",
        {"OptionReference": "A", "Price": "40.0000", "MinActivationFactor": "0.50"},
        [Node("ISP", {"Power": str(-watts), "Start": "41", "Duration": "4"})],
    )
    status, _ = await dso.send(
        "FlexOffer",
        [option],
        MessageID=message_id,
        ConversationID=request.attributes["ConversationID"],
        **_flex(date.fromisoformat(request.attributes["Period"])),
        ExpirationDateTime=timestamp(expires),
        FlexRequestMessageID=request.attributes["MessageID"],
        Currency="EUR",
    )
    assert status == 200
    assert (await dso.agr.next("FlexOfferResponse")).attributes["Result"] == "Accepted"
    return message_id


async def _listed(dso: Any, now: datetime, **query: Any) -> Listing:
    return await listing(dso.app[DB], Query("grid", **query), now)


def _states(found: Listing) -> dict[str, list[str]]:
    return {kind: [str(e.state) for e in entries] for kind, entries in found.entries.items()}


async def _kw(dso: Any, series_type: SeriesType, period: date) -> dict[int, float]:
    """The congestion point's series of our source for the Period, per ISP number."""
    day = Day(period, AMSTERDAM, Q)
    async with dso.app[DB].read() as tx:
        series = await find_series(tx, dso.tenant, dso.point, series_type)
        if series is None:
            return {}
        points = await read_values(tx, dso.tenant, series, day.start, day.end, sources=[OURS])
    return {(p.start - day.start) // Q + 1: p.value for p in points if p.value is not None}


async def test_a_trade_is_listed_open_ordered_then_accepted_and_its_flex_is_a_series(dso):
    """ "State: flex requests, offers, orders ... with their state machine (open, offered,
    ordered, revoked, expired, settled) ... readable through the CLI and, as series, on the
    congestion point (prognoses, requested and ordered flex) so every other protocol sees
    them": the requested flex as soon as the FlexRequest is sent, the ordered flex (40 kW
    offered x ActivationFactor 0.50) once the AGR accepts the FlexOrder."""
    period, request = await _overloaded(dso)
    count = _isps(period)
    first = await _listed(dso, datetime.now(UTC))
    assert _states(first) == {
        "requests": ["open"],
        "offers": [],
        "orders": [],
        "prognoses": ["accepted"],
    }
    (asked,) = first.entries["requests"]
    assert (asked.message_id, asked.agr, asked.congestion_point, asked.period) == (
        request.attributes["MessageID"], dso.agr.domain, CP, period,
    )  # fmt: skip
    assert (asked.figures["requested_isps"], asked.figures["requested_kw"]) == (4, -20.0)
    assert first.entries["prognoses"][0].figures == {"revision": 1}
    assert await _kw(dso, SeriesType.REQUESTED_FLEXIBILITY, period) == {
        n: -20.0 if n in PEAK else 0.0 for n in range(1, count + 1)
    }
    assert await _kw(dso, SeriesType.ORDERED_FLEXIBILITY, period) == {}

    await _offer(dso, request, 40_000, datetime.now(UTC) + timedelta(hours=2))
    order = await dso.agr.next("FlexOrder")
    placed = await _listed(dso, datetime.now(UTC), kinds=("requests", "offers", "orders"))
    assert _states(placed) == {
        "requests": ["ordered"],
        "offers": ["ordered"],
        "orders": ["ordered"],
    }
    (ordered,) = placed.entries["orders"]
    assert ordered.conversation_id == request.attributes["ConversationID"]
    assert (ordered.figures["ordered_kw"], ordered.figures["price"]) == (-20.0, "40.0000")
    assert await _kw(dso, SeriesType.ORDERED_FLEXIBILITY, period) == {}  # not accepted yet

    status, _ = await dso.send(
        "FlexOrderResponse",
        ConversationID=order.attributes["ConversationID"],
        FlexOrderMessageID=order.attributes["MessageID"],
        Result="Accepted",
    )
    assert status == 200
    accepted = await _listed(dso, datetime.now(UTC), kinds=("orders",), state="accepted")
    assert [e.message_id for e in accepted.entries["orders"]] == [order.attributes["MessageID"]]
    assert await _kw(dso, SeriesType.ORDERED_FLEXIBILITY, period) == {
        n: -20.0 if n in PEAK else 0.0 for n in range(1, count + 1)
    }


async def test_an_offer_expires_between_two_reads_without_a_write(dso):
    """An offer is "expired" once its ExpirationDateTime has passed, read so at that moment
    with nothing written in between (the row stays `open`); until then its request is
    "offered", after it "open" again until the request's own expiry. A revoked offer is
    "revoked"."""
    _, request = await _overloaded(dso)
    expires = datetime.now(UTC) + timedelta(hours=2)
    await _offer(dso, request, 5_000, expires)  # 5 of the 20 kW: not ordered at once
    withdrawn = await _offer(dso, request, 5_000, expires)
    revoke = dso.agr.metadata(FlexOfferMessageID=withdrawn)
    assert (await dso.post(dso.agr.signed(dso.agr.message("FlexOfferRevocation", revoke))))[
        0
    ] == 200
    await dso.agr.next("FlexOfferRevocationResponse")
    kinds = ("requests", "offers")

    before = await _listed(dso, expires - timedelta(seconds=1), kinds=kinds)
    assert _states(before) == {"requests": ["offered"], "offers": ["revoked", "open"]}
    after = await _listed(dso, expires, kinds=kinds)
    assert _states(after) == {"requests": ["open"], "offers": ["revoked", "expired"]}
    request_expires = datetime.fromisoformat(request.attributes["ExpirationDateTime"])
    assert _states(await _listed(dso, request_expires, kinds=("requests",))) == {
        "requests": ["expired"]
    }
    only_expired = await _listed(dso, expires, kinds=("offers",), state="expired")
    assert len(only_expired.entries["offers"]) == 1
    async with dso.app[DB].read() as tx:
        stored = sorted((await tx.execute(select(uftp_flex_offers.c.status))).scalars())
    assert stored == ["open", "revoked"]


async def test_a_request_no_longer_needed_is_superseded_and_requests_nothing(dso):
    """A request is superseded when its requested ISPs change; when the overload is gone no
    new request follows, and the congestion point's requested flex is 0 on every ISP."""
    period, _ = await _overloaded(dso)
    await _prognose(dso, period, 90_000, 2)  # 10 kW under the capacity
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:  # this tick or the server's own clock supersedes it
        await clock.tick(dso.app[DB], dso.app[HUB], datetime.now(UTC), dso.app[MARKET])
        found = await _listed(dso, datetime.now(UTC), kinds=("requests", "prognoses"))
        if _states(found)["requests"] != ["open"] or asyncio.get_running_loop().time() > deadline:
            break
    assert _states(found) == {"requests": ["superseded"], "prognoses": ["accepted"]}
    assert found.entries["prognoses"][0].figures == {"revision": 2}
    requested = await _kw(dso, SeriesType.REQUESTED_FLEXIBILITY, period)
    assert len(requested) == _isps(period) and set(requested.values()) == {0.0}


async def _cli(dso: Any, argv: list[str]) -> tuple[int, str]:
    """The command as `flexbridge` runs it on the fixture's database: (exit status, output)."""
    args = _parser().parse_args(argv)
    try:
        return 0, await uftp_admin.command(args, Settings())(dso.app[DB])
    except StoreError as exc:
        return 2, f"error: {exc}"


@pytest.mark.parametrize(
    ("more", "option"),
    [
        (["--tenant", "nobody"], "--tenant"),
        (["--tenant", "grid\udcff"], "--tenant"),  # argv bytes that are not UTF-8
        (["--tenant", "grid", "--agr", "agr\udcff"], "--agr"),
        (["--tenant", "grid", "--state", "lost"], "--state"),
        (["--tenant", "grid", "--congestion-point", "cp-1"], "--congestion-point"),
        (
            ["--tenant", "grid", "--congestion-point", "ean.871685900012345678"],
            "--congestion-point",
        ),
        (
            ["--tenant", "grid", "--congestion-point", CP.replace("cp-1", "cp-9")],
            "--congestion-point",
        ),
        (["--tenant", "grid", "--agr", "nobody.example.com"], "--agr"),
        (["--tenant", "grid", "bids"], "KIND"),
        (["--tenant", "grid", "--limit", "0"], "--limit"),
        (["--tenant", "grid", "--limit", "ten"], "--limit"),
    ],
)
async def test_a_listing_that_names_nothing_is_refused_in_one_line_naming_the_option(
    dso, more, option
):
    """CLI errors are one line on stderr and exit 2, naming the option and the reason."""
    code, said = await _cli(dso, ["uftp", "list", *more])
    assert (code, "\n" in said) == (2, False)
    assert said.startswith(f"error: {option}: "), said


async def test_uftp_list_prints_a_table_per_kind_or_one_json_document(tmp_path):
    """`flexbridge uftp list` as a real process on one SQLite file: a table per kind, or one
    JSON document, an unknown state refused in one line with exit 2."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'list.db'}"
    db = open_database(url, secrets=SecretBox([TEST_KEY]))
    period = _tomorrow()
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            tenant, _ = await add_tenant(tx, "grid")
        await peer_admin.add(
            db,
            peer_admin.NewPeer(
                "grid", "uftp", "agr.example.com", "http://127.0.0.1:9/m",
                role="AGR", public_keys=(SigningKey.generate().public,),
            ),
        )  # fmt: skip
        await add_congestion_point(db, NewCongestionPoint("grid", CP, (), ("agr.example.com",)))
        async with db.transaction() as tx:
            peer = await find_peer(tx, tenant, "uftp", "agr.example.com")
            point = await find(tx, tenant, parse_address(CP))
            assert peer is not None and point is not None
            isps = [{"start": 41, "disposition": "Requested", "min_w": -7_000, "max_w": 0}]
            await add_trade(
                tx, "request", tenant, peer, point, period,
                message_id="R-1", conversation_id="C-1", status=TradeStatus.SENT,
                revision=1, expires_at=datetime.now(UTC) + timedelta(days=2), isps=isps,
            )  # fmt: skip
    finally:
        await db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    env |= {"FLEXBRIDGE_DATABASE_URL": url, "FLEXBRIDGE_SECRET_KEYS": TEST_KEY}

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [FLEXBRIDGE, "uftp", "list", "--tenant", "grid", *args]
        return await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, env=env, timeout=60
        )

    table = await run("requests", "offers")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "requests:" and lines[1].split()[:3] == ["MESSAGE", "ID", "CONVERSATION"]
    assert lines[2].split()[:6] == ["R-1", "C-1", "agr.example.com", CP, str(period), "open"]
    assert lines[-1] == "offers: none"
    document = json.loads((await run("--json")).stdout)
    assert [r["state"] for r in document["requests"]] == ["open"]
    assert document["requests"][0]["requested_kw"] == -7.0
    assert (document["offers"], document["orders"], document["truncated"]) == ([], [], [])
    refused = await run("--state", "lost")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: --state: ")
