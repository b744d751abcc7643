"""How long `flexbridge` commands take to start, beside what any Python process takes.

    .venv/bin/python benchmarks/cli_startup.py [--runs 21] [--quick]

Each command runs --runs times as a fresh process (the real `flexbridge` entry point of
this venv); the figure is the median wall time from spawn to exit, with the fastest and
slowest run. The floor, measured in the same run the same way: `python -c pass` (the
interpreter alone) and `python -c "import argparse"` (what a CLI cannot do without).
`optimize group` solves a 4-block problem with one charger: its time includes the solve,
and the line beneath gives what the plan reports of it (build + solve + extract).

Target (issue 12): `--help` and `optimize` start in under 0.5 s. The test that keeps them
lazy is tests/test_cli_startup.py (which modules a command imports, never a time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe

PROBLEM = {
    "start": "2026-03-02T16:00:00+00:00",
    "resolution": "PT1H",
    "price_eur_per_kwh": [0.32, 0.38, 0.24, 0.18],
    "grid_limit_kw": 27.6,
    "chargers": [{"id": "cp-1", "max_kw": 11, "energy_kwh": 20}],
}


def _flexbridge() -> str:
    script = Path(sys.executable).with_name("flexbridge")
    if not script.exists():
        sys.exit(f"no {script}: install the project into this venv (pip install -e .)")
    return str(script)


def _time(command: list[str], runs: int) -> tuple[list[float], str]:
    """Wall seconds of each run, and the last run's stdout."""
    seconds, out = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
        out = done.stdout
    return seconds, out


def _line(label: str, seconds: list[float]) -> str:
    return (
        f"{label:<46} {statistics.median(seconds):8.3f} {min(seconds):8.3f} {max(seconds):8.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default 21)")
    parser.add_argument("--quick", action="store_true", help="3 runs each, a smoke run")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    flexbridge = _flexbridge()
    with tempfile.TemporaryDirectory() as folder:
        problem = Path(folder) / "problem.json"
        problem.write_text(json.dumps(PROBLEM), encoding="utf-8")
        floors = {
            "floor: python -c pass": [sys.executable, "-c", "pass"],
            'floor: python -c "import argparse"': [sys.executable, "-c", "import argparse"],
        }
        commands = {
            "flexbridge --help": [flexbridge, "--help"],
            "flexbridge optimize group --input problem.json": [
                flexbridge,
                "optimize",
                "group",
                "--input",
                str(problem),
            ],
            "flexbridge db upgrade --help": [flexbridge, "db", "upgrade", "--help"],
        }
        print(describe())
        print(f"wall seconds from spawn to exit, {runs} runs each")
        print(f"{'command':<46} {'median':>8} {'min':>8} {'max':>8}")
        for label, command in {**floors, **commands}.items():
            seconds, out = _time(command, runs)
            print(_line(label, seconds), flush=True)
            if "optimize" in command:
                timings = json.loads(out)["timings"]
                solving = sum(timings.values())
                print(f"{'  of which the plan reports solving':<46} {solving:8.3f}")


if __name__ == "__main__":
    main()
