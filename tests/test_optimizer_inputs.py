"""Hostile problem JSON: every input gets a plan or one line naming the field and exit 2,
never a traceback, and no input makes the work grow past the limits (docs/optimizer.md,
Input limits). Through the pure functions and through the real `flexbridge` process."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optimizer import ProblemError, solve_group, solve_storage
from optimizer.limits import (
    MAX_ASSETS,
    MAX_BLOCKS,
    MAX_CELLS,
    MAX_DIGITS,
    MAX_INPUT_BYTES,
    MAX_THREADS,
)
from optimizer.problem_json import (
    group_plan_to_json,
    group_problem_from_json,
    read_json,
    storage_plan_to_json,
    storage_problem_from_json,
)

FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))
GROUP: dict[str, Any] = {
    "start": "2026-01-01T00:00:00Z",
    "resolution": "PT1H",
    "price_eur_per_kwh": [0.30, 0.20, 0.10],
    "grid_limit_kw": 100,
    "non_flexible_kw": [1, 2, 3],
    "pv_kw": 1,
    "export_price_eur_per_kwh": 0.05,
    "chargers": [
        {"id": "ev", "max_kw": 10, "energy_kwh": 8, "deadline": "2026-01-01T02:00:00Z"},
        {
            "id": "ev2",
            "max_kw": 7,
            "min_kw": 2,
            "mode": "on_off",
            "demand_kw": [1, 0, 2],
            "connected": [True, False, True],
        },
    ],
    "batteries": [
        {
            "id": "b",
            "capacity_kwh": 10,
            "soc_kwh": 5,
            "max_charge_kw": 3,
            "max_discharge_kw": 3,
            "threshold_end": 0.5,
        }
    ],
    "penalties": {"unmet_energy": 100, "soc_target": 1e3, "soc_bounds": 1e4, "grid_limit": 1e5},
    "solver": {"time_limit_s": 5, "mip_rel_gap": 1e-4, "threads": 1, "engine": "highs"},
    "prefer_charging_sooner": True,
}
STORAGE: dict[str, Any] = {
    "start": "2015-06-02T10:00:00+00:00",
    "resolution": "PT15M",
    "price_eur_per_kwh": [0.3, 0.1, 0.2, 0.4],
    "soc_kwh": 12.1,
    "soc_min_kwh": 1,
    "soc_max_kwh": 30,
    "max_charge_kw": 8,
    "max_discharge_kw": 3,
    "roundtrip_efficiency": 0.9,
    "production_price_eur_per_kwh": 0.1,
    "targets": [{"datetime": "2015-06-02T11:00:00+00:00", "soc_kwh": 15}],
}
KINDS = {
    "group": (GROUP, group_problem_from_json, solve_group, group_plan_to_json),
    "storage": (STORAGE, storage_problem_from_json, solve_storage, storage_plan_to_json),
}
DIGITS_401 = int("9" * 401)
DEEP = "[" * 200_000 + "]" * 200_000


def _strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in the output")

    return json.loads(text, parse_constant=refuse)


def _flexbridge(kind: str, text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    problem = tmp_path / "problem.json"
    problem.write_text(text, encoding="utf-8", errors="surrogatepass")
    return subprocess.run(
        [FLEXBRIDGE, "optimize", kind, "--input", str(problem)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    return lines[0]


def _with(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


# The inputs issue 12 found giving a traceback, and the field each must name.
REPORTED = [
    ("group", json.dumps(_with(GROUP, ("price_eur_per_kwh", 0), DIGITS_401)),
     "error: price_eur_per_kwh[0]: is too large"),
    ("group", json.dumps(_with(GROUP, ("grid_limit_kw",), DIGITS_401)),
     "error: grid_limit_kw: is too large"),
    ("group", json.dumps(_with(GROUP, ("chargers", 0, "max_kw"), DIGITS_401)),
     "error: chargers[0].max_kw: is too large"),
    ("storage", json.dumps(_with(STORAGE, ("soc_max_kwh",), DIGITS_401)),
     "error: soc_max_kwh: is too large"),
    ("group", DEEP, "error: input: not valid JSON here: nested too deeply"),
    ("group", json.dumps(_with(GROUP, ("resolution",), "P1000000000000D")),
     "error: resolution: 'P1000000000000D' is too long"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "text", "line"), REPORTED)
def test_the_reported_inputs_are_one_line_naming_the_field_and_exit_2(
    kind: str, text: str, line: str, tmp_path: Path
) -> None:
    assert _one_line_exit_2(_flexbridge(kind, text, tmp_path)).startswith(line)


@pytest.mark.parametrize(("kind", "text", "line"), REPORTED)
def test_the_reported_inputs_are_problem_errors_naming_the_field(
    kind: str, text: str, line: str
) -> None:
    load = KINDS[kind][1]
    with pytest.raises(ProblemError) as raised:
        load(read_json(text))
    assert f"error: {raised.value.field}: {raised.value.reason}".startswith(line)


def test_a_deadline_past_the_horizon_with_a_huge_max_kw_names_max_kw() -> None:
    charger = {"id": "ev", "max_kw": DIGITS_401, "energy_kwh": 8, "deadline": "2027-01-01T00:00Z"}
    with pytest.raises(ProblemError) as raised:
        group_problem_from_json({**GROUP, "chargers": [charger]})
    assert raised.value.field == "chargers[0].max_kw"


def test_a_charger_without_its_id_or_max_kw_names_the_missing_field() -> None:
    for key in ("id", "max_kw"):
        charger = {k: v for k, v in GROUP["chargers"][0].items() if k != key}
        with pytest.raises(ProblemError) as raised:
            group_problem_from_json({**GROUP, "chargers": [charger]})
        assert (raised.value.field, raised.value.reason) == (f"chargers[0].{key}", "is required")


def test_an_integer_longer_than_python_reads_is_an_input_error() -> None:
    """Python's int() refuses more than 4,300 digits with a ValueError of its own."""
    with pytest.raises(ProblemError) as raised:
        read_json('{"price_eur_per_kwh": [' + "9" * 5000 + "]}")
    assert raised.value.field == "input" and str(MAX_DIGITS) in raised.value.reason


