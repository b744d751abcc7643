"""Choose FlexOrders: the cheapest options of a congestion point's open FlexOffers that
remove its congestion (UFTP 3.1, the DSO's side). Pure: typed problem in, typed plan out.

    plan = solve_flex_orders(FlexOrderProblem(needed_w=need, offers=(
        FlexOrderOffer("offer-msg-id", (FlexOrderOption("A", Decimal("12.5"), flex_w, ...),)),
    )))
    plan.orders  # (offer id, option reference, activation factor, price) per FlexOrder

The rules:

1. Power. `needed_w[i]` is the flex still needed in ISP i (index 0 = UFTP ISP Start 1), in
   watts: the consumption reduction the AGRs must deliver below their prognosis; 0 where
   there is no congestion (never negative). `flex_w[i]` of an option is the reduction it
   delivers in ISP i when ordered at activation factor 1.00, in watts, already turned by
   the caller from the offer's ISP Power (the AGR's consumption if ordered) into
   prognosis minus that power. It may be negative (an option that moves load into an ISP);
   ISPs without need are not constrained, so load moved there is the caller's to check.
2. Mutual exclusion: at most one option of an offer is ordered (the OfferOptions of one
   FlexOffer are alternatives; one FlexOrder names one OptionReference).
3. Activation: an ordered option's factor a is a multiple of 0.01 within
   [MinActivationFactor, 1.00] (ActivationFactorType: 2 fraction digits, 0.01-1.00), and
   it delivers a * flex_w. The model's activation is an integer number of hundredths, so
   the factor in the plan is exactly the one a FlexOrder carries and the coverage reported
   is that factor's: nothing is rounded after the solve.
4. Price: an order costs option Price * a, rounded half up to 4 decimals
   (CurrencyAmountType), in the offer's currency. Prices must be >= 0: an option that pays
   the DSO would be worth ordering where nothing is congested.
5. Objective, lexicographic: if some choice covers every need, the cheapest one. If none
   does, first the least total shortfall (watts summed over the ISPs), then the cheapest
   choice with that shortfall; status `infeasible`, with covered_w and shortfall_w. At
   equal cost, fewer orders and lower factors win (a tie-break far below 0.0001 EUR).
   "Cheapest" is within SolveOptions.mip_rel_gap; `time_limit_s` bounds all solves
   together and `threads` is used as every optimizer solve uses it. `engine` and
   `aggregate` do not apply: this model has one build, the HiGHS arrays.
6. Expiry is the caller's: pass only the offers still open when the orders will be sent.

Never raises once the problem is built: a solver failure or an unexpected error gives a
plan that orders nothing, status `failed`, with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import highspy
import numpy as np

from optimizer.checks import frozen, series
from optimizer.errors import ProblemError, shown
from optimizer.highs_threads import fresh_scheduler
from optimizer.limits import MAX_ASSETS, MAX_CELLS, check_count
from optimizer.options import SolveOptions
from optimizer.plans import Timings

INF = highspy.kHighsInf
HUNDREDTHS = 100  # activation factor steps: ActivationFactorType has 2 fraction digits
FACTOR_PLACES = Decimal("0.01")
PRICE_PLACES = Decimal("0.0001")
# UFTP powers are whole watts: a shortfall under half a watt is the solver's tolerance.
SHORTFALL_TOLERANCE_W = 0.5
# Tie-breaks at equal cost (EUR): per ordered option, per hundredth of activation.
PER_ORDER_EUR = 1e-7
PER_HUNDREDTH_EUR = 1e-10
# The model works in kW: watts of a large congestion point would strain the tolerances.
W_PER_KW = 1000.0


def _text(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ProblemError(field_name, "must be a non-empty string")
    return value


def _decimal(
    field_name: str, value: Any, places: int, low: Decimal, high: Decimal | None
) -> Decimal:
    """A Decimal of at most `places` fraction digits within [low, high]; a float is read by
    its shortest repr (0.3 is 0.3, not 0.299999...)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise ProblemError(field_name, f"must be a decimal number, not {type(value).__name__}")
    try:
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ProblemError(field_name, f"must be a decimal number, got {shown(value)}") from None
    if not result.is_finite():
        raise ProblemError(field_name, "must be finite")
    if result != result.quantize(Decimal(1).scaleb(-places)):
        raise ProblemError(field_name, f"has more than {places} decimals: {shown(value)}")
    if result < low or (high is not None and result > high):
        upper = "" if high is None else f" and <= {high}"
        raise ProblemError(field_name, f"must be >= {low}{upper}, got {result}")
    return result


