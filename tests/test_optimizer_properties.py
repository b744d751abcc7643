"""Invariants of every plan, on random problems (hypothesis): the grid limit holds, the
energy balances, SoC stays within its bounds, needs are met whenever they can be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import (
    Battery,
    Charger,
    ChargerMode,
    GroupPlan,
    GroupProblem,
    PlanStatus,
    SocTarget,
    StorageProblem,
    solve_group,
    solve_storage,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
TOL = 1e-5
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def _per_block(blocks: int, low: float, high: float) -> st.SearchStrategy[list[float]]:
    return st.lists(_floats(low, high), min_size=blocks, max_size=blocks)


@st.composite
def chargers(draw, blocks: int, index: int) -> Charger:  # type: ignore[no-untyped-def]
    max_kw = draw(_floats(0.0, 22.0))
    min_kw = draw(st.sampled_from([0.0, 0.0, draw(_floats(0.0, max_kw))]))
    mode = draw(st.sampled_from(list(ChargerMode)))
    connected = draw(st.none() | st.lists(st.booleans(), min_size=blocks, max_size=blocks))
    need = draw(st.sampled_from(["energy", "demand", "none"]))
    kwargs: dict = {"mode": mode, "connected": connected}
    if need == "energy":
        kwargs["energy_kwh"] = draw(_floats(0.0, 60.0))
        kwargs["deadline_block"] = draw(st.none() | st.integers(0, blocks))
    elif need == "demand":
        demand = np.array(draw(_per_block(blocks, 0.0, 22.0)))
        if connected is not None:
            demand = np.where(connected, demand, 0.0)
        kwargs["demand_kw"] = demand
    return Charger(f"ev{index}", max_kw, min_kw, **kwargs)


@st.composite
def batteries(draw, index: int, blocks: int) -> Battery:  # type: ignore[no-untyped-def]
    capacity = draw(_floats(1.0, 100.0))
    low = draw(_floats(0.0, 0.5))
    high = draw(_floats(low, 1.0))
    end = draw(st.none() | _floats(0.0, high))
    return Battery(
        f"bat{index}",
        capacity,
        draw(_floats(0.0, 1.0)) * capacity,
        draw(_floats(0.0, 20.0)),
        draw(_floats(0.0, 20.0)),
        draw(_floats(0.5, 1.0)),
        draw(_floats(0.5, 1.0)),
        threshold_min=low,
        threshold_max=high,
        threshold_end=end,
        cost_charging=draw(_floats(0.0, 0.05)),
        cost_discharging=draw(_floats(0.0, 0.05)),
    )


@st.composite
def group_problems(draw, roomy: bool = False) -> GroupProblem:  # type: ignore[no-untyped-def]
    blocks = draw(st.integers(2, 8))
    resolution = draw(st.sampled_from([timedelta(minutes=15), timedelta(hours=1)]))
    count = draw(st.integers(0, 4))
    return GroupProblem(
        START,
        resolution,
        np.array(draw(_per_block(blocks, -0.2, 0.6))),
        1e4 if roomy else np.array(draw(_per_block(blocks, 0.0, 60.0))),
        non_flexible_kw=0.0 if roomy else np.array(draw(_per_block(blocks, 0.0, 40.0))),
        pv_kw=0.0 if roomy else np.array(draw(_per_block(blocks, 0.0, 20.0))),
        export_price_eur_per_kwh=draw(
            st.none() | st.just(np.array(draw(_per_block(blocks, 0.0, 0.5))))
        ),
        chargers=tuple(draw(chargers(blocks, i)) for i in range(count)),
        batteries=tuple(draw(batteries(i, blocks)) for i in range(draw(st.integers(0, 2)))),
    )


def _minimum_load(problem: GroupProblem) -> np.ndarray:
    """What the chargers draw at the least: a continuous charger's minimum while plugged."""
    least = np.zeros(problem.blocks)
    for c in problem.chargers:
        if c.mode is ChargerMode.CONTINUOUS:
            least += c.min_kw * c.plugged(problem.blocks)
    return least


