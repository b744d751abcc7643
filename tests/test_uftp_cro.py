"""flexbridge as the DSO toward a common reference operator (CRO), and TestMessage from the
DSO (docs/protocols/uftp-3.1.md, "The CRO", "TestMessage"), in this process with the CRO of
tests/uftp_cro.py and the AGR of tests/uftp_agr.py, on SQLite and PostgreSQL. Every message
we send is checked against our outbound schema and the reference UFTP-dso.xsd; a seeded
fuzz of the two CRO responses never gets a 5xx nor writes anything.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from sqlalchemy import func, select
from test_uftp_fuzz import ALLOWED, SEED, El, random_shot
from test_uftp_fuzz import document as fuzz_document
from test_uftp_fuzz import post as fuzz_post
from test_uftp_schemas import reference_xsd_dir
from uftp_agr import AMSTERDAM, CP, Agr, Dso, valid_outbound
from uftp_cro import CRO_DOMAIN, WithCro, with_cro

from adapter import peer_admin
from adapter.keys import DB
from hub.peer_state import state_of
from protocols.common.context import HUB
from protocols.uftp.v3_1 import MARKET, on_demand
from protocols.uftp.v3_1.codec import Node, timestamp
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from store.errors import NotFound, ValidationError
from store.peers import find_peer
from store.tables import messages, outbox, peers, uftp_exchanges

CP2 = "ea1.2026-12.nl.example.dso:cp-2"
EAN_A, EAN_B = "ean.871685900012345601", "ean.871685900012345602"
OTHER_AGR = "agr2.example.com"
FIXTURE_EAN = "ean.871685900012345678"  # the connection of the `dso` fixture's point
FUZZ_CASES = 120


@pytest.fixture
async def cro(dso: Dso, aiohttp_server: Any) -> WithCro:
    return await with_cro(dso, aiohttp_server)


@cache
def _reference() -> Any:
    import xmlschema

    folder = reference_xsd_dir()
    if folder is None:
        pytest.skip("reference UFTP 3.1.0 XSDs not found (tests/test_uftp_schemas.py says where)")
    return xmlschema.XMLSchema10(str(folder / "UFTP-dso.xsd"), allow="sandbox")


def valid_both_ways(inner: bytes) -> None:
    """Our outbound schema and the reference UFTP-dso.xsd take it."""
    import xmlschema

    valid_outbound(inner)
    _reference().validate(xmlschema.XMLResource(inner, defuse="always", allow="none"))


def today() -> str:
    return datetime.now(AMSTERDAM).date().isoformat()


async def add_point(w: WithCro, address: str, *eans: str, agrs: tuple[str, ...] = ()) -> Any:
    app = w.dso.app
    point = await add_congestion_point(
        app[DB], NewCongestionPoint("grid", address, eans, agrs), app[MARKET]
    )
    app[HUB].wake_outbox()
    return point


async def exchanges(w: WithCro) -> list[Any]:
    async with w.dso.app[DB].read() as tx:
        return list(await tx.execute(select(uftp_exchanges).order_by(uftp_exchanges.c.id)))


async def query(w: WithCro, address: str = CP) -> Any:
    (sent,) = await on_demand.portfolio_query(w.dso.app[DB], "grid", w.dso.app[MARKET], address)
    w.dso.app[HUB].wake_outbox()
    return sent


def query_response(w: WithCro, sent: Any, *connections: Node, **overrides: str) -> bytes:
    attributes = w.cro.metadata(
        ConversationID=sent.conversation_id,
        Result="Accepted",
        DSOPortfolioQueryMessageID=sent.message_id,
        TimeZone="Europe/Amsterdam",
        Period=sent.request["period"],
    )
    attributes.update(overrides)
    children = [Node("CongestionPoint", {"EntityAddress": CP}, list(connections))]
    return w.cro.message("DSOPortfolioQueryResponse", attributes, children if connections else [])


async def add_agr(w: WithCro, domain: str) -> None:
    await peer_admin.add(
        w.dso.app[DB],
        peer_admin.NewPeer(
            "grid", "uftp", domain, "http://127.0.0.1:9/agr", role="AGR",
            public_keys=(Agr().key.public,),
        ),
    )  # fmt: skip


async def active_at(w: WithCro, domain: str) -> list[str]:
    async with w.dso.app[DB].read() as tx:
        peer = await find_peer(tx, w.dso.tenant, "uftp", domain)
        assert peer is not None
        return state_of(peer).congestion_points


# --- DSOPortfolioUpdate ------------------------------------------------------------------


async def test_a_new_congestion_point_is_registered_with_the_cro(cro: WithCro):
    """The catalog: "The DSOPortfolioUpdate is used by the DSO to indicate on which
    congestion points it wants to engage in flexibility trading": a congestion point added
    is sent to the CRO with its connections, from today, signed, valid by the reference."""
    await add_point(cro, CP2, EAN_A, EAN_B)
    update = await cro.cro.next("DSOPortfolioUpdate")
    valid_both_ways(update.inner)
    assert update.attributes["RecipientDomain"] == CRO_DOMAIN
    assert update.attributes["TimeZone"] == "Europe/Amsterdam"
    (point,) = update.children
    assert point.attrib == {
        "EntityAddress": CP2,
        "StartPeriod": today(),
        "MutexOffersSupported": "true",
        "DayAheadRedispatchBy": "DSO",
        "IntradayRedispatchBy": "DSO",
    }
    assert [c.attrib for c in point] == [
        {"EntityAddress": EAN_A, "StartPeriod": today()},
        {"EntityAddress": EAN_B, "StartPeriod": today()},
    ]
    (row,) = await exchanges(cro)
    assert (row.kind, row.message_id, row.status) == (
        "DSOPortfolioUpdate",
        update.attributes["MessageID"],
        "sent",
    )


async def test_a_new_connection_sends_an_update_and_nothing_new_sends_none(cro: WithCro):
    """The update goes out when the congestion point gets a connection, listing all of
    them; adding what is there already changes nothing and sends nothing."""
    await add_point(cro, CP2, EAN_A)
    await cro.cro.next("DSOPortfolioUpdate")
    await add_point(cro, CP2, EAN_A)
    assert len(await exchanges(cro)) == 1
    await add_point(cro, CP2, EAN_B)
    update = await cro.cro.next("DSOPortfolioUpdate")
    assert [c.attrib["EntityAddress"] for c in update.children[0]] == [EAN_A, EAN_B]
    assert len(await exchanges(cro)) == 2


async def test_the_update_is_sent_in_the_transaction_of_the_change(cro: WithCro):
    """A congestion point add that fails (an unknown AGR) leaves neither the point, nor an
    update in the outbox, nor an exchange."""
    app = cro.dso.app
    with pytest.raises(NotFound):
        await add_congestion_point(
            app[DB], NewCongestionPoint("grid", CP2, (EAN_A,), ("nobody.example.com",)), app[MARKET]
        )
    async with app[DB].read() as tx:
        queued = (await tx.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert queued == 0
    assert await exchanges(cro) == []


async def test_without_a_cro_nothing_is_sent_and_the_command_says_why(dso: Dso):
    """No CRO peer: adding a congestion point sends no update; asking for one is refused
    naming --tenant."""
    app = dso.app
    await add_congestion_point(app[DB], NewCongestionPoint("grid", CP2, (EAN_A,)), app[MARKET])
    async with app[DB].read() as tx:
        assert (await tx.execute(select(func.count()).select_from(uftp_exchanges))).scalar() == 0
    with pytest.raises(ValidationError, match="--tenant"):
        await on_demand.portfolio_update(app[DB], "grid", app[MARKET])


@pytest.mark.parametrize(
    ("result", "status", "reason"),
    [("Accepted", "accepted", None), ("Rejected", "rejected", "Unknown Connection")],
)
async def test_the_update_response_records_the_cros_verdict(cro: WithCro, result, status, reason):
    """DSOPortfolioUpdateResponse, whose reference is DSOPortfolioUpdateResponseMessageID
    (sic), marks the update accepted or rejected with the CRO's reason."""
    (sent,) = await on_demand.portfolio_update(cro.dso.app[DB], "grid", cro.dso.app[MARKET], CP)
    extra = {} if reason is None else {"RejectionReason": reason}
    inner = cro.cro.message(
        "DSOPortfolioUpdateResponse",
        cro.cro.metadata(
            ConversationID=sent.conversation_id,
            Result=result,
            DSOPortfolioUpdateResponseMessageID=sent.message_id,
            **extra,
        ),
    )
    assert (await cro.as_cro.post(cro.cro.signed(inner)))[0] == 200
    (row,) = await exchanges(cro)
    assert (row.status, row.rejection_reason) == (status, reason)