@dataclass(frozen=True, eq=False)
class FlexOrderOption:
    """One OfferOption: its OptionReference, its Price (at activation factor 1.00, 4
    decimals at most, >= 0), its MinActivationFactor and the reduction it delivers per ISP
    at factor 1.00, in watts (rule 1 of the module docstring)."""

    reference: str
    price: Decimal
    flex_w: np.ndarray
    min_activation_factor: Decimal = Decimal("1.00")

    def __post_init__(self) -> None:
        _text("reference", self.reference)
        put = object.__setattr__
        put(self, "price", _decimal("price", self.price, 4, Decimal(0), None))
        low = _decimal(
            "min_activation_factor", self.min_activation_factor, 2, FACTOR_PLACES, Decimal(1)
        )
        put(self, "min_activation_factor", low)
        put(self, "flex_w", series("flex_w", self.flex_w, None))


@dataclass(frozen=True, eq=False)
class FlexOrderOffer:
    """One FlexOffer still open: its id (the FlexOfferMessageID) and its options, of which
    at most one is ordered."""

    id: str
    options: tuple[FlexOrderOption, ...]

    def __post_init__(self) -> None:
        _text("id", self.id)
        options = _members("options", self.options, FlexOrderOption)
        if not options:
            raise ProblemError("options", "must hold at least one option (OfferOption[1..n])")
        _unique("options", "reference", [o.reference for o in options])
        object.__setattr__(self, "options", options)


def _members(name: str, items: Any, kind: type[Any]) -> tuple[Any, ...]:
    if not isinstance(items, list | tuple):
        raise ProblemError(name, "must be a list")
    for index, item in enumerate(items):
        if not isinstance(item, kind):
            raise ProblemError(f"{name}[{index}]", f"must be a {kind.__name__}")
    return tuple(items)


