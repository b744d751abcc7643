"""The conformance kit's pure parts: placeholders in vectors, subset matching, diffs."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from conformance.match import subset, unified_diff
from conformance.runner import _schema_problems
from conformance.template import Clock, Scope, TemplateError, render


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
