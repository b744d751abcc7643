"""One formulation, two builds: the pyomo model (the readable reference) and the numpy
array build passed straight to HiGHS (the fast default) reach the same optimum."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import (
    Battery,
    Charger,
    Engine,
    GroupProblem,
    PlanStatus,
    SocTarget,
    SolveOptions,
    StorageProblem,
    solve_group,
    solve_storage,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)
# A MIP gap of 0: both engines must prove the same optimum, not two near-optimal ones.
EXACT = SolveOptions(mip_rel_gap=0.0)


def _random_group(seed: int) -> GroupProblem:
    rng = np.random.default_rng(seed)
    blocks = int(rng.integers(4, 25))
    chargers = []
    for i in range(int(rng.integers(0, 7))):
        max_kw = float(rng.choice([3.7, 7.4, 11.0, 22.0]))
        on_off = rng.random() < 0.3
        min_kw = float(rng.choice([0.0, 0.3 * max_kw, max_kw])) if on_off else 0.0
        connected = rng.random(blocks) < 0.8
        kind = rng.random()
        need: dict = {}
        if kind < 0.6:
            need = {
                "energy_kwh": float(rng.uniform(0, 30)),
                "deadline_block": int(rng.integers(1, blocks + 1)),
            }
        elif kind < 0.8:
            need = {"demand_kw": np.where(connected, rng.uniform(0, max_kw, blocks), 0.0)}
        mode = "on_off" if on_off else "continuous"
        chargers.append(Charger(f"ev{i}", max_kw, min_kw, mode, connected=connected, **need))
    batteries = []
    for b in range(int(rng.integers(0, 3))):
        capacity = float(rng.uniform(5, 50))
        batteries.append(
            Battery(
                f"bat{b}",
                capacity,
                float(rng.uniform(0, 1)) * capacity,  # sometimes below its threshold
                float(rng.uniform(1, 10)),
                float(rng.uniform(0, 10)),
                float(rng.uniform(0.8, 1.0)),
                float(rng.uniform(0.8, 1.0)),
                threshold_min=0.2,
                threshold_max=0.9,
                threshold_end=float(rng.choice([0.5, 0.9])) if rng.random() < 0.7 else None,
                cost_charging=0.01,
            )
        )
    return GroupProblem(
        START,
        QUARTER,
        rng.uniform(-0.05, 0.4, blocks),
        rng.uniform(5, 40, blocks),
        non_flexible_kw=rng.uniform(0, 30, blocks),
        pv_kw=rng.uniform(0, 15, blocks),
        export_price_eur_per_kwh=rng.uniform(0, 0.1, blocks) if rng.random() < 0.5 else None,
        chargers=tuple(chargers),
        batteries=tuple(batteries),
        solver=EXACT,
    )


def _hand_groups() -> list[GroupProblem]:
    def group(prices, limit=100.0, **kwargs):  # type: ignore[no-untyped-def]
        return GroupProblem(START, HOUR, np.asarray(prices, float), limit, solver=EXACT, **kwargs)

    return [
        group([0.3, 0.2], chargers=(Charger("ev", 10.0, energy_kwh=8.0),)),
        group(
            [0.3, 0.2],
            10.0,
            non_flexible_kw=[2, 4],
            chargers=(Charger("ev", 11.0, energy_kwh=12.0),),
        ),
        group([1, 2, 3, 4], chargers=(Charger("sw", 10.0, 10.0, "on_off", energy_kwh=15.0),)),
        group([0.2, 0.2], chargers=(Charger("ev", 5.0, energy_kwh=30.0),)),
        group([0.2, 0.2], batteries=(Battery("b", 100.0, 10.0, 5.0, 5.0, threshold_end=0.5),)),
        group([0.25] * 4, chargers=(Charger("ev", 10.0, energy_kwh=15.0),)),
        group([0.2], 10.0, non_flexible_kw=12.0),
        group(
            [0.1, 0.5],
            export_price_eur_per_kwh=[0.0, 0.4],
            batteries=(Battery("b", 10.0, 0.0, 10.0, 10.0, 1.0, 1.0),),
        ),
        group([0.2, 0.2, 0.2], chargers=(Charger("ev", 11.0, demand_kw=[4.0, 6.0, 12.0]),)),
    ]


def _both(problem: GroupProblem):  # type: ignore[no-untyped-def]
    fast = solve_group(replace(problem, solver=replace(problem.solver, engine=Engine.HIGHS)))
    reference = solve_group(replace(problem, solver=replace(problem.solver, engine=Engine.PYOMO)))
    return fast, reference


def _same_optimum(fast, reference) -> None:  # type: ignore[no-untyped-def]
    assert fast.status is PlanStatus.OPTIMAL and reference.status is PlanStatus.OPTIMAL
    assert (fast.engine, reference.engine) == ("highs", "pyomo")
    assert fast.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
    assert fast.relaxation_kinds == reference.relaxation_kinds
    for a, b in zip(fast.relaxations, reference.relaxations, strict=True):
        assert a.amount_kwh == pytest.approx(b.amount_kwh, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("case", range(len(_hand_groups())))
def test_hand_cases_give_the_same_plan_on_both_engines(case: int) -> None:
    fast, reference = _both(_hand_groups()[case])
    _same_optimum(fast, reference)
    # one asset per case, so its setpoints are unique
    np.testing.assert_allclose(fast.capacity_kw, reference.capacity_kw, atol=1e-6)
    for a, b in zip(fast.chargers, reference.chargers, strict=True):
        np.testing.assert_allclose(a.setpoint_kw, b.setpoint_kw, atol=1e-6)
    for a, b in zip(fast.batteries, reference.batteries, strict=True):
        np.testing.assert_allclose(a.soc_kwh, b.soc_kwh, atol=1e-6)
    np.testing.assert_allclose(fast.flexibility_down_kw, reference.flexibility_down_kw, atol=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_random_groups_reach_the_same_optimum_on_both_engines(seed: int) -> None:
    fast, reference = _both(_random_group(seed))
    _same_optimum(fast, reference)
    # Split between chargers may differ where it is not unique; the cost may not.
    assert fast.cost_eur == pytest.approx(reference.cost_eur, rel=1e-4, abs=1e-4)


def test_merging_identical_chargers_keeps_the_optimum_of_the_unmerged_reference() -> None:
    chargers = tuple(
        Charger(f"ev{i}", 11.0, energy_kwh=10.0 + 5 * (i % 2), deadline_block=6) for i in range(8)
    )
    problem = GroupProblem(
        START, HOUR, np.array([0.3, 0.1, 0.2, 0.05, 0.4, 0.1, 0.3]), 40.0, chargers=chargers
    )
    fast, reference = _both(problem)  # aggregate=True only acts on the array build
    _same_optimum(fast, reference)
    np.testing.assert_allclose(fast.capacity_kw, reference.capacity_kw, atol=1e-6)


def _storage_cases() -> list[StorageProblem]:
    rng = np.random.default_rng(11)
    cases = [
        StorageProblem(
            START,
            QUARTER,
            rng.uniform(-0.05, 0.4, 96),
            soc_max_kwh=95.0,
            soc_min_kwh=5.0,
            soc_kwh=20.0,
            max_charge_kw=25.0,
            max_discharge_kw=25.0,
            roundtrip_efficiency=0.9,
            targets=(SocTarget(47, 60.0), SocTarget(95, 50.0)),
        ),
        StorageProblem(
            START,
            HOUR,
            np.array([0.2, 0.1, 0.3]),
            soc_max_kwh=10.0,
            soc_kwh=0.5,
            soc_min_kwh=4.0,
            max_charge_kw=2.0,
            targets=(SocTarget(2, 9.0),),
        ),
    ]
    return cases


@pytest.mark.parametrize("case", range(2))
def test_storage_schedules_match_on_both_engines(case: int) -> None:
    problem = _storage_cases()[case]
    fast = solve_storage(problem)
    reference = solve_storage(replace(problem, solver=SolveOptions(engine=Engine.PYOMO)))
    assert fast.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
    assert fast.relaxation_kinds == reference.relaxation_kinds
    np.testing.assert_allclose(fast.soc_kwh, reference.soc_kwh, atol=1e-5)
