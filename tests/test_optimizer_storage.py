"""The storage schedule (USEF device message) on cases known by hand.

FlexMeasures 0.3 docs, 7.2.1: "For all scheduling algorithms, a starting state of charge
(SOC) as well as a set of SOC targets can be given. If no SOC is available, we set the
starting SOC to 0." "per default we incentivise the algorithms to prefer scheduling charging
now rather than later, and discharging later rather than now." "For the resulting
consumption schedule, consumption is defined as positive values."
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import (
    PlanStatus,
    ProblemError,
    SocTarget,
    StorageProblem,
    solve_storage,
)
from optimizer import engines as engine_module

START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def device(prices, **kwargs) -> StorageProblem:  # type: ignore[no-untyped-def]
    settings = {"soc_max_kwh": 20.0, "max_charge_kw": 5.0}
    settings.update(kwargs)
    return StorageProblem(START, HOUR, np.asarray(prices, dtype=float), **settings)


def test_charging_is_positive_and_goes_to_the_cheapest_blocks() -> None:
    """Consumption is defined as positive values."""
    plan = solve_storage(device([0.3, 0.1, 0.2, 0.4], targets=(SocTarget(3, 8.0),)))
    assert plan.status is PlanStatus.OPTIMAL
    np.testing.assert_allclose(plan.consumption_kw, [0.0, 5.0, 3.0, 0.0])
    np.testing.assert_allclose(plan.soc_kwh, [0.0, 5.0, 8.0, 8.0])
    assert plan.cost_eur == pytest.approx(5 * 0.1 + 3 * 0.2)


def test_the_starting_soc_defaults_to_zero() -> None:
    """If no SOC is available, we set the starting SOC to 0."""
    problem = device([0.2, 0.2], targets=(SocTarget(1, 6.0),))
    assert problem.soc_kwh == 0.0
    assert solve_storage(problem).consumption_kw.sum() == pytest.approx(6.0)


def test_equal_prices_charge_now_rather_than_later() -> None:
    """Prefer scheduling charging now rather than later."""
    plan = solve_storage(device([0.25] * 4, targets=(SocTarget(3, 8.0),)))
    np.testing.assert_allclose(plan.consumption_kw, [5.0, 3.0, 0.0, 0.0])


def test_equal_prices_discharge_later_rather_than_now() -> None:
    """... and discharging later rather than now."""
    problem = device([0.25] * 4, soc_kwh=20.0, max_discharge_kw=5.0, targets=(SocTarget(3, 12.0),))
    np.testing.assert_allclose(solve_storage(problem).consumption_kw, [0.0, 0.0, -3.0, -5.0])


def test_a_target_is_an_exact_soc_at_the_end_of_its_block() -> None:
    # Negative prices would fill the device; the target holds it at 4 kWh after block 1.
    problem = device([-0.1, -0.1, 0.2], targets=(SocTarget(1, 4.0),))
    plan = solve_storage(problem)
    assert plan.soc_kwh[1] == pytest.approx(4.0)
    assert plan.relaxations == ()


def test_several_targets_are_met_in_turn() -> None:
    targets = (SocTarget(1, 6.0), SocTarget(3, 2.0))
    problem = device([0.1, 0.3, 0.5, 0.2], max_discharge_kw=5.0, targets=targets)
    plan = solve_storage(problem)
    assert plan.soc_kwh[1] == pytest.approx(6.0)
    assert plan.soc_kwh[3] == pytest.approx(2.0)
    # buy 5 at 0.1 and 1 at 0.3 for the first target; then sell all 5 at 0.5 and buy back
    # 1 at 0.2 rather than sell only the 4 the second target asks
    np.testing.assert_allclose(plan.consumption_kw, [5.0, 1.0, -5.0, 1.0])
    assert plan.cost_eur == pytest.approx(0.5 + 0.3 - 2.5 + 0.2)


def test_a_one_way_evse_never_discharges() -> None:
    problem = device([0.5, 0.1], soc_kwh=10.0, targets=(SocTarget(1, 10.0),))
    plan = solve_storage(problem)
    assert (plan.consumption_kw >= 0).all()


def test_round_trip_losses_are_split_over_charging_and_discharging() -> None:
    problem = device([0.2, 0.2], roundtrip_efficiency=0.81, targets=(SocTarget(0, 4.5),))
    plan = solve_storage(problem)
    # 4.5 kWh stored at sqrt(0.81) = 0.9 takes 5 kWh
    assert plan.consumption_kw[0] == pytest.approx(5.0)


def test_an_unreachable_target_is_softened_and_reported() -> None:
    plan = solve_storage(device([0.2, 0.2], targets=(SocTarget(1, 15.0),)))
    assert plan.status is PlanStatus.OPTIMAL
    assert plan.relaxation_kinds == ("soc_target",)
    assert plan.relaxations[0].amount_kwh == pytest.approx(5.0)  # 10 reachable of 15
    np.testing.assert_allclose(plan.consumption_kw, [5.0, 5.0])


def test_a_soc_below_its_minimum_is_relaxed_and_climbs_back() -> None:
    plan = solve_storage(device([0.5, 0.1, 0.1], soc_kwh=1.0, soc_min_kwh=8.0))
    assert "soc_bounds" in plan.relaxation_kinds
    # dear first block or not, the device charges at once to leave the violation
    np.testing.assert_allclose(plan.soc_kwh, [6.0, 8.0, 8.0])


def test_production_can_earn_a_different_price() -> None:
    problem = device(
        [0.1, 0.3],
        production_price_eur_per_kwh=[0.05, 0.25],
        max_discharge_kw=5.0,
        targets=(SocTarget(1, 0.0),),
    )
    plan = solve_storage(problem)
    np.testing.assert_allclose(plan.consumption_kw, [5.0, -5.0])
    assert plan.cost_eur == pytest.approx(0.5 - 1.25)


def test_a_failing_solver_gives_the_idle_fallback(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(form, options):  # type: ignore[no-untyped-def]
        raise MemoryError("out of memory")

    monkeypatch.setattr(engine_module, "run", broken)
    plan = solve_storage(device([0.2, 0.3], soc_kwh=7.0))
    assert plan.fallback and "MemoryError" in plan.message
    np.testing.assert_allclose(plan.consumption_kw, [0.0, 0.0])
    np.testing.assert_allclose(plan.soc_kwh, [7.0, 7.0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"targets": (SocTarget(4, 1.0),)}, "targets[0].block"),
        ({"targets": (SocTarget(1, 1.0), SocTarget(1, 2.0))}, "targets[1].block"),
        ({"targets": (SocTarget(1, 25.0),)}, "targets[0].soc_kwh"),
        ({"soc_min_kwh": 30.0}, "soc_max_kwh"),
        ({"roundtrip_efficiency": 0.0}, "roundtrip_efficiency"),
        ({"max_charge_kw": -1.0}, "max_charge_kw"),
        ({"production_price_eur_per_kwh": [0.1]}, "production_price_eur_per_kwh"),
    ],
)
def test_bad_device_inputs_name_the_field(kwargs, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProblemError) as caught:
        device([0.2, 0.2, 0.2, 0.2], **kwargs)
    assert caught.value.field == field
