"""Choosing FlexOrders from open FlexOffers (UFTP 3.1, the DSO's side), on cases known by
hand and, by property, against brute force.

UFTP 3.1 FlexOrder: "OptionReference: The OptionReference from the OfferOption chosen from
the FlexOffer." "ActivationFactor: ... The ActivationFactor must be greater than or equal to
the MinActivationFactor in the OfferOption chosen from the FlexOffer."
ActivationFactorType: xs:decimal, fractionDigits 2, 0.01..1.00. CurrencyAmountType:
fractionDigits 4. The rules the optimizer adds are in optimizer/flex_orders.py.
"""

from __future__ import annotations

import itertools
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import (
    FlexOrderOffer,
    FlexOrderOption,
    FlexOrderPlan,
    FlexOrderPlanStatus,
    FlexOrderProblem,
    ProblemError,
    SolveOptions,
    solve_flex_orders,
)
from optimizer import flex_orders as flex_orders_module

EXACT = SolveOptions(mip_rel_gap=0.0)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def option(reference: str, price: str, flex_w: list[float], least: str = "1.00") -> FlexOrderOption:
    return FlexOrderOption(reference, Decimal(price), np.asarray(flex_w, float), Decimal(least))


def offer(offer_id: str, *options: FlexOrderOption) -> FlexOrderOffer:
    return FlexOrderOffer(offer_id, options)


def solve(need: list[float], *offers: FlexOrderOffer) -> FlexOrderPlan:
    return solve_flex_orders(FlexOrderProblem(np.asarray(need, float), offers, EXACT))


def chosen(plan: FlexOrderPlan) -> set[tuple[str, str, str]]:
    return {(o.offer_id, o.option_reference, str(o.activation_factor)) for o in plan.orders}


# Cases known by hand


def test_the_cheapest_single_option_that_covers_the_need_is_ordered() -> None:
    """Minimise total cost such that every ISP with a need is covered."""
    plan = solve(
        [0, 1000, 1000],
        offer("o1", option("a", "9", [0, 1000, 1000])),
        offer("o2", option("b", "7", [0, 1500, 1000])),
        offer("o3", option("c", "5", [0, 1500, 900])),  # cheapest, but short in ISP 3
    )
    assert plan.status is FlexOrderPlanStatus.OPTIMAL
    assert chosen(plan) == {("o2", "b", "1.00")}
    assert plan.total_cost == Decimal("7.0000")
    assert plan.covers
    assert plan.covered_w.tolist() == [0, 1500, 1000]


def test_two_offers_are_combined_when_together_they_cover_more_cheaply() -> None:
    """The set of options may span offers: one order per chosen offer."""
    plan = solve(
        [2000, 2000],
        offer("big", option("all", "50", [2000, 2000])),
        offer("early", option("e", "10", [2000, 0])),
        offer("late", option("l", "12", [0, 2000])),
    )
    assert chosen(plan) == {("early", "e", "1.00"), ("late", "l", "1.00")}
    assert plan.total_cost == Decimal("22.0000")
    assert plan.covers


def test_two_options_of_one_offer_are_never_both_ordered() -> None:
    """The OfferOptions of one FlexOffer are alternatives: a FlexOrder names one
    OptionReference. Here both options together would be the cheapest cover."""
    plan = solve(
        [1000, 1000],
        offer("o1", option("early", "1", [1000, 0]), option("late", "1", [0, 1000])),
        offer("o2", option("both", "30", [1000, 1000])),
    )
    assert chosen(plan) == {("o2", "both", "1.00")}
    assert plan.total_cost == Decimal("30.0000")


def test_mutually_exclusive_options_leave_a_shortfall_rather_than_both_being_ordered() -> None:
    """At most one option of an offer, even when no choice covers every need."""
    plan = solve(
        [1000, 1000], offer("o1", option("early", "1", [1000, 0]), option("late", "2", [0, 1000]))
    )
    assert plan.status is FlexOrderPlanStatus.INFEASIBLE
    assert len(plan.orders) == 1
    assert plan.shortfall_w.sum() == 1000


