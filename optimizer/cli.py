"""`optimize group|storage --input PROBLEM.json`: solve a problem file, print the plan.

The project's main CLI mounts this with add_parser(subparsers) and calls run(args); it also
runs alone: python -m optimizer.cli optimize group --input problem.json

Exit codes: 0 with the plan as JSON on stdout (a fallback plan too: read its status);
2 with one line "error: <field>: <reason>" on stderr when the input is unreadable, not
JSON, or names an invalid field.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from optimizer.errors import ProblemError
from optimizer.group import solve_group
from optimizer.options import Engine
from optimizer.problem_json import (
    group_plan_to_json,
    group_problem_from_json,
    storage_plan_to_json,
    storage_problem_from_json,
)
from optimizer.storage import solve_storage

# kind -> (read JSON into a problem, solve it, write the plan as JSON)
_Kind = tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], dict[str, Any]]]
_KINDS: dict[str, _Kind] = {
    "group": (group_problem_from_json, solve_group, group_plan_to_json),
    "storage": (storage_problem_from_json, solve_storage, storage_plan_to_json),
}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add `optimize` with its `group` and `storage` commands to an argparse subparsers."""
    optimize = subparsers.add_parser("optimize", help="solve an optimizer problem file")
    kinds = optimize.add_subparsers(dest="action", required=True, metavar="KIND")
    helps = {
        "group": "capacity, setpoints and flexibility for one connection",
        "storage": "a storage device's consumption schedule (USEF device message)",
    }
    for kind, text in helps.items():
        command = kinds.add_parser(kind, help=text)
        command.add_argument("--input", required=True, help="problem JSON file ('-': stdin)")
        command.add_argument(
            "--engine",
            choices=[engine.value for engine in Engine],
            help="override the problem's solver.engine",
        )
    return optimize


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as file:
        return file.read()


@contextlib.contextmanager
def _solver_output_to_stderr() -> Iterator[None]:
    """HiGHS prints a banner on C-level stdout; stdout must carry the plan JSON only."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _fail(field: str, reason: str) -> int:
    print(f"error: {field}: {' '.join(reason.split())}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    load, solve, dump = _KINDS[args.action]
    try:
        text = _read(args.input)
    except (OSError, UnicodeDecodeError) as exc:
        return _fail("input", f"cannot read {args.input}: {exc.__class__.__name__}: {exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return _fail("input", f"not valid JSON: {exc}")
    try:
        problem = load(data)
    except ProblemError as exc:
        return _fail(exc.field, exc.reason)
    if getattr(args, "engine", None):
        problem = replace(problem, solver=replace(problem.solver, engine=Engine(args.engine)))
    with _solver_output_to_stderr():
        plan = solve(problem)
    print(json.dumps(dump(plan), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer.cli")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
