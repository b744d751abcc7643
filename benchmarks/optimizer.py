"""Optimizer: build, solve and extract times for N EV chargers x 96 blocks, and for a
battery day-ahead schedule, and for choosing UFTP FlexOrders (N offers x 3 options x 96
ISPs), end to end on one core (HiGHS threads=1).

    .venv/bin/python benchmarks/optimizer.py [--quick] [--sizes 1 10 100 1000 10000]
                                             [--pyomo-up-to 1000] [--repeat 3]

The fleet is heterogeneous (seeded): 3.7/7.4/11/22 kW chargers plugged in for 4 to 12
hours at random times, most with an energy need by departure, some with a demand forecast,
some with none; a grid limit that binds in the evening peak; PV at noon. The FlexOrder
cases (seeded) need flex in the evening peak; each option reduces load over a random
block of ISPs with a random price and MinActivationFactor; the `short` case needs
more than the offers hold (the best-cover path: three solves). A last section
repeats the large fleets with every charger plugged in all day (a power variable in every
block: the worst case for the model's size). The fast path is the array build (the
default); the pyomo path builds the same model through pyomo. Times are the best of
--repeat runs (the first run also pays one-off imports); the 10,000-charger fleets run once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import highspy
import numpy as np

# The repository root goes first: this file is named like the `optimizer` package it imports.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe

from optimizer import (
    Charger,
    Engine,
    FlexOrderOffer,
    FlexOrderOption,
    FlexOrderPlan,
    FlexOrderProblem,
    GroupPlan,
    GroupProblem,
    SocTarget,
    SolveOptions,
    StoragePlan,
    StorageProblem,
    solve_flex_orders,
    solve_group,
    solve_storage,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
BLOCKS = 96


def _prices(rng: np.random.Generator) -> np.ndarray:
    hour = np.arange(BLOCKS) / 4
    daily = 0.22 + 0.06 * np.sin((hour - 9) / 24 * 2 * math.pi) + 0.05 * (hour >= 17) * (hour < 21)
    return np.round(daily + rng.normal(0, 0.01, BLOCKS), 4)


def _charger(index: int, rng: np.random.Generator, all_day: bool) -> Charger:
    max_kw = float(rng.choice([3.7, 7.4, 11.0, 22.0], p=[0.2, 0.4, 0.3, 0.1]))
    arrival = int(rng.integers(0, BLOCKS - 16))
    departure = int(min(BLOCKS, arrival + rng.integers(16, 49)))
    if all_day:  # the worst case: every charger plugged in (a column) in every block
        arrival, departure = 0, int(rng.integers(16, BLOCKS + 1))
    connected = np.zeros(BLOCKS, dtype=bool)
    connected[arrival : BLOCKS if all_day else departure] = True
    kind = rng.random()
    name = f"cp-{index}"
    if kind < 0.8:
        hours = (departure - arrival) / 4
        energy = float(np.round(rng.uniform(0.2, 0.9) * max_kw * hours, 2))
        return Charger(
            name, max_kw, energy_kwh=energy, deadline_block=departure, connected=connected
        )
    if kind < 0.9:
        demand = np.where(connected, np.round(rng.uniform(0, max_kw), 2), 0.0)
        return Charger(name, max_kw, demand_kw=demand, connected=connected)
    return Charger(name, max_kw, connected=connected)


def fleet(count: int, engine: Engine, all_day: bool = False, seed: int = 7) -> GroupProblem:
    rng = np.random.default_rng(seed)
    hour = np.arange(BLOCKS) / 4
    base = count * (1.0 + 0.8 * np.exp(-(((hour - 19) / 2.5) ** 2)))
    pv = count * 1.2 * np.clip(np.sin((hour - 6) / 12 * math.pi), 0, None)
    return GroupProblem(
        start=START,
        resolution=STEP,
        price_eur_per_kwh=_prices(rng),
        grid_limit_kw=count * 4.0 + 11.0,
        non_flexible_kw=base,
        pv_kw=pv,
        chargers=tuple(_charger(i, rng, all_day) for i in range(count)),
        solver=SolveOptions(threads=1, engine=engine, time_limit_s=600),
    )


def battery(engine: Engine) -> StorageProblem:
    rng = np.random.default_rng(3)
    return StorageProblem(
        start=START,
        resolution=STEP,
        price_eur_per_kwh=_prices(rng),
        soc_kwh=20.0,
        soc_min_kwh=5.0,
        soc_max_kwh=95.0,
        max_charge_kw=25.0,
        max_discharge_kw=25.0,
        roundtrip_efficiency=0.9,
        targets=(SocTarget(BLOCKS // 2 - 1, 60.0), SocTarget(BLOCKS - 1, 50.0)),
        solver=SolveOptions(threads=1, engine=engine),
    )


def _flex_option(reference: str, rng: np.random.Generator) -> FlexOrderOption:
    first = int(rng.integers(60, 88))
    last = int(min(BLOCKS, first + rng.integers(2, 17)))
    flex = np.zeros(BLOCKS)
    flex[first:last] = np.round(rng.uniform(5_000, 60_000))
    price = Decimal(str(round(float(flex.sum()) / 4_000 * rng.uniform(0.05, 0.4), 4)))
    least = Decimal(str(rng.choice(["1.00", "0.50", "0.20", "0.01"])))
    return FlexOrderOption(reference, price, flex, least)


def flex_offers(count: int, beyond_reach: bool = False, seed: int = 11) -> FlexOrderProblem:
    """`count` offers of 3 options; the need peaks at 19:00 and is a quarter of what the
    offers hold at most there (or twice that, beyond reach)."""
    rng = np.random.default_rng(seed)
    offers = tuple(
        FlexOrderOffer(f"offer-{o}", tuple(_flex_option(f"{o}-{j}", rng) for j in range(3)))
        for o in range(count)
    )
    most = sum(np.max([op.flex_w for op in offer.options], axis=0) for offer in offers)
    hour = np.arange(BLOCKS) / 4
    peak = np.exp(-(((hour - 19) / 1.5) ** 2)) * (hour >= 16) * (hour < 22)
    need = np.round(peak * most * (2.0 if beyond_reach else 0.25))
    return FlexOrderProblem(need, offers, SolveOptions(threads=1, time_limit_s=600))


def _flex_row(label: str, plan: FlexOrderPlan) -> None:
    t = plan.timings
    short = f"shortfall {plan.shortfall_w.sum():,.0f} W" if not plan.covers else "-"
    print(
        f"{label:<28} {t.build_s:>9.3f} {t.solve_s:>9.3f} {t.extract_s:>9.3f} "
        f"{t.total_s:>9.3f}  {plan.status!s:<9} {float(plan.total_cost):>14.4f}  "
        f"{len(plan.orders)} orders, {short}",
        flush=True,
    )


def _best(plans: list[GroupPlan] | list[StoragePlan]) -> GroupPlan | StoragePlan:
    return min(plans, key=lambda p: p.timings.total_s)


def _row(label: str, plan: GroupPlan | StoragePlan) -> None:
    t = plan.timings
    relaxed = ",".join(plan.relaxation_kinds) or "-"
    print(
        f"{label:<28} {t.build_s:>9.3f} {t.solve_s:>9.3f} {t.extract_s:>9.3f} "
        f"{t.total_s:>9.3f}  {plan.status!s:<9} {plan.objective:>14.4f}  {relaxed}",
        flush=True,
    )


def _quiet_banner() -> None:
    """HiGHS prints a banner on C-level stdout with its first instance; not in the table."""
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (1, 10, 100)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    parser.add_argument("--pyomo-up-to", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [1, 10, 100] if args.quick else args.sizes
    repeat = 1 if args.quick else args.repeat
    _quiet_banner()
    print(describe())
    print(
        f"end to end on one core (HiGHS threads=1); seconds, best of {repeat} "
        "(10,000 chargers and the worst case: one run)"
    )
    print(
        f"{'case':<28} {'build':>9} {'solve':>9} {'extract':>9} {'total':>9}  "
        f"{'status':<9} {'objective':>14}  relaxations"
    )
    for engine in (Engine.HIGHS, Engine.PYOMO):
        for count in sizes:
            if engine is Engine.PYOMO and count > args.pyomo_up_to:
                continue
            problem = fleet(count, engine)
            runs = 1 if count >= 10000 and engine is Engine.HIGHS and not args.quick else repeat
            plan = _best([solve_group(problem) for _ in range(runs)])
            _row(f"{engine} {count:>6} chargers x {BLOCKS}", plan)
        plan = _best([solve_storage(battery(engine)) for _ in range(repeat)])
        _row(f"{engine} battery day-ahead", plan)
    print("UFTP FlexOrders: objective = total price of the orders; 3 options per offer")
    for count, beyond in ((20, False), (200, False), (200, True)):
        problem = flex_offers(count, beyond)
        flex = min(
            (solve_flex_orders(problem) for _ in range(repeat)), key=lambda p: p.timings.total_s
        )
        reach = " short" if beyond else ""
        _flex_row(f"highs {count:>4} offers x {BLOCKS}{reach}", flex)
    if args.quick:
        return
    print("worst case: every charger plugged in for the whole day (96 columns each)")
    for count in [c for c in sizes if c >= 1000]:
        _row(f"highs {count:>6} plugged all day", solve_group(fleet(count, Engine.HIGHS, True)))


if __name__ == "__main__":
    main()