def test_an_order_never_goes_below_the_options_min_activation_factor() -> None:
    """The ActivationFactor must be >= the MinActivationFactor of the chosen option: 20 % of
    this option would do, 60 % is its least."""
    plan = solve([200], offer("o1", option("a", "10", [1000], least="0.60")))
    assert chosen(plan) == {("o1", "a", "0.60")}
    assert plan.total_cost == Decimal("6.0000")
    assert plan.covered_w.tolist() == [600]


def test_partial_activation_is_ordered_when_it_is_cheaper_than_full() -> None:
    """An order costs option Price * ActivationFactor: 40 % of the cheap large option beats
    the small one at full activation."""
    plan = solve(
        [400],
        offer("large", option("a", "10", [1000], least="0.10")),
        offer("small", option("b", "5", [400])),
    )
    assert chosen(plan) == {("large", "a", "0.40")}
    assert plan.total_cost == Decimal("4.0000")


def test_the_factor_is_a_whole_hundredth_that_still_covers_the_need() -> None:
    """ActivationFactorType has 2 fraction digits: a third of the option is not orderable,
    so 0.34 is ordered (0.33 would leave 3 W)."""
    plan = solve([1000], offer("o1", option("a", "3", [3000], least="0.01")))
    assert chosen(plan) == {("o1", "a", "0.34")}
    assert plan.covered_w.tolist() == [1020]
    assert plan.covers


def test_the_order_price_is_the_option_price_times_the_factor_rounded_half_up() -> None:
    """CurrencyAmountType has 4 fraction digits: 1.2345 * 0.50 = 0.61725 -> 0.6173."""
    plan = solve([500], offer("o1", option("a", "1.2345", [1000], least="0.50")))
    assert [o.price for o in plan.orders] == [Decimal("0.6173")]
    assert plan.total_cost == Decimal("0.6173")


def test_an_uncoverable_need_gives_the_least_shortfall_at_the_least_cost() -> None:
    """If no choice covers every need: the best cover first, then the cheapest such cover,
    with its shortfall per ISP."""
    plan = solve(
        [3000, 1000],
        offer("o1", option("a", "10", [2000, 1000]), option("b", "4", [2000, 0])),
        offer("o2", option("c", "8", [500, 0]), option("d", "1", [500, 0])),
    )
    assert plan.status is FlexOrderPlanStatus.INFEASIBLE
    assert chosen(plan) == {("o1", "a", "1.00"), ("o2", "d", "1.00")}
    assert plan.total_cost == Decimal("11.0000")
    assert plan.shortfall_w.tolist() == [500, 0]
    assert not plan.covers


def test_no_offers_orders_nothing_and_leaves_the_whole_need() -> None:
    plan = solve([0, 1500, 700])
    assert plan.status is FlexOrderPlanStatus.INFEASIBLE
    assert plan.orders == ()
    assert plan.shortfall_w.tolist() == [0, 1500, 700]
    assert plan.total_cost == Decimal(0)


def test_zero_need_orders_nothing() -> None:
    """Flex is ordered only to remove congestion: no need, no order, even a free one."""
    plan = solve([0, 0], offer("o1", option("free", "0", [1000, 1000])))
    assert plan.status is FlexOrderPlanStatus.OPTIMAL
    assert plan.orders == ()
    assert plan.covered_w.tolist() == [0, 0]


def test_a_free_option_that_is_not_needed_is_not_ordered() -> None:
    """At equal cost, fewer orders win."""
    plan = solve(
        [1000, 0],
        offer("o1", option("a", "5", [1000, 0])),
        offer("o2", option("free", "0", [0, 1000])),
    )
    assert chosen(plan) == {("o1", "a", "1.00")}


def test_isps_without_need_do_not_constrain_the_choice() -> None:
    """flex_w may be negative (load moved into an ISP); only ISPs with a need are covered."""
    plan = solve([1000, 0], offer("o1", option("shift", "2", [1000, -1000])))
    assert chosen(plan) == {("o1", "shift", "1.00")}
    assert plan.covered_w.tolist() == [1000, -1000]
    assert plan.shortfall_w.tolist() == [0, 0]


