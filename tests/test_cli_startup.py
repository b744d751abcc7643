"""`flexbridge` commands import only what they use, so that they start fast. No time is
asserted here (benchmarks/cli_startup.py measures it): the modules a command loads are,
so the laziness cannot silently regress."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapter import cli

FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))
SERVER = {"aiohttp", "sqlalchemy", "alembic", "jsonschema", "xmlschema", "marshmallow"}
SOLVER = {"numpy", "highspy", "pyomo"}
OURS = {"hub", "store", "protocols", "conformance"}
PROBLEM = {
    "start": "2026-01-01T00:00:00Z",
    "resolution": "PT1H",
    "price_eur_per_kwh": [0.30, 0.20],
    "grid_limit_kw": 100,
    "chargers": [{"id": "ev", "max_kw": 10, "energy_kwh": 8}],
}


def _imported(*args: str) -> set[str]:
    """The top-level packages the real entry point imports running `flexbridge ARGS`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", FLEXBRIDGE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "adapter" in names  # the report is read right
    return names


@pytest.mark.parametrize("command", [[], ["db", "upgrade"], ["serve"], ["tenant", "add"]])
def test_help_loads_no_server_no_solver_and_none_of_our_packages(command: list[str]) -> None:
    assert _imported(*command, "--help") & (SERVER | SOLVER | OURS) == set()


def test_optimize_loads_the_optimizer_alone(tmp_path: Path) -> None:
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(PROBLEM), encoding="utf-8")
    names = _imported("optimize", "group", "--input", str(problem))
    assert {"optimizer", "numpy", "highspy"} <= names
    assert names & (SERVER | OURS | {"pyomo"}) == set()


def test_the_command_list_says_what_each_command_says_of_itself() -> None:
    """The listing names the lazily built commands itself; it must not drift from them."""
    from conformance import cli as conformance_cli

    main = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    listing = {action.dest: action.help for action in main._choices_actions}
    built = argparse.ArgumentParser().add_subparsers()
    for build in (cli._optimize_commands, cli._conformance_commands, cli._peer_commands):
        build(built)  # type: ignore[arg-type]
    assert {a.dest: a.help for a in built._choices_actions}.items() <= listing.items()
    assert set(cli._CONFORMANCE) == set(conformance_cli.COMMANDS)


def test_a_lazily_built_command_parses_as_before() -> None:
    args = cli._parser().parse_args(
        ["peer", "add", "--tenant", "t", "--protocol", "oscp", "--name", "n", "--dialect", "x"]
    )
    assert (args.command, args.action, args.protocol, args.unknown_ids) == (
        "peer",
        "add",
        "oscp",
        "strict",
    )
    args = cli._parser().parse_args(["optimize", "storage", "--input", "-"])
    assert (args.command, args.action, args.input) == ("optimize", "storage", "-")
