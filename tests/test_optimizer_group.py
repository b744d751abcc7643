"""The group capacity model on tiny cases whose answers are known by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import (
    Battery,
    Charger,
    Engine,
    GroupProblem,
    Penalties,
    PlanStatus,
    ProblemError,
    RelaxationKind,
    SolveOptions,
    amps_to_kw,
    headroom_kw,
    kw_to_amps,
    solve_group,
)
from optimizer import engines as engine_module
from optimizer.solution import EngineRun

START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def group(prices, limit=100.0, **kwargs) -> GroupProblem:  # type: ignore[no-untyped-def]
    """Hour blocks, so kW and kWh read the same."""
    return GroupProblem(START, HOUR, np.asarray(prices, dtype=float), limit, **kwargs)


def test_all_charging_goes_to_the_cheaper_second_block() -> None:
    plan = solve_group(group([0.30, 0.20], chargers=(Charger("ev", 10.0, energy_kwh=8.0),)))
    assert plan.status is PlanStatus.OPTIMAL
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [0.0, 8.0])
    np.testing.assert_allclose(plan.capacity_kw, [0.0, 8.0])
    assert plan.cost_eur == pytest.approx(1.6)
    # 8 kWh at 0.20, plus the slope: 1/1000 of the 0.10 spread on the last block
    assert plan.objective == pytest.approx(1.6 + 8 * 1e-4)
    assert plan.relaxations == ()


def test_a_binding_limit_splits_the_charging() -> None:
    problem = group(
        [0.30, 0.20],
        limit=10.0,
        non_flexible_kw=[2.0, 4.0],
        chargers=(Charger("ev", 11.0, energy_kwh=12.0),),
    )
    plan = solve_group(problem)
    # the cheap block takes what the limit leaves (10 - 4), the dear block the rest
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [6.0, 6.0])
    np.testing.assert_allclose(plan.net_import_kw, [8.0, 10.0])
    np.testing.assert_allclose(plan.flexibility_up_kw, [2.0, 0.0])


def test_two_chargers_share_a_binding_limit() -> None:
    chargers = (Charger("a", 11.0, energy_kwh=8.0), Charger("b", 11.0, energy_kwh=6.0))
    plan = solve_group(group([0.30, 0.20], limit=10.0, chargers=chargers))
    np.testing.assert_allclose(plan.capacity_kw, [4.0, 10.0])
    delivered = [c.setpoint_kw.sum() for c in plan.chargers]
    np.testing.assert_allclose(delivered, [8.0, 6.0])


def test_on_off_chargers_get_integral_decisions() -> None:
    switch = Charger("sw", 10.0, 10.0, mode="on_off", energy_kwh=15.0)
    plan = solve_group(group([1.0, 2.0, 3.0, 4.0], chargers=(switch,)))
    charger = plan.charger("sw")
    assert charger.on is not None and charger.on.dtype == np.bool_
    np.testing.assert_array_equal(charger.on, [True, True, False, False])
    np.testing.assert_allclose(charger.setpoint_kw, [10.0, 10.0, 0.0, 0.0])
    continuous = solve_group(
        group([1.0, 2.0, 3.0, 4.0], chargers=(Charger("c", 10.0, energy_kwh=15.0),))
    )
    np.testing.assert_allclose(continuous.charger("c").setpoint_kw, [10.0, 5.0, 0.0, 0.0])


def test_on_off_with_a_minimum_draws_within_min_and_max_when_on() -> None:
    semi = Charger("semi", 10.0, 4.0, mode="on_off", energy_kwh=6.0)
    plan = solve_group(group([1.0, 2.0, 3.0], chargers=(semi,)))
    np.testing.assert_allclose(plan.charger("semi").setpoint_kw, [6.0, 0.0, 0.0])
    np.testing.assert_array_equal(plan.charger("semi").on, [True, False, False])


def test_an_impossible_energy_need_is_reported_as_unmet_energy() -> None:
    plan = solve_group(group([0.2, 0.2], chargers=(Charger("ev", 5.0, energy_kwh=30.0),)))
    assert plan.status is PlanStatus.OPTIMAL
    assert plan.relaxation_kinds == ("unmet_energy",)
    (relaxation,) = plan.relaxations
    assert relaxation.kind is RelaxationKind.UNMET_ENERGY
    assert relaxation.amount_kwh == pytest.approx(20.0)
    assert relaxation.assets == ("ev",)
    assert plan.charger("ev").unmet_kwh == pytest.approx(20.0)
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [5.0, 5.0])


def test_an_unreachable_end_threshold_is_softened_and_reported() -> None:
    battery = Battery("bat", 100.0, 10.0, 5.0, 5.0, 1.0, 1.0, threshold_end=0.5)
    plan = solve_group(group([0.2, 0.2], batteries=(battery,)))
    assert plan.relaxation_kinds == ("soc_target",)
    assert plan.relaxations[0].amount_kwh == pytest.approx(30.0)  # 50 wanted, 20 reachable
    np.testing.assert_allclose(plan.battery("bat").soc_kwh, [15.0, 20.0])


def test_relaxations_follow_the_documented_order() -> None:
    """With the limit binding, the EV's energy is given up before the battery's end target."""
    battery = Battery("bat", 10.0, 10.0, 5.0, 5.0, 1.0, 1.0, threshold_end=1.0)
    problem = group(
        [0.2],
        limit=5.0,
        non_flexible_kw=5.0,
        chargers=(Charger("ev", 5.0, energy_kwh=5.0),),
        batteries=(battery,),
    )
    plan = solve_group(problem)
    assert plan.relaxation_kinds == ("unmet_energy",)
    np.testing.assert_allclose(plan.battery("bat").discharge_kw, [0.0])


def test_equal_prices_charge_sooner() -> None:
    plan = solve_group(group([0.25] * 4, chargers=(Charger("ev", 10.0, energy_kwh=15.0),)))
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [10.0, 5.0, 0.0, 0.0])


def test_equal_prices_over_a_day_still_charge_sooner() -> None:
    blocks = 96
    problem = GroupProblem(
        START,
        timedelta(minutes=15),
        np.full(blocks, 0.25),
        100.0,
        chargers=(Charger("ev", 11.0, energy_kwh=20.0),),
    )
    kw = solve_group(problem).charger("ev").setpoint_kw
    np.testing.assert_allclose(kw[:7], 11.0)
    assert kw[7] == pytest.approx(3.0)
    assert not kw[8:].any()


def test_without_the_slope_nothing_prefers_sooner_but_the_cost_is_the_same() -> None:
    problem = group(
        [0.25] * 4, chargers=(Charger("ev", 10.0, energy_kwh=15.0),), prefer_charging_sooner=False
    )
    plan = solve_group(problem)
    assert plan.objective == pytest.approx(15 * 0.25)
    assert plan.charger("ev").setpoint_kw.sum() == pytest.approx(15.0)


def test_the_deadline_and_connection_bound_the_charging() -> None:
    connected = [False, True, True, True]
    ev = Charger("ev", 10.0, energy_kwh=12.0, deadline_block=3, connected=connected)
    plan = solve_group(group([0.1, 0.4, 0.3, 0.05], chargers=(ev,)))
    # not plugged in block 0, block 3 is past the deadline: blocks 1 and 2, cheaper first
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [0.0, 2.0, 10.0, 0.0])


def test_a_demand_forecast_is_served_in_its_block_and_curtailed_at_the_limit() -> None:
    ev = Charger("ev", 11.0, demand_kw=[4.0, 6.0])
    plan = solve_group(group([0.2, 0.2], chargers=(ev,)))
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [4.0, 6.0])
    assert plan.relaxations == ()
    tight = solve_group(group([0.2, 0.2], limit=5.0, chargers=(ev,)))
    np.testing.assert_allclose(tight.charger("ev").setpoint_kw, [4.0, 5.0])
    assert tight.relaxation_kinds == ("unmet_energy",)
    assert tight.relaxations[0].amount_kwh == pytest.approx(1.0)


def test_a_continuous_minimum_is_drawn_while_connected() -> None:
    ev = Charger("ev", 10.0, 2.0, connected=[True, False, True])
    plan = solve_group(group([0.5, 0.5, 0.5], chargers=(ev,)))
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [2.0, 0.0, 2.0])


def test_a_battery_buys_low_and_sells_high_with_an_export_price() -> None:
    battery = Battery("bat", 10.0, 0.0, 10.0, 10.0, 1.0, 1.0)
    problem = group([0.1, 0.5], export_price_eur_per_kwh=[0.0, 0.4], batteries=(battery,))
    plan = solve_group(problem)
    np.testing.assert_allclose(plan.battery("bat").setpoint_kw, [10.0, -10.0])
    np.testing.assert_allclose(plan.capacity_kw, [10.0, -10.0])
    np.testing.assert_allclose(plan.battery("bat").soc_kwh, [10.0, 0.0])
    assert plan.cost_eur == pytest.approx(1.0 - 4.0)


def test_battery_usage_cost_can_make_cycling_not_worth_it() -> None:
    battery = Battery(
        "bat", 10.0, 0.0, 10.0, 10.0, 1.0, 1.0, cost_charging=0.25, cost_discharging=0.25
    )
    problem = group([0.1, 0.5], export_price_eur_per_kwh=[0.0, 0.4], batteries=(battery,))
    plan = solve_group(problem)
    np.testing.assert_allclose(plan.battery("bat").setpoint_kw, [0.0, 0.0])


def test_efficiency_losses_show_in_the_state_of_charge() -> None:
    battery = Battery("bat", 20.0, 10.0, 4.0, 4.0, 0.9, 0.8, threshold_end=0.68)
    plan = solve_group(group([0.2], batteries=(battery,)))
    # 13.6 kWh wanted: 3.6 kWh stored takes 4 kW at 90 % for one hour
    np.testing.assert_allclose(plan.battery("bat").charge_kw, [4.0])
    np.testing.assert_allclose(plan.battery("bat").soc_kwh, [13.6])


def test_non_flexible_load_above_the_limit_breaks_it_only_as_the_last_resort() -> None:
    plan = solve_group(group([0.2], limit=10.0, non_flexible_kw=12.0))
    assert plan.relaxation_kinds == ("grid_limit",)
    assert plan.relaxations[0].amount_kwh == pytest.approx(2.0)
    # 2 kWh above its 3 kWh threshold: exactly what the limit needs
    battery = Battery("bat", 10.0, 5.0, 5.0, 5.0, 1.0, 1.0, threshold_min=0.3)
    helped = solve_group(group([0.2], limit=10.0, non_flexible_kw=12.0, batteries=(battery,)))
    assert helped.relaxations == ()
    np.testing.assert_allclose(helped.battery("bat").discharge_kw, [2.0])
    np.testing.assert_allclose(helped.net_import_kw, [10.0])


def test_pv_behind_the_connection_makes_room_under_the_limit() -> None:
    ev = Charger("ev", 20.0, energy_kwh=15.0)
    plan = solve_group(group([0.2], limit=10.0, non_flexible_kw=3.0, pv_kw=8.0, chargers=(ev,)))
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [15.0])
    np.testing.assert_allclose(plan.net_import_kw, [10.0])


def test_flexibility_down_is_what_can_drop_while_needs_stay_met() -> None:
    # A negative price fills the EV beyond its need: 5 of the 10 kWh can go.
    ev = Charger("ev", 10.0, energy_kwh=5.0)
    plan = solve_group(group([-0.1, 0.2], chargers=(ev,)))
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [10.0, 0.0])
    np.testing.assert_allclose(plan.flexibility_down_kw, [5.0, 0.0])
    # An exact need leaves nothing to drop.
    exact = solve_group(group([0.1, 0.2], chargers=(Charger("ev", 10.0, energy_kwh=5.0),)))
    np.testing.assert_allclose(exact.flexibility_down_kw, [0.0, 0.0])


def test_a_switch_cannot_drop_part_of_its_power() -> None:
    switch = Charger("sw", 10.0, 10.0, mode="on_off", energy_kwh=15.0)
    plan = solve_group(group([1.0, 2.0, 3.0], chargers=(switch,)))
    np.testing.assert_allclose(plan.flexibility_down_kw, [0.0, 0.0, 0.0])
    loose = Charger("sw", 10.0, 10.0, mode="on_off", energy_kwh=10.0)
    plan = solve_group(group([-1.0, -2.0, 3.0], chargers=(loose,)))
    # on in both negative-price blocks; either one may switch off and 10 kWh remain
    np.testing.assert_allclose(plan.flexibility_down_kw, [10.0, 10.0, 0.0])


def test_an_idle_battery_offers_discharge_down_to_its_threshold() -> None:
    battery = Battery("bat", 20.0, 10.0, 3.0, 3.0, 1.0, 1.0, threshold_min=0.25)
    plan = solve_group(group([0.2, 0.2, 0.2], batteries=(battery,)))
    np.testing.assert_allclose(plan.battery("bat").setpoint_kw, [0.0, 0.0, 0.0])
    # 5 kWh above the 5 kWh threshold, discharging at most 3 kW
    np.testing.assert_allclose(plan.flexibility_down_kw, [3.0, 3.0, 3.0])
    np.testing.assert_allclose(plan.flexibility_up_kw, [100.0, 100.0, 100.0])


def test_identical_chargers_merge_without_changing_the_plan() -> None:
    chargers = tuple(Charger(f"ev{i}", 7.0, energy_kwh=9.0, deadline_block=3) for i in range(5))
    prices = [0.3, 0.1, 0.2, 0.05]
    merged = solve_group(group(prices, limit=40.0, chargers=chargers))
    single = solve_group(
        group(prices, limit=40.0, chargers=chargers, solver=SolveOptions(aggregate=False))
    )
    assert merged.objective == pytest.approx(single.objective, rel=1e-9)
    np.testing.assert_allclose(merged.capacity_kw, single.capacity_kw, atol=1e-7)
    for charger in merged.chargers:
        np.testing.assert_allclose(charger.setpoint_kw, merged.chargers[0].setpoint_kw)
        assert charger.setpoint_kw[:3].sum() == pytest.approx(9.0)


def test_a_solver_error_returns_the_flagged_headroom_plan(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(form, options):  # type: ignore[no-untyped-def]
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(engine_module, "run", broken)
    problem = group(
        [0.2, 0.3],
        limit=[10.0, 4.0],
        non_flexible_kw=[3.0, 6.0],
        pv_kw=[1.0, 0.0],
        chargers=(Charger("a", 6.0, energy_kwh=5.0), Charger("b", 2.0)),
        batteries=(Battery("bat", 10.0, 5.0, 3.0, 3.0),),
    )
    plan = solve_group(problem)
    assert plan.fallback and plan.status is PlanStatus.FALLBACK
    assert "solver exploded" in plan.message
    np.testing.assert_allclose(plan.capacity_kw, [8.0, 0.0])  # max(0, limit - load + pv)
    np.testing.assert_allclose(headroom_kw(problem), [8.0, 0.0])
    # shared by rated power (6:2), never above the headroom
    np.testing.assert_allclose(plan.charger("a").setpoint_kw, [6.0, 0.0])
    np.testing.assert_allclose(plan.charger("b").setpoint_kw, [2.0, 0.0])
    np.testing.assert_allclose(plan.battery("bat").soc_kwh, [5.0, 5.0])
    assert np.isnan(plan.objective)


def test_a_time_out_without_a_plan_returns_the_headroom_plan() -> None:
    chargers = tuple(
        Charger(f"c{i}", 11.0, 2.0, mode="on_off", energy_kwh=5.0 + i) for i in range(30)
    )
    problem = GroupProblem(
        START,
        timedelta(minutes=15),
        np.linspace(0.1, 0.3, 96),
        100.0,
        chargers=chargers,
        solver=SolveOptions(time_limit_s=1e-6),
    )
    plan = solve_group(problem)
    assert plan.fallback
    assert plan.solver_status == "Time limit reached"
    np.testing.assert_allclose(plan.capacity_kw, 100.0)
    assert plan.capacity_kw.sum() >= sum(c.setpoint_kw.sum() for c in plan.chargers)


def test_a_solver_without_a_plan_is_a_fallback(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def nothing(form, options):  # type: ignore[no-untyped-def]
        return EngineRun(False, False, "Infeasible", 0.0, 0.0, lambda: None)  # type: ignore[arg-type,return-value]

    monkeypatch.setattr(engine_module, "run", nothing)
    plan = solve_group(group([0.2], chargers=(Charger("ev", 5.0, energy_kwh=1.0),)))
    assert plan.fallback and plan.solver_status == "Infeasible"


def test_timings_are_reported() -> None:
    plan = solve_group(group([0.2, 0.1], chargers=(Charger("ev", 5.0, energy_kwh=1.0),)))
    assert plan.timings.build_s > 0 and plan.timings.solve_s > 0 and plan.timings.extract_s > 0


def test_plans_are_read_only() -> None:
    plan = solve_group(group([0.2, 0.1], chargers=(Charger("ev", 5.0, energy_kwh=1.0),)))
    with pytest.raises(ValueError):
        plan.capacity_kw[0] = 1.0


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Charger("ev", -1.0), "max_kw"),
        (lambda: Charger("ev", 5.0, 6.0), "min_kw"),
        (lambda: Charger("ev", 5.0, mode="dimmer"), "mode"),
        (lambda: Charger("ev", 5.0, energy_kwh=1.0, demand_kw=[1.0]), "demand_kw"),
        (lambda: Charger("ev", 5.0, deadline_block=2), "deadline_block"),
        (lambda: Charger("", 5.0), "id"),
        (lambda: Battery("b", 10.0, 11.0, 1.0, 1.0), "soc_kwh"),
        (lambda: Battery("b", 10.0, 1.0, 1.0, 1.0, charge_efficiency=1.2), "charge_efficiency"),
        (
            lambda: Battery("b", 10.0, 1.0, 1.0, 1.0, threshold_min=0.6, threshold_max=0.5),
            "threshold_max",
        ),
        (lambda: group([0.2, float("nan")]), "price_eur_per_kwh[1]"),
        (lambda: group([0.2, 0.3], limit=[1.0]), "grid_limit_kw"),
        (lambda: group([0.2], pv_kw=-1.0), "pv_kw"),
        (lambda: GroupProblem(datetime(2026, 1, 1), HOUR, np.array([0.2]), 1.0), "start"),
        (lambda: GroupProblem(START, timedelta(0), np.array([0.2]), 1.0), "resolution"),
        (
            lambda: group([0.2], chargers=(Charger("a", 1.0), Charger("a", 1.0))),
            "assets[1].id",
        ),
        (
            lambda: group(
                [0.2, 0.2], chargers=(Charger("a", 1.0, energy_kwh=1, deadline_block=3),)
            ),
            "chargers[0].deadline_block",
        ),
        (
            lambda: group([0.2], chargers=(Charger("a", 1.0, demand_kw=[1.0], connected=[False]),)),
            "chargers[0].demand_kw[0]",
        ),
        (lambda: group([200.0]), "penalties.unmet_energy"),
        (lambda: Penalties(unmet_energy=10.0, soc_target=5.0), "penalties"),
        (lambda: SolveOptions(time_limit_s=0), "time_limit_s"),
        (lambda: SolveOptions(engine="gurobi"), "engine"),
    ],
)
def test_bad_inputs_raise_a_value_error_naming_the_field(build, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as caught:
        build()
    assert isinstance(caught.value, ProblemError)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_amps_convert_to_kw_with_voltage_phases_and_power_factor() -> None:
    assert amps_to_kw(25.0) == pytest.approx(17.25)  # 3 x 230 V x 25 A
    assert amps_to_kw(16.0, voltage_v=230.0, phases=1, power_factor=0.9) == pytest.approx(3.312)
    np.testing.assert_allclose(amps_to_kw(np.array([10.0, 20.0]), 400.0, 3), [12.0, 24.0])
    assert kw_to_amps(amps_to_kw(32.0, 230.0, 3, 0.95), 230.0, 3, 0.95) == pytest.approx(32.0)
    with pytest.raises(ProblemError, match="phases"):
        amps_to_kw(10.0, phases=4)


def test_the_pyomo_engine_is_reported_in_the_plan() -> None:
    problem = group([0.3, 0.2], chargers=(Charger("ev", 10.0, energy_kwh=8.0),))
    plan = solve_group(
        GroupProblem(**{**problem.__dict__, "solver": SolveOptions(engine=Engine.PYOMO)})
    )
    assert plan.engine == "pyomo"
    np.testing.assert_allclose(plan.capacity_kw, [0.0, 8.0])