def test_load_moved_into_a_needed_isp_counts_against_its_cover() -> None:
    plan = solve(
        [1000, 1000],
        offer("o1", option("shift", "1", [2000, -500])),
        offer("o2", option("late", "3", [0, 1500])),
    )
    assert chosen(plan) == {("o1", "shift", "1.00"), ("o2", "late", "1.00")}
    assert plan.covered_w.tolist() == [2000, 1000]


def test_a_time_limit_that_has_passed_returns_a_plan_ordering_nothing() -> None:
    problem = FlexOrderProblem(
        np.array([1000.0]),
        (offer("o1", option("a", "1", [1000])),),
        SolveOptions(time_limit_s=1e-9),
    )
    plan = solve_flex_orders(problem)
    assert plan.status is FlexOrderPlanStatus.TIME_LIMIT
    assert plan.orders == ()
    assert plan.shortfall_w.tolist() == [1000]


def test_a_solver_failure_gives_a_failed_plan_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("no solver today")

    monkeypatch.setattr(flex_orders_module, "_build", broken)
    plan = solve([1000], offer("o1", option("a", "1", [1000])))
    assert plan.status is FlexOrderPlanStatus.FAILED
    assert "no solver today" in plan.message
    assert plan.orders == ()
    assert plan.shortfall_w.tolist() == [1000]


def test_a_plan_and_a_problem_are_values() -> None:
    need = np.array([1000.0])
    problem = FlexOrderProblem(need, (offer("o1", option("a", "1", [1000])),))
    need[0] = 5.0
    assert problem.needed_w.tolist() == [1000]
    plan = solve_flex_orders(problem)
    with pytest.raises(ValueError):
        plan.covered_w[0] = 0.0


# Inputs refused by name


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: option("a", "1", [1], least="0.00"), "min_activation_factor"),
        (lambda: option("a", "1", [1], least="1.01"), "min_activation_factor"),
        (lambda: option("a", "1", [1], least="0.555"), "min_activation_factor"),
        (lambda: option("a", "-1", [1]), "price"),
        (lambda: option("a", "1.00001", [1]), "price"),
        (lambda: option("", "1", [1]), "reference"),
        (lambda: offer("o1"), "options"),
        (lambda: offer("o1", option("a", "1", [1]), option("a", "2", [1])), "options[1].reference"),
        (lambda: FlexOrderProblem(np.array([-1.0])), "needed_w[0]"),
        (
            lambda: FlexOrderProblem(np.array([1.0, 1.0]), (offer("o1", option("a", "1", [1])),)),
            "offers[0].options[0].flex_w",
        ),
        (
            lambda: FlexOrderProblem(
                np.array([1.0]),
                (offer("o", option("a", "1", [1])), offer("o", option("b", "1", [1]))),
            ),
            "offers[1].id",
        ),
    ],
)
def test_an_input_that_cannot_describe_a_choice_is_refused_by_name(build, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProblemError) as raised:
        build()
    assert raised.value.field == field


# Against brute force

PRICE_PLACES = Decimal("0.0001")


def _order_price(price: Decimal, hundredths: int) -> Decimal:
    return (price * Decimal(hundredths) / 100).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)


def _brute_force(problem: FlexOrderProblem) -> tuple[float, Decimal]:
    """(least total shortfall, least cost at that shortfall) over every choice of at most
    one option per offer and every whole-hundredth factor of each."""
    need = problem.needed_w
    best: tuple[float, Decimal] = (float(need.sum()), Decimal(0))
    picks = [(None, *offer.options) for offer in problem.offers]
    for choice in itertools.product(*picks):
        ordered = [o for o in choice if o is not None]
        if not ordered:
            continue
        ranges = [np.arange(int(o.min_activation_factor * 100), 101) for o in ordered]
        grids = np.meshgrid(*ranges, indexing="ij")
        steps = np.stack([g.ravel() for g in grids], axis=1)  # (combos, options)
        flex = np.stack([o.flex_w for o in ordered])  # (options, isps)
        covered = steps @ flex / 100
        short = np.where(need > 0, np.clip(need - covered, 0, None), 0).sum(axis=1)
        cost = steps @ (np.array([float(o.price) for o in ordered]) / 100)
        least = short.min()
        if least > best[0] + 1e-6:
            continue
        at_least = np.flatnonzero(short <= least + 1e-6)
        index = at_least[np.argmin(cost[at_least])]
        exact = sum(
            (_order_price(o.price, int(k)) for o, k in zip(ordered, steps[index], strict=True)),
            Decimal(0),
        )
        if least < best[0] - 1e-6 or exact < best[1]:
            best = (float(least), exact)
    return best