def _unique(name: str, key: str, values: list[str]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise ProblemError(f"{name}[{index}].{key}", f"duplicate {key} {value!r}")
        seen.add(value)


@dataclass(frozen=True, eq=False)
class FlexOrderProblem:
    """The flex needed per ISP of a day (its length is the day's ISP count: 96, or 92 and
    100 on DST days) and the open offers for it."""

    needed_w: np.ndarray
    offers: tuple[FlexOrderOffer, ...] = ()
    solver: SolveOptions = field(default_factory=SolveOptions)

    def __post_init__(self) -> None:
        need = series("needed_w", self.needed_w, None, low=0.0)
        object.__setattr__(self, "needed_w", need)
        offers = _members("offers", self.offers, FlexOrderOffer)
        object.__setattr__(self, "offers", offers)
        _unique("offers", "id", [o.id for o in offers])
        options = sum(len(o.options) for o in offers)
        check_count("offers", options, MAX_ASSETS, "options")
        check_count("offers", options * need.size, MAX_CELLS, "option ISP values")
        for o, offer in enumerate(offers):
            for j, option in enumerate(offer.options):
                if option.flex_w.size != need.size:
                    raise ProblemError(
                        f"offers[{o}].options[{j}].flex_w",
                        f"has {option.flex_w.size} values, expected one per ISP ({need.size})",
                    )
        if not isinstance(self.solver, SolveOptions):
            raise ProblemError("solver", "must be a SolveOptions")

    @property
    def isps(self) -> int:
        return int(self.needed_w.size)


class FlexOrderPlanStatus(StrEnum):
    OPTIMAL = "optimal"  # every need covered, at the least cost
    INFEASIBLE = "infeasible"  # no choice covers every need: the best cover, cheapest
    TIME_LIMIT = "time_limit"  # stopped by the limit: the best choice found (see shortfall_w)
    FAILED = "failed"  # the solver failed: nothing ordered, `message` says why


@dataclass(frozen=True)
class OrderedOption:
    """One FlexOrder to send: the offer, its option, the factor (2 decimals) and the
    order's price (option price * factor, 4 decimals)."""

    offer_id: str
    option_reference: str
    activation_factor: Decimal
    price: Decimal


@dataclass(frozen=True, eq=False)
class FlexOrderPlan:
    """covered_w: the reduction the orders deliver per ISP (every ISP, need or not);
    shortfall_w: the need they leave, per ISP (0 where there is no need)."""

    status: FlexOrderPlanStatus
    solver_status: str
    message: str
    orders: tuple[OrderedOption, ...]
    covered_w: np.ndarray
    shortfall_w: np.ndarray
    total_cost: Decimal
    timings: Timings

    @property
    def covers(self) -> bool:
        """Every need met."""
        return not bool(self.shortfall_w.any())


@dataclass(frozen=True, eq=False)
class _Options:
    """The options of every offer in one row each: offer index, reference, price,
    least hundredths and flex (J, n) in watts."""

    offer: np.ndarray
    refs: list[tuple[str, str]]
    price: list[Decimal]
    least: np.ndarray
    flex_w: np.ndarray

    @classmethod
    def of(cls, problem: FlexOrderProblem) -> _Options:
        rows = [
            (o, offer, option) for o, offer in enumerate(problem.offers) for option in offer.options
        ]
        flex = np.array([r[2].flex_w for r in rows]).reshape(len(rows), problem.isps)
        return cls(
            offer=np.array([r[0] for r in rows], dtype=np.int64),
            refs=[(r[1].id, r[2].reference) for r in rows],
            price=[r[2].price for r in rows],
            least=np.array([int(r[2].min_activation_factor * HUNDREDTHS) for r in rows]),
            flex_w=flex,
        )

    @property
    def size(self) -> int:
        return len(self.refs)


@dataclass
class _Model:
    """The HiGHS model and where its columns sit: ordered (binary), hundredths (integer),
    shortfall per needed ISP (kW)."""

    highs: highspy.Highs
    ordered: np.ndarray
    hundredths: np.ndarray
    shortfall: np.ndarray
    cost: np.ndarray  # the cost row of the ordered and hundredths columns together


@dataclass
class _Rows:
    """Row bounds and (row, column, value) triplets, added block by block."""

    lower: list[np.ndarray] = field(default_factory=list)
    upper: list[np.ndarray] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    size: int = 0

    def add(self, count: int, lower: float | np.ndarray, upper: float | np.ndarray) -> np.ndarray:
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (count,)))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (count,)))
        self.size += count
        return np.arange(self.size - count, self.size)

    def coef(self, rows: np.ndarray, cols: np.ndarray, values: float | np.ndarray) -> None:
        self.rows.append(rows)
        self.cols.append(cols)
        self.values.append(np.broadcast_to(np.asarray(values, dtype=np.float64), rows.shape))

    def matrix(self, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start, index, value) of the column-wise matrix."""
        row = np.concatenate(self.rows).astype(np.int64)
        col = np.concatenate(self.cols).astype(np.int64)
        value = np.concatenate(self.values)
        order = np.argsort(col * max(self.size, 1) + row, kind="stable")
        start = np.zeros(columns + 1, dtype=np.int32)
        np.cumsum(np.bincount(col, minlength=columns), out=start[1:])
        return start, row[order].astype(np.int32), value[order]


def _cover_rows(
    options: _Options, needed: np.ndarray, need_w: np.ndarray, at: _Model, rows: _Rows
) -> None:
    """sum_j flex_kw[j, i] / 100 * hundredths_j + shortfall_i >= need_i, per needed ISP."""
    cover = rows.add(needed.size, need_w[needed] / W_PER_KW, INF)
    option, isp = np.nonzero(options.flex_w[:, needed])
    rows.coef(
        cover[isp],
        at.hundredths[option],
        options.flex_w[option, needed[isp]] / W_PER_KW / HUNDREDTHS,
    )
    rows.coef(cover, at.shortfall, 1.0)


def _activation_rows(options: _Options, at: _Model, rows: _Rows) -> None:
    """least_j * ordered_j <= hundredths_j <= 100 * ordered_j; at most one option per offer."""
    least = rows.add(options.size, 0.0, INF)
    rows.coef(least, at.hundredths, 1.0)
    rows.coef(least, at.ordered, -options.least.astype(np.float64))
    most = rows.add(options.size, -INF, 0.0)
    rows.coef(most, at.hundredths, 1.0)
    rows.coef(most, at.ordered, -float(HUNDREDTHS))
    offers = np.unique(options.offer)
    mutex = rows.add(offers.size, -INF, 1.0)
    rows.coef(mutex[np.searchsorted(offers, options.offer)], at.ordered, 1.0)


def _build(options: _Options, need_w: np.ndarray, solver: SolveOptions) -> _Model:
    size = options.size
    needed = np.flatnonzero(need_w > 0)
    price = np.array([float(p) for p in options.price]) / HUNDREDTHS
    cost = np.concatenate([np.full(size, PER_ORDER_EUR), price + PER_HUNDREDTH_EUR])
    at = _Model(
        highspy.Highs(),
        ordered=np.arange(size),
        hundredths=size + np.arange(size),
        shortfall=2 * size + np.arange(needed.size),
        cost=cost,
    )
    rows = _Rows()
    _cover_rows(options, needed, need_w, at, rows)
    _activation_rows(options, at, rows)
    columns = 2 * size + needed.size
    # no cap on a shortfall at its need: load moved into a needed ISP can leave more
    upper = np.concatenate(
        [np.ones(size), np.full(size, float(HUNDREDTHS)), np.full(needed.size, INF)]
    )
    integrality = np.concatenate(
        [np.ones(2 * size, dtype=np.int32), np.zeros(needed.size, dtype=np.int32)]
    )
    start, index, value = rows.matrix(columns)
    highs = at.highs
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("mip_rel_gap", float(solver.mip_rel_gap))
    highs.setOptionValue("threads", int(solver.threads))
    highs.passModel(
        columns,
        rows.size,
        int(value.size),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        np.concatenate([cost, np.zeros(needed.size)]),
        np.zeros(columns),
        upper,
        np.concatenate(rows.lower),
        np.concatenate(rows.upper),
        start,
        index,
        value,
        integrality,
    )
    return at


@dataclass(frozen=True, eq=False)
class _Run:
    proven: bool  # optimal within the gap
    infeasible: bool
    status: str
    x: np.ndarray | None  # None: no primal feasible solution
    solve_s: float


_INFEASIBLE = (
    highspy.HighsModelStatus.kInfeasible,
    highspy.HighsModelStatus.kUnboundedOrInfeasible,
)


def _run(model: _Model, deadline: float) -> _Run:
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return _Run(False, False, "Time limit reached", None, 0.0)
    highs = model.highs
    highs.setOptionValue("time_limit", remaining)
    started = time.perf_counter()
    fresh_scheduler()  # so that this solve's `threads` holds (highs_threads.py)
    highs.run()
    solve_s = time.perf_counter() - started
    status = highs.getModelStatus()
    found = highs.getInfo().primal_solution_status == highspy.kSolutionStatusFeasible
    x = np.asarray(highs.getSolution().col_value, dtype=np.float64) if found else None
    return _Run(
        proven=found and status == highspy.HighsModelStatus.kOptimal,
        # the model is bounded: "infeasible or unbounded" (from presolve) is infeasible
        infeasible=status in _INFEASIBLE,
        status=highs.modelStatusToString(status),
        x=x,
        solve_s=solve_s,
    )


def _columns(model: _Model, which: np.ndarray, lower: object, upper: object) -> None:
    count = which.size
    model.highs.changeColsBounds(
        count,
        which.astype(np.int32),
        np.broadcast_to(np.asarray(lower, dtype=np.float64), (count,)).copy(),
        np.broadcast_to(np.asarray(upper, dtype=np.float64), (count,)).copy(),
    )


def _costs(model: _Model, which: np.ndarray, cost: np.ndarray) -> None:
    model.highs.changeColsCost(which.size, which.astype(np.int32), cost.astype(np.float64))


def _can_cover(options: _Options, need_w: np.ndarray) -> bool:
    """Every need within what the offers could give at most (each offer's best option per
    ISP, at factor 1.00): if not, no choice covers and the full-cover solve is skipped."""
    best = np.zeros((int(options.offer.max()) + 1, need_w.size))  # offers with options only
    np.maximum.at(best, options.offer, np.clip(options.flex_w, 0.0, None))
    return bool((best.sum(axis=0) >= need_w).all())


@dataclass
class _Outcome:
    status: FlexOrderPlanStatus
    solver_status: str
    message: str
    x: np.ndarray | None
    solve_s: float = 0.0


def _best_cover(model: _Model, deadline: float, outcome: _Outcome) -> _Outcome:
    """Least total shortfall first, then the cheapest choice with that shortfall."""
    everything = np.concatenate([model.ordered, model.hundredths])
    _columns(model, model.shortfall, 0.0, INF)
    _costs(model, everything, np.zeros(everything.size))
    _costs(model, model.shortfall, np.ones(model.shortfall.size))
    least = _run(model, deadline)
    outcome.solve_s += least.solve_s
    if least.x is None:
        outcome.status = FlexOrderPlanStatus.TIME_LIMIT
        outcome.solver_status = least.status
        outcome.message = f"no choice found within the time limit: {least.status}"
        return outcome
    short = float(least.x[model.shortfall].sum())
    cap = short * (1 + 1e-9) + 1e-6  # kW: the least shortfall, with the solver's slack
    model.highs.addRow(
        -INF,
        cap,
        model.shortfall.size,
        model.shortfall.astype(np.int32),
        np.ones(model.shortfall.size),
    )
    _costs(model, everything, model.cost)
    _costs(model, model.shortfall, np.zeros(model.shortfall.size))
    # the least-shortfall choice is a start: the second solve begins with an incumbent
    columns = np.arange(least.x.size, dtype=np.int32)
    model.highs.setSolution(least.x.size, columns, least.x)
    cheapest = _run(model, deadline)
    outcome.solve_s += cheapest.solve_s
    best = cheapest if cheapest.x is not None else least
    proven = least.proven and cheapest.proven
    outcome.status = FlexOrderPlanStatus.INFEASIBLE if proven else FlexOrderPlanStatus.TIME_LIMIT
    outcome.solver_status = best.status
    outcome.x = best.x
    outcome.message = "no choice covers every need: the least shortfall, at the least cost"
    if not proven:
        outcome.message += f" ({least.status} / {cheapest.status}: not proven)"
    return outcome


def _decide(
    problem: FlexOrderProblem, options: _Options, model: _Model, deadline: float
) -> _Outcome:
    outcome = _Outcome(FlexOrderPlanStatus.INFEASIBLE, "Infeasible", "", None)
    if _can_cover(options, problem.needed_w):
        _columns(model, model.shortfall, 0.0, 0.0)
        full = _run(model, deadline)
        outcome.solve_s = full.solve_s
        if full.x is not None:
            status = FlexOrderPlanStatus.OPTIMAL if full.proven else FlexOrderPlanStatus.TIME_LIMIT
            message = (
                "" if full.proven else f"{full.status}: best choice found, not proven cheapest"
            )
            return _Outcome(status, full.status, message, full.x, full.solve_s)
        if not full.infeasible and deadline <= time.perf_counter():
            outcome.status = FlexOrderPlanStatus.TIME_LIMIT
            outcome.solver_status = full.status
            outcome.message = f"no choice found within the time limit: {full.status}"
            return outcome
        if not full.infeasible:
            return _Outcome(FlexOrderPlanStatus.FAILED, full.status, f"solver: {full.status}", None)
    return _best_cover(model, deadline, outcome)


def _plan(
    problem: FlexOrderProblem, options: _Options, outcome: _Outcome, timings: Timings
) -> FlexOrderPlan:
    hundredths = np.zeros(options.size, dtype=np.int64)
    if outcome.x is not None and options.size:
        ordered = outcome.x[: options.size] > 0.5
        steps = np.rint(outcome.x[options.size : 2 * options.size]).astype(np.int64)
        hundredths = np.where(ordered, np.clip(steps, options.least, HUNDREDTHS), 0)
    orders = []
    for j in np.flatnonzero(hundredths):
        factor = (Decimal(int(hundredths[j])) / HUNDREDTHS).quantize(FACTOR_PLACES)
        price = (options.price[j] * factor).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)
        orders.append(OrderedOption(options.refs[j][0], options.refs[j][1], factor, price))
    covered = hundredths @ options.flex_w / HUNDREDTHS if options.size else np.zeros(problem.isps)
    need = problem.needed_w
    shortfall = np.where(need > 0, np.clip(need - covered, 0.0, None), 0.0)
    shortfall[shortfall < SHORTFALL_TOLERANCE_W] = 0.0
    return FlexOrderPlan(
        status=outcome.status,
        solver_status=outcome.solver_status,
        message=outcome.message,
        orders=tuple(orders),
        covered_w=frozen(covered + 0.0),  # + 0.0: no -0.0 in a plan
        shortfall_w=frozen(shortfall),
        total_cost=sum((o.price for o in orders), Decimal("0.0000")),
        timings=timings,
    )


def _nothing_to_solve(problem: FlexOrderProblem) -> _Outcome | None:
    if not (problem.needed_w > 0).any():
        return _Outcome(FlexOrderPlanStatus.OPTIMAL, "", "no need: nothing to order", None)
    if not problem.offers:
        return _Outcome(FlexOrderPlanStatus.INFEASIBLE, "", "no offers: nothing to order", None)
    return None


def _solve(problem: FlexOrderProblem, started: float) -> FlexOrderPlan:
    deadline = started + problem.solver.time_limit_s
    options = _Options.of(problem)
    trivial = _nothing_to_solve(problem)
    if trivial is not None:
        return _plan(problem, options, trivial, Timings(build_s=time.perf_counter() - started))
    model = _build(options, problem.needed_w, problem.solver)
    built = time.perf_counter()
    outcome = _decide(problem, options, model, deadline)
    extracting = time.perf_counter()
    plan = _plan(problem, options, outcome, Timings())
    timings = Timings(built - started, outcome.solve_s, time.perf_counter() - extracting)
    return replace(plan, timings=timings)


def solve_flex_orders(problem: FlexOrderProblem) -> FlexOrderPlan:
    """The cheapest orders that cover every need, else the best cover; never an exception."""
    started = time.perf_counter()
    try:
        return _solve(problem, started)
    except Exception as exc:  # a DSO gets a plan that orders nothing, never a traceback
        empty = np.zeros(problem.isps)
        need = np.asarray(problem.needed_w, dtype=np.float64)
        return FlexOrderPlan(
            status=FlexOrderPlanStatus.FAILED,
            solver_status="",
            message=f"solve failed: {type(exc).__name__}: {exc}",
            orders=(),
            covered_w=frozen(empty),
            shortfall_w=frozen(np.where(need > 0, need, 0.0)),
            total_cost=Decimal("0.0000"),
            timings=Timings(build_s=time.perf_counter() - started),
        )
