"""The shapeshifter-uftp AGR harness (tests/peers/uftp_agr.py) against the library's own DSO.

shapeshifter-uftp 2.4.0 plays the AGR in one subprocess and, standing in for flexbridge, the
DSO in another (tests/peers/uftp_dso_standin.py), both from .venv-peers. These tests prove the
harness before flexbridge talks to it, and pin the library behaviour that the wave-2
requirements (B.7) rely on, so that a changed peer is noticed.

Skipped when .venv-peers lacks the library (the Makefile installs it from
tests/peers/requirements-uftp.txt); in CI a missing venv fails instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from uftp_peer import (
    AGR_HARNESS,
    DSO_STANDIN,
    UftpPeer,
    inner_test_message,
    new_private_key,
    node,
    requires_uftp_peer,
    signed_message,
    wait_until,
)

pytestmark = requires_uftp_peer

AGR_DOMAIN = "agr.example.com"
DSO_DOMAIN = "dso.example.com"
CONGESTION_POINT = "ea1.1992-01.com.example:gridpoint.4f76ff19-a53b-49f5-84e7"


@dataclass
class Pair:
    agr: UftpPeer
    dso: UftpPeer


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """The AGR harness and the stand-in DSO, each knowing the other's key and message URL."""
    agr = await UftpPeer.start(
        AGR_HARNESS, tmp_path, "--domain", AGR_DOMAIN, "--dso-domain", DSO_DOMAIN
    )
    try:
        dso = await UftpPeer.start(
            DSO_STANDIN,
            tmp_path,
            "--domain",
            DSO_DOMAIN,
            "--agr-domain",
            AGR_DOMAIN,
            "--agr-public-key",
            agr.public_key,
            "--agr-url",
            agr.message_url,
        )
    except BaseException:
        await agr.stop()
        raise
    try:
        await agr.set_peer(public_key=dso.public_key, url=dso.message_url)
        yield Pair(agr, dso)
    finally:
        await dso.stop()
        await agr.stop()


def flex_request() -> tuple[dict, list]:
    period = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    attributes = {
        "ISP-Duration": "PT15M",
        "TimeZone": "Europe/Amsterdam",
        "Period": period,
        "CongestionPoint": CONGESTION_POINT,
        "Revision": "1",
        "ExpirationDateTime": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
    }
    isps = [
        node("ISP", Disposition="Requested", MinPower="-500000", MaxPower="2000000", Start="33"),
        node("ISP", Disposition="Available", MinPower="0", MaxPower="2500000", Start="34"),
    ]
    return attributes, isps


async def test_a_test_message_from_the_agr_reaches_the_dso_and_is_answered(pair: Pair) -> None:
    """B.7.5: the library answers a TestMessage by itself, with a TestMessageResponse that
    carries Result="Accepted" and the same ConversationID."""
    status, outcome = await pair.agr.send("TestMessage")
    assert (status, outcome["error"]) == (200, None), outcome
    sent = outcome["sent"]["attributes"]
    assert (sent["SenderDomain"], sent["RecipientDomain"]) == (AGR_DOMAIN, DSO_DOMAIN)

    async def at_dso() -> list:
        got = await pair.dso.received("TestMessage")
        return [m for m in got if m["attributes"]["MessageID"] == sent["MessageID"]]

    await wait_until(at_dso, "the TestMessage at the stand-in DSO")

    async def answer() -> list:
        got = await pair.agr.received("TestMessageResponse")
        return [m for m in got if m["attributes"]["ConversationID"] == sent["ConversationID"]]

    (response,) = await wait_until(answer, "the library's TestMessageResponse at the AGR")
    assert response["attributes"]["Result"] == "Accepted"
    assert response["attributes"]["SenderDomain"] == DSO_DOMAIN


async def test_a_flex_request_from_the_dso_is_recorded_with_its_attributes(pair: Pair) -> None:
    """B.7.11: the AGR service hands the FlexRequest to process_flex_request and answers
    nothing by itself; the test makes it answer through /_send."""
    attributes, isps = flex_request()
    status, outcome = await pair.dso.send("FlexRequest", attributes, isps)
    assert (status, outcome["error"]) == (200, None), outcome
    sent = outcome["sent"]["attributes"]

    (got,) = await wait_until(
        lambda: pair.agr.received("FlexRequest"), "the FlexRequest in the AGR's /_received"
    )
    for name in ("CongestionPoint", "Period", "ISP-Duration", "Revision", "MessageID"):
        assert got["attributes"][name] == (attributes | sent)[name], name
    assert [c["attributes"] for c in got["children"]] == [
        {
            "Disposition": "Requested",
            "MinPower": "-500000",
            "MaxPower": "2000000",
            "Start": "33",
            "Duration": "1",
        },
        {
            "Disposition": "Available",
            "MinPower": "0",
            "MaxPower": "2500000",
            "Start": "34",
            "Duration": "1",
        },
    ]

    reply = {
        "FlexRequestMessageID": sent["MessageID"],
        "ConversationID": sent["ConversationID"],
        "Result": "Accepted",
    }
    status, outcome = await pair.agr.send("FlexRequestResponse", reply)
    assert (status, outcome["error"]) == (200, None), outcome
    (answer,) = await wait_until(
        lambda: pair.dso.received("FlexRequestResponse"), "the AGR's FlexRequestResponse"
    )
    assert answer["attributes"]["MessageID"] == outcome["sent"]["attributes"]["MessageID"]
    assert answer["attributes"]["FlexRequestMessageID"] == sent["MessageID"]