# --- DSOPortfolioQuery -------------------------------------------------------------------


async def test_a_query_names_the_congestion_point_and_period(cro: WithCro):
    """DSOPortfolioQuery: TimeZone, Period, EntityAddress of the congestion point."""
    sent = await query(cro)
    message = await cro.cro.next("DSOPortfolioQuery")
    valid_both_ways(message.inner)
    assert message.attributes["MessageID"] == sent.message_id
    assert (message.attributes["EntityAddress"], message.attributes["Period"]) == (CP, today())


async def test_the_query_response_links_the_agrs_it_names_that_are_known_peers(cro: WithCro):
    """The catalog: "DSOPortfolioQuery is used by DSOs to discover which AGRs represent
    connections on its registered congestion point(s)": an AGR peer named on our connection
    becomes active at the congestion point; an unknown domain, a connection not ours, link
    nobody."""
    await add_agr(cro, OTHER_AGR)
    await add_point(cro, CP, EAN_A)  # a second connection of the fixture's point
    sent = await query(cro)
    inner = query_response(
        cro,
        sent,
        Node("Connection", {"EntityAddress": EAN_A, "AGR-Domain": OTHER_AGR}),
        Node("Connection", {"EntityAddress": FIXTURE_EAN, "AGR-Domain": "x.example"}),
        Node("Connection", {"EntityAddress": EAN_B, "AGR-Domain": OTHER_AGR}),
        Node("Connection", {"EntityAddress": "ean.871685900012345699"}),
    )
    assert (await cro.as_cro.post(cro.cro.signed(inner)))[0] == 200
    assert await active_at(cro, OTHER_AGR) == [CP]
    row = next(r for r in await exchanges(cro) if r.kind == "DSOPortfolioQuery")
    assert row.status == "accepted"
    assert row.answer["connections"] == [
        {"ean": EAN_A, "agr": OTHER_AGR, "linked": True},
        {"ean": FIXTURE_EAN, "agr": "x.example", "linked": False},
        {"ean": EAN_B, "agr": OTHER_AGR, "linked": False},
        {"ean": "ean.871685900012345699", "agr": None, "linked": False},
    ]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"DSOPortfolioQueryMessageID": "5ed1c6e2-0000-4000-8000-000000000001"}, "reference"),
        ({"Period": "2020-01-01"}, "period"),
        ({"cp": "ea1.2026-12.nl.example.dso:elsewhere"}, "congestion point"),
        ({"role": "AGR"}, "role"),
    ],
)
async def test_a_query_response_that_does_not_fit_changes_nothing(cro: WithCro, change, why):
    """A bad reference, another Period, another congestion point, or an AGR sending what only
    a CRO sends: no write (the exchange stays sent, no AGR is linked, nothing is queued)."""
    await add_agr(cro, OTHER_AGR)
    sent = await query(cro)
    await cro.cro.next("DSOPortfolioQuery")
    connection = Node(
        "Connection", {"EntityAddress": "ean.871685900012345678", "AGR-Domain": OTHER_AGR}
    )
    overrides = {k: v for k, v in change.items() if k not in ("cp", "role")}
    inner = query_response(cro, sent, connection, **overrides)
    if "cp" in change:
        inner = inner.replace(
            f'EntityAddress="{CP}"'.encode(), f'EntityAddress="{change["cp"]}"'.encode()
        )
    sender = cro.dso if "role" in change else cro.as_cro
    if "role" in change:
        inner = inner.replace(CRO_DOMAIN.encode(), cro.dso.agr.domain.encode())
    before = await snapshot(cro)
    assert (await sender.post(sender.agr.signed(inner)))[0] == 200, why
    assert await snapshot(cro) == before, why
    assert await active_at(cro, OTHER_AGR) == []