def _check_chargers(problem: GroupProblem, plan: GroupPlan) -> None:
    for charger, planned in zip(problem.chargers, plan.chargers, strict=True):
        kw, plugged = planned.setpoint_kw, charger.plugged(problem.blocks)
        assert (kw >= 0).all() and (kw <= charger.max_kw + TOL).all()
        assert not kw[~plugged].any()
        if charger.mode is ChargerMode.CONTINUOUS:
            assert (kw[plugged] >= charger.min_kw - TOL).all()
            assert planned.on is None
        else:
            assert planned.on is not None
            np.testing.assert_array_equal(planned.on, kw > 0)
            assert (kw[kw > 0] >= charger.min_kw - TOL).all()
        if charger.energy_kwh is not None:
            delivered = problem.hours * kw[: charger.deadline(problem.blocks)].sum()
            short = max(0.0, charger.energy_kwh - delivered)
            assert abs(planned.unmet_kwh - short) < 1e-4


def _check_batteries(problem: GroupProblem, plan: GroupPlan) -> None:
    for battery, planned in zip(problem.batteries, plan.batteries, strict=True):
        charge, discharge, soc = planned.charge_kw, planned.discharge_kw, planned.soc_kwh
        assert (charge >= 0).all() and (charge <= battery.max_charge_kw + TOL).all()
        assert (discharge >= 0).all() and (discharge <= battery.max_discharge_kw + TOL).all()
        before = np.concatenate([[battery.soc_kwh], soc[:-1]])
        step = problem.hours * (
            battery.charge_efficiency * charge - discharge / battery.discharge_efficiency
        )
        np.testing.assert_allclose(soc, before + step, atol=1e-4)
        low = battery.threshold_min * battery.capacity_kwh
        high = battery.threshold_max * battery.capacity_kwh
        if low <= battery.soc_kwh <= high:
            assert (soc >= low - TOL).all() and (soc <= high + TOL).all()
            relaxed = [r.assets for r in plan.relaxations if r.kind == "soc_bounds"]
            assert all(battery.id not in assets for assets in relaxed)


@SETTINGS
@given(group_problems())
def test_every_plan_keeps_the_limit_the_balance_and_the_bounds(problem: GroupProblem) -> None:
    plan = solve_group(problem)
    assert plan.status is PlanStatus.OPTIMAL, plan.message
    flexible = sum((c.setpoint_kw for c in plan.chargers), np.zeros(problem.blocks))
    flexible = flexible + sum((b.setpoint_kw for b in plan.batteries), np.zeros(problem.blocks))
    np.testing.assert_allclose(plan.capacity_kw, flexible, atol=1e-9)
    fixed = problem.non_flexible_kw - problem.pv_kw
    np.testing.assert_allclose(plan.net_import_kw, fixed + plan.capacity_kw, atol=1e-9)
    if (fixed + _minimum_load(problem) <= problem.grid_limit_kw).all():
        assert "grid_limit" not in plan.relaxation_kinds
    if "grid_limit" not in plan.relaxation_kinds:
        assert (plan.net_import_kw <= problem.grid_limit_kw + TOL).all()
    _check_chargers(problem, plan)
    _check_batteries(problem, plan)
    headroom = np.maximum(0.0, problem.grid_limit_kw - plan.net_import_kw)
    np.testing.assert_allclose(plan.flexibility_up_kw, headroom, atol=1e-9)
    assert (plan.flexibility_down_kw >= 0).all()
    kinds = plan.relaxation_kinds
    order = ["unmet_energy", "soc_target", "soc_bounds", "grid_limit"]
    assert list(kinds) == sorted(kinds, key=order.index)


def _deliverable(problem: GroupProblem, charger: Charger) -> float:
    before = charger.plugged(problem.blocks)[: charger.deadline(problem.blocks)]
    return charger.max_kw * problem.hours * before.sum()


