"""`optimize group|storage --input FILE`: the plan as JSON on stdout, or exit code 2 and
one line "error: <field>: <reason>" on stderr. And the JSON <-> dataclass conversion."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optimizer import ProblemError, solve_group, solve_storage
from optimizer.cli import add_parser, run
from optimizer.problem_json import (
    group_plan_to_json,
    group_problem_from_json,
    group_problem_to_json,
    storage_plan_to_json,
    storage_problem_from_json,
    storage_problem_to_json,
)

ROOT = Path(__file__).resolve().parents[1]
GROUP = {
    "start": "2026-01-01T00:00:00Z",
    "resolution": "PT1H",
    "price_eur_per_kwh": [0.30, 0.20],
    "grid_limit_kw": 100,
    "chargers": [{"id": "ev", "max_kw": 10, "energy_kwh": 8}],
}
STORAGE = {
    "start": "2015-06-02T10:00:00+00:00",
    "resolution": "PT15M",
    "price_eur_per_kwh": [0.3, 0.1, 0.2, 0.4],
    "soc_kwh": 12.1,
    "soc_max_kwh": 30,
    "max_charge_kw": 8,
    "targets": [{"datetime": "2015-06-02T11:00:00+00:00", "soc_kwh": 15}],
}


def _cli(tmp_path: Path, kind: str, data: object) -> subprocess.CompletedProcess[str]:
    problem = tmp_path / "problem.json"
    problem.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "optimizer.cli", "optimize", kind, "--input", str(problem)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_group_prints_the_plan_as_json(tmp_path: Path) -> None:
    done = _cli(tmp_path, "group", GROUP)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)  # stdout is the plan only: no solver banner
    assert plan["type"] == "group_plan"
    assert plan["status"] == "optimal" and plan["fallback"] is False
    assert plan["capacity_kw"] == [0.0, 8.0]
    assert plan["chargers"][0] == {"id": "ev", "setpoint_kw": [0.0, 8.0], "unmet_kwh": 0.0}
    assert plan["resolution"] == "PT1H" and plan["start"] == "2026-01-01T00:00:00+00:00"
    assert set(plan["timings"]) == {"build_s", "solve_s", "extract_s"}


def test_storage_prints_a_device_message_schedule(tmp_path: Path) -> None:
    done = _cli(tmp_path, "storage", STORAGE)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["type"] == "storage_plan"
    assert plan["unit"] == "kW" and plan["duration"] == "PT1H"
    # 2.9 kWh by 11:00: the cheapest blocks first, charging positive
    assert plan["values"] == [0.0, 8.0, 3.6, 0.0]
    assert plan["soc_kwh"][-1] == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("group", "{not json", "error: input: not valid JSON: "),
        ("group", "[1, 2]", "error: input: must be a JSON object"),
        (
            "group",
            {**GROUP, "price_eur_per_kwh": []},
            "error: price_eur_per_kwh: must be a non-empty",
        ),
        ("group", {k: v for k, v in GROUP.items() if k != "start"}, "error: start: is required"),
        ("group", {**GROUP, "start": "2026-01-01T00:00:00"}, "error: start: needs a UTC offset"),
        ("group", {**GROUP, "resolution": "P1M"}, "error: resolution: must not use years"),
        ("group", {**GROUP, "grid_limit_kw": "lots"}, "error: grid_limit_kw: must be a number"),
        ("group", {**GROUP, "pv_kw": [1, "2"]}, "error: pv_kw[1]: must be a number"),
        (
            "group",
            {**GROUP, "chargers": [{"id": "ev", "max_kw": -1}]},
            "error: chargers[0].max_kw: must be >= 0, got -1",
        ),
        (
            "group",
            {**GROUP, "chargers": [{"id": "ev", "maxkw": 11}]},
            "error: chargers[0].maxkw: unknown field",
        ),
        (
            "group",
            {**GROUP, "chargers": [{"id": "ev", "max_kw": 11, "deadline": "2026-01-01T01:00:00Z"}]},
            "error: chargers[0].deadline: needs energy_kwh",
        ),
        (
            "group",
            {**GROUP, "batteries": [{"id": "b", "capacity_kwh": 10}]},
            "error: batteries[0].soc_kwh: is required",
        ),
        ("group", {**GROUP, "solver": {"threads": 0}}, "error: solver.threads: must be >= 1"),
        (
            "group",
            {**GROUP, "grid_limit_a": {"amps": 16}},
            "error: grid_limit_kw: give exactly one of grid_limit_kw, grid_limit_a",
        ),
        (
            "group",
            {
                **{k: v for k, v in GROUP.items() if k != "grid_limit_kw"},
                "grid_limit_a": {"amps": [16, 16, 16]},
            },
            "error: grid_limit_a.amps: has 3 values, expected one per block (2)",
        ),
        (
            "storage",
            {**STORAGE, "targets": [{"datetime": "2015-06-02T10:20:00+00:00", "soc_kwh": 1}]},
            "error: targets[0].datetime: must be a block boundary",
        ),
        (
            "storage",
            {**STORAGE, "targets": [{"datetime": "2015-06-02T12:00:00+00:00", "soc_kwh": 1}]},
            "error: targets[0].datetime: must be < 4",
        ),
        ("storage", {**STORAGE, "soc_kwh": None}, "error: soc_kwh: must be a number"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, kind: str, data: object, message: str
) -> None:
    done = _cli(tmp_path, kind, data)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr


def test_an_unreadable_input_file_exits_2(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["optimize", "group", "--input", str(tmp_path / "missing.json")])
    assert run(args) == 2


def test_add_parser_mounts_optimize_on_a_main_cli(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(prog="flexbridge")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve")
    add_parser(commands)
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps(GROUP), encoding="utf-8")
    args = parser.parse_args(["optimize", "group", "--input", str(problem), "--engine", "pyomo"])
    assert (args.command, args.action) == ("optimize", "group")
    assert run(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["engine"] == "pyomo" and plan["capacity_kw"] == [0.0, 8.0]


def test_amps_in_json_become_kw() -> None:
    problem = group_problem_from_json(
        {**{k: v for k, v in GROUP.items() if k != "grid_limit_kw"}, "grid_limit_a": {"amps": 25}}
    )
    np.testing.assert_allclose(problem.grid_limit_kw, [17.25, 17.25])
    one_phase = group_problem_from_json(
        {
            **{k: v for k, v in GROUP.items() if k != "grid_limit_kw"},
            "grid_limit_a": {"amps": [16, 10], "phases": 1, "voltage_v": 230, "power_factor": 0.9},
        }
    )
    np.testing.assert_allclose(one_phase.grid_limit_kw, [3.312, 2.07])


def test_a_deadline_past_the_horizon_asks_only_what_later_hours_cannot_deliver() -> None:
    charger = {"id": "ev", "max_kw": 10, "energy_kwh": 30, "deadline": "2026-01-01T03:00:00Z"}
    problem = group_problem_from_json({**GROUP, "chargers": [charger]})
    (ev,) = problem.chargers
    # two hours in the horizon, one after it at up to 10 kW: 20 kWh needed within
    assert ev.deadline_block == 2 and ev.energy_kwh == pytest.approx(20.0)


def test_a_deadline_inside_a_block_counts_whole_blocks_before_it() -> None:
    charger = {"id": "ev", "max_kw": 10, "energy_kwh": 5, "deadline": "2026-01-01T01:30:00Z"}
    (ev,) = group_problem_from_json({**GROUP, "chargers": [charger]}).chargers
    assert ev.deadline_block == 1


def _full_group() -> dict:
    return {
        **GROUP,
        "resolution": "PT15M",
        "price_eur_per_kwh": [0.3, 0.1, 0.2],
        "grid_limit_kw": [20, 20, 15],
        "non_flexible_kw": [3, 4, 5],
        "pv_kw": 1.5,
        "export_price_eur_per_kwh": [0.05, 0.05, 0.0],
        "chargers": [
            {
                "id": "a",
                "max_kw": 11,
                "min_kw": 4,
                "mode": "on_off",
                "energy_kwh": 3,
                "deadline": "2026-01-01T00:30:00+00:00",
                "connected": [True, True, False],
            },
            {"id": "b", "max_kw": 7.4, "demand_kw": [1, 2, 3]},
        ],
        "batteries": [
            {
                "id": "bat",
                "capacity_kwh": 20,
                "soc_kwh": 5,
                "max_charge_kw": 5,
                "max_discharge_kw": 5,
                "threshold_end": 0.5,
                "cost_charging": 0.01,
            }
        ],
        "prefer_charging_sooner": False,
        "penalties": {"unmet_energy": 50},
        "solver": {"time_limit_s": 5, "engine": "highs"},
    }


def test_problems_survive_a_json_round_trip() -> None:
    problem = group_problem_from_json(_full_group())
    again = group_problem_from_json(json.loads(json.dumps(group_problem_to_json(problem))))
    assert group_problem_to_json(again) == group_problem_to_json(problem)
    assert again.chargers[0].deadline_block == 2 and again.penalties.unmet_energy == 50
    storage = storage_problem_from_json(STORAGE)
    back = storage_problem_from_json(json.loads(json.dumps(storage_problem_to_json(storage))))
    assert storage_problem_to_json(back) == storage_problem_to_json(storage)
    assert back.targets[0].block == 3


def test_plans_convert_to_plain_json() -> None:
    plan = group_plan_to_json(solve_group(group_problem_from_json(_full_group())))
    text = json.dumps(plan, allow_nan=False)  # no NaN or numpy types leak out
    # 3 kWh in two quarter hours at 4..11 kW: on at 4 kW (dear) and 8 kW (cheap)
    assert json.loads(text)["chargers"][0]["on"] == [True, True, False]
    assert plan["chargers"][0]["setpoint_kw"] == [4.0, 8.0, 0.0]
    assert "setpoint_kw" in plan["batteries"][0]
    storage = storage_plan_to_json(solve_storage(storage_problem_from_json(STORAGE)))
    assert json.loads(json.dumps(storage, allow_nan=False))["values"][1] == 8.0


def _examples() -> dict[str, dict]:
    """The JSON examples in docs/optimizer.md, by the name in the comment above each."""
    text = (ROOT / "docs" / "optimizer.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- example: ([a-z-]+) -->\s*```json\n(.*?)```", text, re.S)
    return {name: json.loads(body) for name, body in blocks}


def test_the_documented_examples_load_and_solve_as_documented() -> None:
    examples = _examples()
    assert {"group-problem", "group-plan", "storage-problem", "storage-plan"} <= set(examples)
    plan = group_plan_to_json(solve_group(group_problem_from_json(examples["group-problem"])))
    documented = examples["group-plan"]
    assert set(plan) == set(documented)
    for key in ("capacity_kw", "flexibility_up_kw", "flexibility_down_kw", "net_import_kw"):
        np.testing.assert_allclose(plan[key], documented[key], atol=1e-3)
    assert plan["relaxations"] == documented["relaxations"]
    storage = storage_plan_to_json(
        solve_storage(storage_problem_from_json(examples["storage-problem"]))
    )
    assert set(storage) == set(examples["storage-plan"])
    np.testing.assert_allclose(storage["values"], examples["storage-plan"]["values"], atol=1e-3)


def test_problem_errors_are_value_errors_with_the_field() -> None:
    with pytest.raises(
        ValueError, match=r"^chargers\[0\]\.mode: must be 'continuous' or 'on_off'$"
    ):
        group_problem_from_json({**GROUP, "chargers": [{"id": "e", "max_kw": 1, "mode": "x"}]})
    with pytest.raises(ProblemError) as caught:
        storage_problem_from_json({**STORAGE, "surprise": 1})
    assert caught.value.field == "surprise"