def test_a_numeric_string_is_no_number() -> None:
    with pytest.raises(ProblemError) as raised:
        group_problem_from_json({**GROUP, "grid_limit_kw": "100"})
    assert (raised.value.field, raised.value.reason) == (
        "grid_limit_kw",
        "must be a number or an array of numbers",
    )


def test_an_unknown_field_with_a_newline_in_its_name_stays_on_one_line(tmp_path: Path) -> None:
    line = _one_line_exit_2(_flexbridge("group", json.dumps({**GROUP, "a\nb": 1}), tmp_path))
    assert line == "error: 'a\\nb': unknown field"


# ---- the limits -------------------------------------------------------------------------


def test_a_horizon_beyond_the_block_limit_is_refused_before_any_work() -> None:
    prices = [0.1] * (MAX_BLOCKS + 1)
    with pytest.raises(ProblemError, match="at most 10,000") as raised:
        group_problem_from_json({**GROUP, "price_eur_per_kwh": prices, "non_flexible_kw": 0})
    assert raised.value.field == "price_eur_per_kwh"


def test_more_assets_than_allowed_are_refused_before_they_are_built() -> None:
    chargers = [{"id": "ev"}] * (MAX_ASSETS + 1)  # built one by one, each would fail
    with pytest.raises(ProblemError) as raised:
        group_problem_from_json({**GROUP, "chargers": chargers})
    assert raised.value.field == "chargers" and "at most 20,000" in raised.value.reason