async def snapshot(w: WithCro) -> tuple[Any, ...]:
    """What a CRO response may write: the exchanges, the peers' state, the outbox."""
    async with w.dso.app[DB].read() as tx:
        rows = (await tx.execute(select(uftp_exchanges).order_by(uftp_exchanges.c.id))).all()
        states = (await tx.execute(select(peers.c.state).order_by(peers.c.id))).all()
        queued = (await tx.execute(select(func.count()).select_from(outbox))).scalar_one()
    return [tuple(r) for r in rows], [tuple(s) for s in states], queued


def _response_el(w: WithCro, rng: random.Random, kind: str, reference: str, period: str) -> El:
    """A CRO response that must change nothing: a reference not ours, or (a query response)
    our reference about a congestion point we do not have."""
    attrs = {
        "Version": "3.1.0",
        "SenderDomain": CRO_DOMAIN,
        "RecipientDomain": "dso.example.com",
        "TimeStamp": timestamp(datetime.now(UTC)),
        "MessageID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "ConversationID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "Result": "Accepted",
    }
    stranger = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind == "DSOPortfolioUpdateResponse":
        attrs["DSOPortfolioUpdateResponseMessageID"] = stranger
        return El(kind, attrs)
    ours = rng.random() < 0.5
    attrs.update(
        DSOPortfolioQueryMessageID=reference if ours else stranger,
        TimeZone="Europe/Amsterdam",
        Period=period,
    )
    point = "ea1.2026-12.nl.example.dso:unknown" if ours else CP
    connection = El(
        "Connection", {"EntityAddress": "ean.871685900012345678", "AGR-Domain": OTHER_AGR}
    )
    return El(kind, attrs, [El("CongestionPoint", {"EntityAddress": point}, [connection])])