@SETTINGS
@given(group_problems(roomy=True))
def test_needs_are_met_whenever_they_can_be(problem: GroupProblem) -> None:
    """With room at the connection, a charger misses only what its own power and plug-in
    time cannot deliver, and a reachable end threshold is reached."""
    plan = solve_group(problem)
    dearest = max(0.0, float(problem.price_eur_per_kwh.max())) + 0.01  # price + slope
    for charger, planned in zip(problem.chargers, plan.chargers, strict=True):
        if charger.energy_kwh is None:
            continue
        short = max(0.0, charger.energy_kwh - _deliverable(problem, charger))
        # A switch delivers min_kw for a whole block or nothing: a remainder worth less in
        # penalty than that block costs may stay unserved (docs: Relaxations).
        step = charger.min_kw * problem.hours if charger.mode is ChargerMode.ON_OFF else 0.0
        allowed = dearest * step / problem.penalties.unmet_energy
        assert short - 1e-4 < planned.unmet_kwh < short + allowed + 1e-4
    for battery, planned in zip(problem.batteries, plan.batteries, strict=True):
        if battery.threshold_end is None:
            continue
        want = max(battery.threshold_end, battery.threshold_min) * battery.capacity_kwh
        can = battery.soc_kwh + battery.charge_efficiency * battery.max_charge_kw * (
            problem.hours * problem.blocks
        )
        if can >= want + TOL and battery.soc_kwh >= battery.threshold_min * battery.capacity_kwh:
            assert planned.soc_kwh[-1] >= want - TOL
            missed = [r.assets for r in plan.relaxations if r.kind == "soc_target"]
            assert all(battery.id not in assets for assets in missed)
    assert "grid_limit" not in plan.relaxation_kinds


@st.composite
def storage_problems(draw) -> StorageProblem:  # type: ignore[no-untyped-def]
    blocks = draw(st.integers(2, 10))
    low = draw(_floats(0.0, 20.0))
    high = draw(_floats(low, 60.0))
    chosen = draw(st.lists(st.integers(0, blocks - 1), unique=True, max_size=3))
    targets = tuple(SocTarget(b, draw(_floats(low, high))) for b in sorted(chosen))
    return StorageProblem(
        START,
        timedelta(minutes=draw(st.sampled_from([15, 60]))),
        np.array(draw(_per_block(blocks, -0.2, 0.6))),
        soc_max_kwh=high,
        soc_min_kwh=low,
        soc_kwh=draw(_floats(0.0, 70.0)),
        max_charge_kw=draw(_floats(0.0, 30.0)),
        max_discharge_kw=draw(_floats(0.0, 30.0)),
        roundtrip_efficiency=draw(_floats(0.5, 1.0)),
        targets=targets,
    )


@SETTINGS
@given(storage_problems())
def test_storage_schedules_respect_power_soc_and_reachable_targets(problem: StorageProblem) -> None:
    plan = solve_storage(problem)
    assert plan.status is PlanStatus.OPTIMAL, plan.message
    kw = plan.consumption_kw
    assert (kw <= problem.max_charge_kw + TOL).all() and (
        kw >= -problem.max_discharge_kw - TOL
    ).all()
    eta = np.sqrt(problem.roundtrip_efficiency)
    # with one direction per block the stock follows the schedule exactly
    before = np.concatenate([[problem.soc_kwh], plan.soc_kwh[:-1]])
    step = problem.hours * np.where(kw >= 0, eta * kw, kw / eta)
    if not plan.relaxations and (problem.price_eur_per_kwh >= 0).all():
        np.testing.assert_allclose(plan.soc_kwh, before + step, atol=1e-4)
    if problem.soc_min_kwh <= problem.soc_kwh <= problem.soc_max_kwh:
        assert (plan.soc_kwh >= problem.soc_min_kwh - TOL).all()
        assert (plan.soc_kwh <= problem.soc_max_kwh + TOL).all()
    if len(problem.targets) == 1 and problem.soc_min_kwh <= problem.soc_kwh <= problem.soc_max_kwh:
        (target,) = problem.targets
        hours = problem.hours * (target.block + 1)
        gap = target.soc_kwh - problem.soc_kwh
        reach = (
            eta * problem.max_charge_kw * hours
            if gap >= 0
            else problem.max_discharge_kw * hours / eta
        )
        if abs(gap) <= reach - TOL:
            assert abs(plan.soc_kwh[target.block] - target.soc_kwh) < 1e-4
            assert plan.relaxations == ()
