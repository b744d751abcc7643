"""UFTP 3.1 over real HTTP: flexbridge as the DSO, an AGR in this process (tests/uftp_agr.py)
signing its messages and receiving flexbridge's signed responses.

Spec sentences in docstrings are from shared/specs/uftp-3.1-notes.md and
wave2-requirements.md part B (message-transport-mechanism and message-validation of the
Shapeshifter 3.1.0 specification).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from uftp_agr import (
    AMSTERDAM,
    CP,
    PATH,
    XML,
    Dso,
    isp_nodes,
)
from uftp_agr import flex_attributes as _flex
from uftp_agr import isps_of as _isps
from uftp_agr import tomorrow as _tomorrow
from uftp_agr import valid_outbound as _valid_outbound

from adapter.keys import DB
from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.sealing import SigningKey
from store.series import find_series
from store.series_types import SeriesType
from store.tables import uftp_prognoses
from store.tables import values as values_table
from store.tenants import add_tenant
from store.values import read_values


async def test_a_test_message_is_answered_200_and_by_a_signed_test_message_response(dso):
    """ "Return 200 once the envelope has been read, its signature verified and the inner
    message parsed. The business answer is sent asynchronously as a new signed POST back to
    the sender, with the same ConversationID." A 3.x TestMessageResponse has no Result."""
    status, body = await dso.send(
        "TestMessage", ConversationID="c0ffee00-0000-4000-8000-000000000001"
    )
    assert (status, body) == (200, "")
    reply = await dso.agr.next()
    assert reply.kind == "TestMessageResponse"
    assert reply.attributes["ConversationID"] == "c0ffee00-0000-4000-8000-000000000001"
    assert reply.attributes["SenderDomain"] == "dso.example.com"
    assert reply.attributes["RecipientDomain"] == dso.agr.domain
    assert "Result" not in reply.attributes
    assert reply.headers["Content-Type"].startswith("text/xml")
    _valid_outbound(reply.inner)


async def test_a_bad_signature_is_401_and_an_unknown_sender_419(dso):
    """Spec table: "sender key lookup failed: 419"; "signature invalid: 401"."""
    inner = dso.agr.message("TestMessage", dso.agr.metadata())
    assert (await dso.post(dso.agr.signed(inner, key=SigningKey.generate())))[0] == 401
    assert (await dso.post(dso.agr.signed(inner, domain="stranger.example.com")))[0] == 419


async def test_transport_failures_get_the_status_of_the_spec_table(dso):
    """Spec table: missing Content-Length 411; Content-Type not text/xml 400; envelope XML
    unparseable or not XSD-valid 400. application/xml is accepted (Java, GOPACS)."""
    inner = dso.agr.message("TestMessage", dso.agr.metadata())
    signed = dso.agr.signed(inner)

    async def chunks():  # type: ignore[no-untyped-def]
        yield signed

    response = await dso.client.post(PATH, data=chunks(), headers=XML)
    assert response.status == 411
    assert (await dso.post(signed, {"Content-Type": "application/json"}))[0] == 400
    assert (await dso.post(signed, {"Content-Type": "text/xml; charset=latin-1"}))[0] == 400
    assert (await dso.post(b"<SignedMessage", XML))[0] == 400
    assert (await dso.post(b'<SignedMessage SenderDomain="x"/>', XML))[0] == 400
    assert (await dso.post(signed, {"Content-Type": "application/xml"}))[0] == 200


async def test_an_entity_bomb_is_refused_before_any_work(dso):
    """XML is parsed with entities, DTDs and remote loads disabled."""
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<SignedMessage SenderDomain="&b;" SenderRole="AGR" Body="AA=="/>'
    )
    status, body = await dso.post(bomb)
    assert status == 400 and "forbidden" in body.lower()


async def test_an_inner_message_that_breaks_the_schema_is_400(dso):
    """ "Unsealed XML unparseable or not XSD-valid: 400"; checked after the signature."""
    inner = dso.agr.message("TestMessage", dso.agr.metadata(MessageID="not-a-uuid"))
    assert (await dso.post(dso.agr.signed(inner)))[0] == 400
    assert (await dso.post(dso.agr.signed(b"<TestMessage")))[0] == 400


async def _prognosis(dso: Dso, powers: list[int], period: date, **attributes: str) -> Any:
    status, _ = await dso.send(
        "D-Prognosis", isp_nodes(powers), **_flex(period, **{"Revision": "1", **attributes})
    )
    assert status == 200
    return await dso.agr.next("D-PrognosisResponse")


