"""The conformance kit's pure parts: placeholders in vectors, subset matching, diffs."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from conformance import uftp
from conformance.match import subset, unified_diff
from conformance.runner import _schema_problems
from conformance.template import Clock, Scope, TemplateError, render
from protocols.uftp.v3_1.codec import Node, document
from protocols.uftp.v3_1.envelope import Role, write_envelope
from protocols.uftp.v3_1.sealing import SigningKey


def _scope(**variables: object) -> Scope:
    clock = Clock(datetime(2026, 3, 1, 10, 7, 30, tzinfo=UTC))
    credentials = {"ocmp": {"username": "cpo", "password": "pw"}}
    return Scope(clock, variables, credentials)


def test_times_are_utc_z_and_q0_is_a_quarter_hour_ahead() -> None:
    scope = _scope()
    assert render("{{q0}}", scope) == "2026-03-01T10:30:00Z"
    assert render("from {{q0+1h-15m}} to {{day0+1d}}", scope) == (
        "from 2026-03-01T11:15:00Z to 2026-03-02T00:00:00Z"
    )


def test_a_lone_placeholder_keeps_its_type_and_credentials_are_reachable() -> None:
    scope = _scope(n=3)
    assert render({"count": "{{n}}", "text": "n={{n}}"}, scope) == {"count": 3, "text": "n=3"}
    assert render("{{cred.ocmp.username}}", scope) == "cpo"
    expected = "Basic " + base64.b64encode(b"cpo:pw").decode()
    assert render("{{basic:cred.ocmp.username:cred.ocmp.password}}", scope) == expected
    assert render("{{uuid}}", scope) == render("{{uuid}}", scope) != render("{{uuid:b}}", scope)


@pytest.mark.parametrize("text", ["{{nothing}}", "{{cred.oscp.token}}", "{{basic:a}}"])
def test_a_placeholder_that_names_nothing_is_an_error(text: str) -> None:
    with pytest.raises(TemplateError):
        render(text, _scope())


def test_repeat_lays_out_blocks() -> None:
    body = {
        "blocks": [
            {
                "$repeat": {
                    "count": 3,
                    "start": "{{q0}}",
                    "step": "15m",
                    "item": {"i": "{{i}}", "start": "{{t}}", "end": "{{t_end}}"},
                }
            }
        ]
    }
    blocks = render(body, _scope())["blocks"]
    assert [b["i"] for b in blocks] == [0, 1, 2]
    assert blocks[2] == {"i": 2, "start": "2026-03-01T11:00:00Z", "end": "2026-03-01T11:15:00Z"}


def test_subset_matching() -> None:
    got = {"errors": [{"path": "a", "code": "x"}, {"path": "b"}], "n": 1.0, "ok": True}
    assert subset({"errors": {"$contains": [{"path": "b"}]}, "n": 1}, got) == []
    assert subset({"errors": [{"path": "a"}, {"path": {"$regex": "^b$"}}]}, got) == []
    assert subset({"missing": {"$absent": True}, "ok": {"$type": "boolean"}}, got) == []
    [mismatch] = subset({"ok": 1}, got)  # True is not 1
    assert mismatch.path == "$.ok"
    [mismatch] = subset({"errors": [{"path": "a"}]}, got)
    assert "expected 1 items, got 2" in str(mismatch)
    assert subset({"N": 1}, got, keys="insensitive") == []
    assert subset({"N": 1}, got) != []
    later = {"$time": {"after": "2030-01-01T00:00:00Z"}}
    assert subset({"t": later}, {"t": "2030-01-01T01:00:00+01:00"}) != []  # equal: not after
    assert subset({"t": later}, {"t": "2030-01-01T02:00:00+01:00"}) == []


def test_the_diff_shows_only_what_differs() -> None:
    expected = {"group_id": "g", "blocks": [{"unit": "A", "capacity": {"$type": "number"}}]}
    got = {"group_id": "g", "blocks": [{"unit": "KW", "capacity": 5, "phase": "ALL"}], "x": 1}
    diff = unified_diff(expected, got).splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        '-      "unit": "A",',
        '+      "unit": "KW",',
    ]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2022-08-21T13:36:24.491Z", True),
        ("2018-02-23T13:40:32.3868657Z", True),
        ("2024-01-01T11:22:33.456+08:00", True),
        ("2022-08-21T13:36:24", False),
        ("2022-08-21 13:36:24Z", False),
        ("2022-13-01T00:00:00Z", False),
    ],
)
def test_date_time_format_is_checked(value: str, ok: bool) -> None:
    """jsonschema checks `date-time` only with an optional package: the runner brings its own."""
    problems = _schema_problems({"type": "string", "format": "date-time"}, value)
    assert (problems == []) is ok


# --- UFTP: the AGR's side (conformance/uftp.py) -----------------------------------------


def test_a_repeat_numbers_its_items_from_one_as_uftp_isps_count() -> None:
    items = render([{"$repeat": {"count": "{{c}}", "item": {"Start": "{{n}}"}}}], _scope(c=3))
    assert items == [{"Start": 1}, {"Start": 2}, {"Start": 3}]


def test_the_uftp_calendar_counts_isps_in_elapsed_time_and_finds_the_dst_days() -> None:
    """ISP n covers local midnight + (n - 1) x 15 min in elapsed time: 92 ISPs on the day
    the clocks go forward, 100 on the day they go back."""
    zone = ZoneInfo("Europe/Amsterdam")
    days = uftp.calendar(zone, datetime(2026, 12, 7, 23, 30, tzinfo=UTC))  # 00:30 on the 8th
    assert days["uftp_day0"] == "2026-12-08" and days["uftp_yesterday"] == "2026-12-07"
    assert days["uftp_start_day1"] == "2026-12-08T23:00:00Z"
    assert (days["uftp_spring_day"], days["uftp_isps_spring_day"]) == ("2027-03-28", 92)
    assert (days["uftp_autumn_day"], days["uftp_isps_autumn_day"]) == ("2027-10-31", 100)
    assert days["uftp_isps_day1"] == days["uftp_isps_trade_day"] == 96


def _agr() -> tuple[uftp.Agr, SigningKey]:
    dso = SigningKey.generate()
    agr = uftp.Agr(
        "agr.example.com", SigningKey.generate(), "dso.example.com", dso.public, ZoneInfo("UTC")
    )
    return agr, dso


def test_a_uftp_reply_is_read_only_when_the_dso_key_verifies_it() -> None:
    agr, dso = _agr()
    inner = document(Node("TestMessageResponse", agr.metadata(SenderDomain="dso.example.com")))
    signed = write_envelope("dso.example.com", Role.DSO, dso.seal(inner))
    read = uftp.read_signed(signed, agr.dso_key)
    assert read["verified"] is True and read["type"] == "TestMessageResponse"
    assert read["schema"] == "valid"
    assert read["envelope"] == {"SenderDomain": "dso.example.com", "SenderRole": "DSO"}
    forged = write_envelope("dso.example.com", Role.DSO, SigningKey.generate().seal(inner))
    assert uftp.read_signed(forged, agr.dso_key) == {
        "envelope": {"SenderDomain": "dso.example.com", "SenderRole": "DSO"},
        "verified": False,
        "error": "the DSO's public key does not verify the Body: "
        "no key of the sender verifies the signature",
    }


def test_the_uftp_reader_never_raises_on_broken_bytes() -> None:
    """Seeded fuzz of what reaches the AGR endpoint: truncations, flipped bytes and noise
    of a real signed reply, each read into data (never an exception, so never a 500 that
    would lose the message)."""
    agr, dso = _agr()
    inner = document(Node("D-PrognosisResponse", agr.metadata(Result="Accepted")))
    signed = write_envelope("dso.example.com", Role.DSO, dso.seal(inner))
    rng = random.Random(14)
    cases = [signed[:n] for n in range(0, len(signed), 7)]
    for _ in range(300):
        broken = bytearray(signed)
        for _ in range(rng.randint(1, 4)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        cases.append(bytes(broken))
    cases += [rng.randbytes(rng.randint(0, 400)) for _ in range(100)]
    outcomes = {uftp.read_signed(case, agr.dso_key)["verified"] for case in cases}
    assert outcomes <= {True, False}