async def test_hostile_cro_responses_never_get_a_5xx_nor_write(cro: WithCro):
    """Seeded: both CRO responses with bad references, about an unknown congestion point,
    from the wrong role (signed by the AGR), broken as tests/test_uftp_fuzz.py breaks
    messages: only the spec table's statuses, and nothing written."""
    await add_agr(cro, OTHER_AGR)
    sent = await query(cro)
    await cro.cro.next("DSOPortfolioQuery")
    rng = random.Random(SEED)
    before = await snapshot(cro)
    failures = []
    for n in range(FUZZ_CASES):
        kind = rng.choice(["DSOPortfolioUpdateResponse", "DSOPortfolioQueryResponse"])
        message = _response_el(cro, rng, kind, sent.message_id, sent.request["period"])
        as_agr = rng.random() < 0.15
        if as_agr:
            message.attrs["SenderDomain"] = cro.dso.agr.domain
        party = cro.dso if as_agr else cro.as_cro
        shot = random_shot(party, rng, message) if n % 4 else None
        if shot is None:  # unbroken: it passes the schema and reaches the handler
            from test_uftp_fuzz import _signed

            shot = _signed(party, f"{kind} as sent", fuzz_document(message))
        status = await fuzz_post(party, shot)
        if status not in ALLOWED:
            failures.append(f"HTTP {status}, case {n} (seed {SEED}): {shot.label}")
    assert not failures, "\n".join(failures[:20])
    assert await snapshot(cro) == before
    assert await active_at(cro, OTHER_AGR) == []
    async with cro.dso.app[DB].read() as tx:
        refusals = set((await tx.execute(select(messages.c.detail))).scalars())
    assert {
        "Unknown DSOPortfolioUpdateResponseMessageID reference",
        "Unknown DSOPortfolioQueryMessageID reference",
        "Invalid CongestionPoint",
        "Invalid SenderRole",
    } <= refusals  # each way of not fitting reached the handlers


# --- TestMessage -------------------------------------------------------------------------


async def test_a_test_message_is_answered_by_conversation(cro: WithCro):
    """TestMessage "any -> any"; the 3.x TestMessageResponse has no Result and no reference,
    so it is matched by ConversationID: one in another conversation answers nothing."""
    dso = cro.dso
    sent = await on_demand.send_test(dso.app[DB], "grid", dso.app[MARKET], dso.agr.domain)
    dso.app[HUB].wake_outbox()
    message = await dso.agr.next("TestMessage")
    valid_both_ways(message.inner)
    assert message.attributes["ConversationID"] == sent.conversation_id
    stranger = dso.agr.message("TestMessageResponse", dso.agr.metadata())
    assert (await dso.post(dso.agr.signed(stranger)))[0] == 200
    assert [r.status for r in await exchanges(cro)] == ["sent"]
    answer = dso.agr.message(
        "TestMessageResponse", dso.agr.metadata(ConversationID=sent.conversation_id)
    )
    assert (await dso.post(dso.agr.signed(answer)))[0] == 200
    (row,) = await exchanges(cro)
    assert (row.kind, row.status, row.answer) == ("TestMessage", "answered", {})


async def test_waiting_gives_up_at_the_deadline_with_the_exchange_unanswered(cro: WithCro):
    """--wait S: the answers as they stand after S seconds when none came."""
    dso = cro.dso
    sent = await on_demand.send_test(dso.app[DB], "grid", dso.app[MARKET], CRO_DOMAIN)
    (after,) = await on_demand.answers(dso.app[DB], [sent], 0.3)
    assert after.status == "sent"
    for bad in ("0", "-1", "soon", "3601"):
        with pytest.raises(ValidationError, match="--wait"):
            on_demand.wait_seconds(bad)
    assert timedelta(seconds=on_demand.wait_seconds("2.5") or 0) == timedelta(seconds=2.5)