async def test_a_d_prognosis_is_stored_on_the_congestion_point_per_agr(dso):
    """Power is integer watts, the average over the ISP; stored as NetEnergy (kWh per ISP),
    source uftp:<AGR domain>."""
    period = _tomorrow()
    count = _isps(period)
    powers = [4000 + n for n in range(count)]
    reply = await _prognosis(dso, powers, period)
    assert reply.attributes["Result"] == "Accepted", reply.attributes
    assert reply.attributes["D-PrognosisMessageID"]
    _valid_outbound(reply.inner)
    start = datetime.combine(period, datetime.min.time(), AMSTERDAM).astimezone(UTC)
    async with dso.app[DB].read() as tx:
        series = await find_series(tx, dso.tenant, dso.point, SeriesType.NET_ENERGY)
        stored = await read_values(
            tx, dso.tenant, series, start, start + count * timedelta(minutes=15)
        )
    assert [p.value for p in stored] == pytest.approx([w / 1000 * 0.25 for w in powers])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ISP-Duration": "PT30M"}, "ISP duration rejected"),
        ({"TimeZone": "America/New_York"}, "TimeZone rejected"),
        ({"CongestionPoint": "ea1.2026-12.nl.example.dso:elsewhere"}, "Invalid CongestionPoint"),
        ({"RecipientDomain": "other-dso.example.com"}, "Unknown RecipientDomain"),
        ({"SenderDomain": "someone-else.example.com"}, "Mismatch SenderDomain"),
        ({"Version": "2.0.0"}, "Invalid Message: Version 2.0.0 not supported"),
    ],
)
async def test_a_d_prognosis_breaking_a_rule_is_rejected_with_its_reason_and_not_stored(
    dso, change, reason
):
    """message-validation.md: each rule's RejectionReason; a rejected message changes
    nothing. A reply whose inner SenderDomain differs goes to the envelope's (the signer)."""
    reply = await _prognosis(dso, [1000] * 96, _tomorrow(), **change)
    assert (reply.attributes["Result"], reply.attributes.get("RejectionReason")) == (
        "Rejected",
        reason,
    )
    _valid_outbound(reply.inner)
    async with dso.app[DB].read() as tx:
        assert (await tx.execute(select(func.count()).select_from(values_table))).scalar() == 0


async def test_a_d_prognosis_lacking_isps_overlapping_or_out_of_bounds_is_rejected(dso):
    """ "ISPs out of bounds": max = 24 h / ISP-Duration +- DST; "ISP conflict": overlapping
    ISPs; D-Prognosis "must contain all ISPs of the Period" ("Lacking ISPs")."""
    period = _tomorrow()
    full = _isps(period)
    assert (await _prognosis(dso, [1] * (full - 1), period)).attributes[
        "RejectionReason"
    ] == "Lacking ISPs"
    assert (await _prognosis(dso, [1] * (full + 1), period)).attributes[
        "RejectionReason"
    ] == "ISPs out of bounds"
    overlapping = [
        *isp_nodes([1] * full),
        Node("ISP", {"Power": "1", "Start": "2", "Duration": "1"}),
    ]
    status, _ = await dso.send("D-Prognosis", overlapping, **_flex(period, Revision="1"))
    assert status == 200
    assert (await dso.agr.next("D-PrognosisResponse")).attributes[
        "RejectionReason"
    ] == "ISP conflict"


async def test_a_lower_revision_is_a_subordinate_sequence_number(dso):
    """D-Prognosis "Subordinate sequence number": Revision lower than one already received."""
    period = _tomorrow()
    full = _isps(period)
    first = await dso.send("D-Prognosis", isp_nodes([2000] * full), **_flex(period, Revision="5"))
    assert first == (200, "")
    assert (await dso.agr.next("D-PrognosisResponse")).attributes["Result"] == "Accepted"
    older = await dso.send("D-Prognosis", isp_nodes([9000] * full), **_flex(period, Revision="4"))
    assert older == (200, "")
    reply = await dso.agr.next("D-PrognosisResponse")
    assert reply.attributes["RejectionReason"] == "Subordinate sequence number"
    async with dso.app[DB].read() as tx:
        kept = (await tx.execute(select(uftp_prognoses.c.revision))).scalars().all()
    assert kept == [5]


async def test_a_message_id_again_is_already_submitted_or_a_duplicate_identifier(dso):
    """ "Same MessageID with identical content: Already Submitted, do not apply again. Same
    MessageID with different content: Duplicate Identifier (Rejected)."""
    period = _tomorrow()
    full = _isps(period)
    attributes = dso.agr.metadata(**_flex(period, Revision="1"))
    first = dso.agr.message("D-Prognosis", attributes, isp_nodes([3000] * full))
    assert (await dso.post(dso.agr.signed(first)))[0] == 200
    assert (await dso.agr.next("D-PrognosisResponse")).attributes["Result"] == "Accepted"
    assert (await dso.post(dso.agr.signed(first)))[0] == 200
    again = await dso.agr.next("D-PrognosisResponse")
    assert again.attributes["RejectionReason"] == "Already Submitted"
    other = dso.agr.message("D-Prognosis", attributes, isp_nodes([7000] * full))
    assert (await dso.post(dso.agr.signed(other)))[0] == 200
    assert (await dso.agr.next("D-PrognosisResponse")).attributes[
        "RejectionReason"
    ] == "Duplicate Identifier"
    async with dso.app[DB].read() as tx:
        powers = (await tx.execute(select(values_table.c.value).distinct())).scalars().all()
    assert powers == [pytest.approx(0.75)]  # 3000 W over a quarter hour, applied once