def _check_invariants(problem: FlexOrderProblem, plan: FlexOrderPlan) -> None:
    offers = {o.id: o for o in problem.offers}
    assert len({o.offer_id for o in plan.orders}) == len(plan.orders), "two options of one offer"
    covered = np.zeros(problem.isps)
    for order in plan.orders:
        option = next(
            o for o in offers[order.offer_id].options if o.reference == order.option_reference
        )
        assert option.min_activation_factor <= order.activation_factor <= Decimal(1)
        assert order.activation_factor == order.activation_factor.quantize(Decimal("0.01"))
        hundredths = int(order.activation_factor * 100)
        assert order.price == _order_price(option.price, hundredths)
        covered += hundredths * option.flex_w / 100
    assert np.allclose(plan.covered_w, covered)
    need = problem.needed_w
    short = np.where(need > 0, np.clip(need - covered, 0, None), 0)
    assert np.allclose(plan.shortfall_w, np.where(short < 0.5, 0, short))
    assert plan.total_cost == sum((o.price for o in plan.orders), Decimal(0))
    assert plan.status in (FlexOrderPlanStatus.OPTIMAL, FlexOrderPlanStatus.INFEASIBLE)
    assert (plan.status is FlexOrderPlanStatus.OPTIMAL) == plan.covers


@st.composite
def problems(draw, offers: int, options: int, isps: int, least: list[str]) -> FlexOrderProblem:  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, isps))
    power = st.integers(-500, 3000)
    made = []
    for o in range(draw(st.integers(0, offers))):
        made.append(
            FlexOrderOffer(
                f"o{o}",
                tuple(
                    FlexOrderOption(
                        f"r{j}",
                        Decimal(draw(st.integers(0, 5000))) / 100,
                        np.array(draw(st.lists(power, min_size=n, max_size=n)), float),
                        Decimal(draw(st.sampled_from(least))),
                    )
                    for j in range(draw(st.integers(1, options)))
                ),
            )
        )
    need = np.array(
        draw(st.lists(st.sampled_from([0, 0, 300, 1000, 2500]), min_size=n, max_size=n)), float
    )
    return FlexOrderProblem(need, tuple(made), EXACT)


@SETTINGS
@given(problems(offers=3, options=2, isps=3, least=["1.00", "0.90", "0.60", "0.35"]))
def test_the_choice_is_the_brute_force_optimum_on_small_problems(problem: FlexOrderProblem) -> None:
    """Least shortfall first, then least cost, over every orderable choice (whole-hundredth
    factors, at most one option per offer)."""
    plan = solve_flex_orders(problem)
    _check_invariants(problem, plan)
    shortfall, cost = _brute_force(problem)
    assert float(plan.shortfall_w.sum()) == pytest.approx(shortfall, abs=1.5)
    # The solver minimises the unrounded price; rounding to 4 decimals moves each order by
    # at most 0.00005.
    assert abs(plan.total_cost - cost) <= Decimal("0.00005") * (
        len(plan.orders) + len(problem.offers)
    )


@SETTINGS
@given(problems(offers=8, options=3, isps=12, least=["1.00", "0.50", "0.25", "0.01"]))
def test_the_choice_is_never_dearer_than_any_single_option_that_covers_alone(
    problem: FlexOrderProblem,
) -> None:
    """Invariants on larger problems: one option per offer, factors within bounds, coverage
    and prices as stated, and no single option covering alone is cheaper."""
    plan = solve_flex_orders(problem)
    _check_invariants(problem, plan)
    need = problem.needed_w
    needed = need > 0
    for offer_ in problem.offers:
        for option_ in offer_.options:
            least = int(option_.min_activation_factor * 100)
            for k in range(least, 101):
                if (k * option_.flex_w[needed] / 100 >= need[needed]).all():
                    assert plan.covers
                    assert plan.total_cost <= _order_price(option_.price, k) + Decimal("0.0001")
                    break
