"""`optimize group|storage --input PROBLEM.json`: solve a problem file, print the plan.

The project's main CLI mounts this with add_parser(subparsers) and calls run(args); it also
runs alone: python -m optimizer.cli optimize group --input problem.json

Exit codes: 0 with the plan as JSON on stdout (a fallback plan too: read its status);
2 with one line "error: <field>: <reason>" on stderr when the input is unreadable, not
JSON, beyond the input limits (optimizer/limits.py) or names an invalid field; 141 (128 +
SIGPIPE, as a shell reports `seq 1 100000 | head -1`), silently, when the reader of stdout
went away.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from optimizer.errors import ProblemError
from optimizer.group import solve_group
from optimizer.limits import MAX_INPUT_BYTES
from optimizer.options import Engine
from optimizer.problem_json import (
    group_plan_to_json,
    group_problem_from_json,
    read_json,
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
    """The input text; more than MAX_INPUT_BYTES is refused before it is all read."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with open(path, "rb") as file:
            data = file.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise ProblemError("input", f"larger than {MAX_INPUT_BYTES // 2**20} MiB")
    return data.decode("utf-8")


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
    print(f"error: {' '.join(field.split())}: {' '.join(reason.split())}", file=sys.stderr)
    return 2


# The status of a process stopped by SIGPIPE, as a shell reports it.
_READER_GONE = 128 + signal.SIGPIPE


def _write(text: str) -> int:
    """Print the plan. A reader that went away (`| head -1`) ends the command quietly, as
    it ends a C program (Python ignores SIGPIPE, so the write raises BrokenPipeError)."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout once more at exit: aim it at /dev/null, so that flush has
        # nothing to fail on and prints no "Exception ignored" lines.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return _READER_GONE
    return 0


def run(args: argparse.Namespace) -> int:
    load, solve, dump = _KINDS[args.action]
    try:
        problem = load(read_json(_read(args.input)))
    except (OSError, UnicodeDecodeError) as exc:
        return _fail("input", f"cannot read {args.input}: {exc.__class__.__name__}: {exc}")
    except ProblemError as exc:
        return _fail(exc.field, exc.reason)
    if getattr(args, "engine", None):
        problem = replace(problem, solver=replace(problem.solver, engine=Engine(args.engine)))
    with _solver_output_to_stderr():
        plan = solve(problem)
    # allow_nan=False: stdout carries JSON, and NaN or Infinity is none.
    return _write(json.dumps(dump(plan), indent=2, allow_nan=False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer.cli")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