def test_blocks_times_assets_beyond_the_cell_limit_is_refused() -> None:
    blocks = 1_000
    chargers = [{"id": f"ev{i}", "max_kw": 11} for i in range(MAX_CELLS // blocks + 1)]
    data = {
        "start": "2026-01-01T00:00:00Z",
        "price_eur_per_kwh": [0.1] * blocks,
        "grid_limit_kw": 1e6,
        "chargers": chargers,
    }
    with pytest.raises(ProblemError, match="per-block values, at most 2,000,000") as raised:
        group_problem_from_json(data)
    assert raised.value.field == "assets"


@pytest.mark.parametrize(
    ("resolution", "reason"),
    [("PT0.5S", "must be from 1 second to 1 day"), ("P2D", "must be from 1 second to 1 day")],
)
def test_a_block_length_outside_one_second_to_one_day_is_refused(
    resolution: str, reason: str
) -> None:
    with pytest.raises(ProblemError) as raised:
        storage_problem_from_json({**STORAGE, "resolution": resolution})
    assert (raised.value.field, raised.value.reason) == ("resolution", reason)


def test_a_horizon_past_the_year_9999_is_refused() -> None:
    late = {**STORAGE, "start": "9999-12-31T23:30:00+00:00", "targets": []}
    with pytest.raises(ProblemError, match="before the year 10000") as raised:
        storage_problem_from_json(late)
    assert raised.value.field == "start"


def test_more_threads_than_the_limit_are_refused() -> None:
    with pytest.raises(ProblemError) as raised:
        group_problem_from_json({**GROUP, "solver": {"threads": MAX_THREADS + 1}})
    assert raised.value.field == "solver.threads"


def test_an_input_larger_than_the_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as file:
        file.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk, no time
    done = subprocess.run(
        [FLEXBRIDGE, "optimize", "group", "--input", str(big)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert _one_line_exit_2(done) == "error: input: larger than 64 MiB"


# ---- the reader of stdout going away ---------------------------------------------------


def test_a_reader_that_goes_away_ends_optimize_quietly(tmp_path: Path) -> None:
    """`flexbridge optimize ... | head -1`: as `seq 1 100000 | head -1` ends seq, with the
    status of SIGPIPE (141) and nothing on stderr about the pipe."""
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(GROUP), encoding="utf-8")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the plan is written: the write must fail
    try:
        done = subprocess.run(
            [FLEXBRIDGE, "optimize", "group", "--input", str(problem)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_the_plan_still_reaches_a_reader_that_stays(tmp_path: Path) -> None:
    done = _flexbridge("group", json.dumps(GROUP), tmp_path)
    assert done.returncode == 0 and _strict_json(done.stdout)["status"] == "optimal"


# ---- seeded fuzzing ----------------------------------------------------------------------

HOSTILE: list[Any] = [
    DIGITS_401,
    -DIGITS_401,
    2**63,
    1e308,
    -1e308,
    1e-320,
    float("nan"),
    float("inf"),
    -0.0,
    0,
    -1,
    "1.5",
    "",
    "x\ny",
    "\ud800",
    True,
    None,
    {},
    [],
    [[1]],
    [1, 2, 3, 4, 5],
    [0.1] * (MAX_BLOCKS + 1),
    "P1000000000000D",
    "PT0.5S",
    "9999-12-31T23:00:00+00:00",
    "0001-01-01T00:00:00+14:00",
]
TEXTS = [
    DEEP,
    "{" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"price_eur_per_kwh": [' + "9" * 5000 + "]}",
    '{"start": NaN}',
    "[1e999]",
    "",
    "null",
    '{"start": "2026-01-01T00:00:00Z", "price_eur_per_kwh": [0.1',
    '\ufeff{"start": 1}',
]


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(data, dict | list):
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for key, value in items:
            yield from _paths(value, (*prefix, key))


def _mutated(base: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The base with one to three places replaced by a hostile value, a key removed or an
    unknown key added."""
    data = copy.deepcopy(base)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        path = rng.choice(list(_paths(data)))
        node = data
        for key in path[:-1]:
            node = node[key]
        roll = rng.random()
        if roll < 0.8 or not isinstance(node, dict):
            node[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
        elif roll < 0.9:
            node[f"x\n{rng.random()}"] = 1
        else:
            del node[path[-1]]
    return data


def _documents(seed: int, count: int) -> Iterator[tuple[str, str]]:
    rng = random.Random(seed)
    for text in TEXTS:
        yield rng.choice(sorted(KINDS)), text
    for _ in range(count):
        kind = rng.choice(sorted(KINDS))
        yield kind, json.dumps(_mutated(KINDS[kind][0], rng))


def test_hostile_json_gives_a_plan_or_one_problem_error_never_anything_else() -> None:
    outcomes: dict[str, int] = {}
    for kind, text in _documents(seed=12, count=400):
        _, load, solve, dump = KINDS[kind]
        try:
            problem = load(read_json(text))
        except ProblemError as exc:
            message = f"error: {exc.field}: {exc.reason}"
            assert "\n" not in " ".join(exc.field.split()) + exc.reason.replace("\n", "")
            assert len(message) < 300, message
            outcomes["refused"] = outcomes.get("refused", 0) + 1
            continue
        plan = dump(solve(problem))
        _strict_json(json.dumps(plan, allow_nan=False))
        outcomes[plan["status"]] = outcomes.get(plan["status"], 0) + 1
    # The generator reaches both ends: refusals, and solved plans.
    assert outcomes["refused"] > 100 and outcomes["optimal"] > 30, outcomes


def test_hostile_json_through_flexbridge_exits_0_with_json_or_2_with_one_line(
    tmp_path: Path,
) -> None:
    for kind, text in _documents(seed=7, count=14):
        done = _flexbridge(kind, text, tmp_path)
        assert "Traceback" not in done.stderr, (text[:300], done.stderr[-3000:])
        if done.returncode == 0:
            assert _strict_json(done.stdout)["type"] == f"{kind}_plan"
        else:
            _one_line_exit_2(done)