async def test_the_agr_offers_on_a_flex_request_when_the_test_tells_it(pair: Pair) -> None:
    """B.4: FlexRequest -> FlexOffer share one conversation; the offer built from JSON reaches
    the DSO as the library renders it (Price with 4 decimals, MinActivationFactor 2)."""
    attributes, isps = flex_request()
    _, outcome = await pair.dso.send("FlexRequest", attributes, isps)
    request = outcome["sent"]["attributes"]
    await wait_until(lambda: pair.agr.received("FlexRequest"), "the FlexRequest at the AGR")

    offer = {
        "ConversationID": request["ConversationID"],
        "FlexRequestMessageID": request["MessageID"],
        "ISP-Duration": "PT15M",
        "Period": request["Period"],
        "CongestionPoint": CONGESTION_POINT,
        "ExpirationDateTime": request["ExpirationDateTime"],
        "Currency": "EUR",
    }
    option = node(
        "OfferOption",
        [node("ISP", Power="-100000", Start="33")],
        OptionReference="o1",
        Price="12.5",
        MinActivationFactor="0.5",
    )
    status, outcome = await pair.agr.send("FlexOffer", offer, [option])
    assert (status, outcome["error"]) == (200, None), outcome

    (got,) = await wait_until(lambda: pair.dso.received("FlexOffer"), "the FlexOffer at the DSO")
    assert got["attributes"]["ConversationID"] == request["ConversationID"]
    assert got["attributes"]["FlexRequestMessageID"] == request["MessageID"]
    (rendered,) = got["children"]
    assert rendered["attributes"] == {
        "OptionReference": "o1",
        "Price": "12.5000",
        "MinActivationFactor": "0.50",
    }
    assert rendered["children"][0]["attributes"] == {
        "Power": "-100000",
        "Start": "33",
        "Duration": "1",
    }


async def test_a_message_signed_with_a_wrong_key_is_refused_with_401(pair: Pair) -> None:
    """B.7.8: bad signature -> 401 {"detail":"Unauthorized"}, and the message goes nowhere;
    the same message signed with the DSO's own key is taken (200)."""
    inner, wrong_id = inner_test_message(DSO_DOMAIN, AGR_DOMAIN)
    forged = signed_message(inner, new_private_key(), DSO_DOMAIN, "DSO")
    assert await pair.agr.post_message(forged) == (401, '{"detail":"Unauthorized"}')

    inner, good_id = inner_test_message(DSO_DOMAIN, AGR_DOMAIN)
    status, _ = await pair.agr.post_message(
        signed_message(inner, pair.dso.private_key, DSO_DOMAIN, "DSO")
    )
    assert status == 200

    async def taken() -> list:
        return [m["attributes"]["MessageID"] for m in await pair.agr.received("TestMessage")]

    assert await wait_until(taken, "the well-signed TestMessage") == [good_id]
    requests = await pair.agr.get("requests")
    assert [r["status"] for r in requests] == [401, 200]
    assert wrong_id in requests[0]["inner_xml"]
    assert requests[0]["envelope"] == {"SenderDomain": DSO_DOMAIN, "SenderRole": "DSO"}


async def test_a_sender_whose_key_is_unknown_gets_500(pair: Pair) -> None:
    """B.7.8: when the key lookup returns None the library fails the request with 500 (the
    spec says 419): pinned so that a changed library is noticed."""
    inner, _ = inner_test_message("other.example.com", AGR_DOMAIN)
    body = signed_message(inner, new_private_key(), "other.example.com", "DSO")
    status, _ = await pair.agr.post_message(body)
    assert status == 500
    assert await pair.agr.received() == []


async def test_send_reports_what_the_library_would_not_build(pair: Pair) -> None:
    """A FlexRequest without its required attributes is refused by the library's parser (422,
    the library's text), and nothing is sent."""
    status, outcome = await pair.dso.send("FlexRequest", {"Revision": "1"})
    assert status == 422
    assert outcome["error"]
    assert await pair.dso.get("sent") == []
    assert await pair.agr.get("requests") == []


async def test_the_harness_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM ends the harness with exit status 0."""
    agr = await UftpPeer.start(AGR_HARNESS, tmp_path)
    assert await agr.stop() == 0