@pytest.mark.parametrize(("period", "count"), [(date(2027, 3, 28), 92), (date(2027, 10, 31), 100)])
async def test_dst_days_have_92_and_100_isps(dso, period, count):
    """ "ISPs per day (PT15M, Europe/Amsterdam): 96 normally, 92 on spring-forward, 100 on
    fall-back.\""""
    assert (await _prognosis(dso, [500] * count, period)).attributes["Result"] == "Accepted"
    assert (await _prognosis(dso, [500] * 96, period, Revision="2")).attributes[
        "Result"
    ] == "Rejected"


async def test_rotation_reseals_our_uftp_key_so_the_new_key_alone_opens_it(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Our signing key is sealed at rest and re-sealed by `flexbridge secrets rotate` with
    the peers' secrets (docs/security.md): after it, the old key may be dropped."""
    import asyncio

    from cryptography.fernet import Fernet

    from adapter.cli import main
    from store.db import open_database
    from store.errors import NotFound
    from store.migrate import upgrade
    from store.secret_box import SecretBox
    from store.tenants import get_tenant

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"

    async def public(keys: list[str]) -> str:
        db = open_database(url, secrets=SecretBox(keys))
        try:
            await upgrade(db)
            async with db.transaction() as tx:
                try:
                    tenant = await get_tenant(tx, "t")
                except NotFound:
                    tenant, _ = await add_tenant(tx, "t")
                return (await identity_of(tx, tenant, "dso.example.com")).key.public
        finally:
            await db.close()

    made = await public([old])
    monkeypatch.setenv("FLEXBRIDGE_SECRET_KEYS", f"{new},{old}")
    assert await asyncio.to_thread(main, ["secrets", "rotate", "--database-url", url]) == 0
    assert await public([new]) == made


async def test_the_uftp_commands_make_a_key_once_a_peer_and_a_congestion_point(tmp_path, capsys):  # type: ignore[no-untyped-def]
    """`flexbridge uftp key` creates once (then prints) our domain and raw base64 public key;
    `peer add --protocol uftp --role AGR --public-key`; `uftp congestion-point add` prints
    the platform key of a FlexibilityArea named by its EA1 address. Bad input is one line
    and exit 2."""
    import asyncio

    from adapter.cli import main
    from hub.peer_state import state_of
    from store.db import open_database
    from store.peers import find_peer
    from store.references import find, parse_address
    from store.tenants import get_tenant

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--database-url", url])
        out, err = capsys.readouterr()
        return code, out, err

    assert (await asyncio.to_thread(run, "tenant", "add", "grid"))[0] == 0
    code, first, _ = await asyncio.to_thread(
        run, "uftp", "key", "--tenant", "grid", "--domain", "dso.example.com"
    )
    assert code == 0 and first.startswith("domain dso.example.com\npublic key ")
    code, again, _ = await asyncio.to_thread(run, "uftp", "key", "--tenant", "grid")
    assert code == 0 and again == first
    agr = SigningKey.generate()
    code, _, err = await asyncio.to_thread(
        run, "peer", "add", "--tenant", "grid", "--protocol", "uftp", "--name", "agr.example.com",
        "--role", "AGR", "--base-url", "http://agr.invalid/m", "--public-key", "not-a-key",
    )  # fmt: skip
    assert code == 2 and "--public-key" in err and len(err.strip().splitlines()) == 1
    code, _, _ = await asyncio.to_thread(
        run, "peer", "add", "--tenant", "grid", "--protocol", "uftp", "--name", "agr.example.com",
        "--role", "AGR", "--base-url", "http://agr.invalid/m", "--public-key", agr.public,
    )  # fmt: skip
    assert code == 0
    code, key, _ = await asyncio.to_thread(
        run, "uftp", "congestion-point", "add", "--tenant", "grid", "--ea", CP,
        "--connection", "ean.871685900012345678", "--agr", "agr.example.com",
    )  # fmt: skip
    assert code == 0
    db = open_database(url)
    try:
        async with db.read() as tx:
            tenant = await get_tenant(tx, "grid")
            point = await find(tx, tenant, parse_address(CP))
            peer = await find_peer(tx, tenant, "uftp", "agr.example.com")
    finally:
        await db.close()
    assert point is not None and str(point.key) == key.strip()
    assert peer is not None
    state = state_of(peer)
    assert (state.role, state.public_keys, state.congestion_points) == ("AGR", [agr.public], [CP])
