"""JSON <-> problems and plans, for the CLI and for the server (docs/optimizer.md, JSON).

Times: ISO 8601 with an offset ("2026-01-01T00:00:00+00:00" or "...Z"); the horizon is
`start` + `resolution` (ISO 8601 duration, default "PT15M") + one value per block in every
per-block array (the price array sets the number of blocks; a number instead of an array
means the same value in every block). Unknown fields are errors, so a typo is not ignored.
Errors are ProblemError naming the field as the JSON spells it: `chargers[2].deadline`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import isodate
import numpy as np

from optimizer.assets import Battery, Charger
from optimizer.checks import number, per_block
from optimizer.errors import ProblemError, shown
from optimizer.limits import (
    MAX_ASSETS,
    MAX_BLOCKS,
    MAX_DIGITS,
    check_blocks,
    check_count,
    check_horizon,
)
from optimizer.options import Penalties, SolveOptions
from optimizer.plans import GroupPlan, Relaxation, StoragePlan, Timings
from optimizer.problems import GroupProblem, SocTarget, StorageProblem
from optimizer.units import amps_to_kw

_T = TypeVar("_T")

DEFAULT_RESOLUTION = "PT15M"
# Plans print kW and kWh to the watt-hour's thousandth; more digits are solver noise.
DIGITS = 6


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ProblemError("input", f"has an integer of more than {MAX_DIGITS} digits")
    return int(text)


def read_json(text: str) -> Any:
    """JSON text -> data, every refusal a ProblemError of the field `input`. json.loads
    alone raises RecursionError on deep nesting and ValueError on very long integers."""
    try:
        return json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise ProblemError("input", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ProblemError("input", "not valid JSON here: nested too deeply to read") from None


class _Fields:
    """One JSON object being read: remembers the path and which keys were used."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ProblemError(path or "input", "must be a JSON object")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def need(self, key: str) -> Any:
        if key not in self.data:
            raise ProblemError(self.name(key), "is required")
        return self.get(key)

    def take(self, *keys: str) -> dict[str, Any]:
        """The keys present, for passing on to a constructor as they are."""
        return {key: self.get(key) for key in keys if key in self.data}

    def finish(self) -> None:
        for key in self.data:
            if key not in self.used:
                name = key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,39}", key) else shown(key)
                raise ProblemError(self.name(name), "unknown field")


# Constructor fields whose JSON spelling differs (the JSON gives times, not block numbers).
_JSON_NAMES = {"deadline_block": "deadline", "block": "datetime"}


def _json_field(field: str) -> str:
    return re.sub(r"[A-Za-z_]+", lambda m: _JSON_NAMES.get(m.group(0), m.group(0)), field)


def _build(path: str, make: Callable[..., _T], **kwargs: Any) -> _T:
    """Construct, reporting a constructor's field error under its JSON path and name."""
    try:
        return make(**kwargs)
    except ProblemError as exc:
        field = _json_field(exc.field)
        raise ProblemError(f"{path}.{field}" if path else field, exc.reason) from None


def parse_time(field: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise ProblemError(field, "must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ProblemError(field, f"{shown(value)} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise ProblemError(field, "needs a UTC offset (e.g. +00:00 or Z)")
    return parsed


def parse_duration(field: str, value: Any) -> timedelta:
    if not isinstance(value, str):
        raise ProblemError(field, "must be an ISO 8601 duration string such as PT15M")
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        raise ProblemError(field, f"{shown(value)} is not an ISO 8601 duration") from None
    except OverflowError:  # more days than a timedelta holds (999,999,999)
        raise ProblemError(field, f"{shown(value)} is too long (at most 1 day)") from None
    if not isinstance(parsed, timedelta):  # months and years have no fixed length
        raise ProblemError(field, "must not use years or months")
    if parsed <= timedelta(0):
        raise ProblemError(field, "must be positive")
    return parsed


def _blocks_between(start: datetime, moment: datetime, resolution: timedelta) -> float:
    return (moment - start) / resolution


def _options(data: Any, path: str) -> SolveOptions:
    fields = _Fields(data, path)
    kwargs = fields.take("time_limit_s", "mip_rel_gap", "threads", "engine", "aggregate")
    fields.finish()
    return _build(path, SolveOptions, **kwargs)


def _penalties(data: Any, path: str) -> Penalties:
    fields = _Fields(data, path)
    kwargs = fields.take("unmet_energy", "soc_target", "soc_bounds", "grid_limit")
    fields.finish()
    return _build(path, Penalties, **kwargs)


def _settings(fields: _Fields) -> dict[str, Any]:
    settings = fields.take("prefer_charging_sooner")
    if "penalties" in fields.data:
        settings["penalties"] = _penalties(fields.get("penalties"), "penalties")
    if "solver" in fields.data:
        settings["solver"] = _options(fields.get("solver"), "solver")
    return settings


def _grid_limit(fields: _Fields) -> Any:
    """grid_limit_kw, or grid_limit_a: per-phase amps with voltage, phases, power factor."""
    if ("grid_limit_kw" in fields.data) == ("grid_limit_a" in fields.data):
        raise ProblemError("grid_limit_kw", "give exactly one of grid_limit_kw, grid_limit_a")
    if "grid_limit_kw" in fields.data:
        return fields.get("grid_limit_kw")
    amps = _Fields(fields.get("grid_limit_a"), "grid_limit_a")
    value = amps.need("amps")
    connection = amps.take("voltage_v", "phases", "power_factor")
    amps.finish()
    if isinstance(value, list):
        for index, item in enumerate(value):
            number(f"grid_limit_a.amps[{index}]", item, low=0.0)
        current: Any = np.asarray(value, dtype=np.float64)
    else:
        current = number("grid_limit_a.amps", value, low=0.0)
    try:
        return amps_to_kw(current, **connection)
    except ProblemError as exc:
        raise exc.inside("grid_limit_a") from None


def _charger(data: Any, path: str, start: datetime, resolution: timedelta, blocks: int) -> Charger:
    fields = _Fields(data, path)
    kwargs = fields.take("id", "max_kw", "min_kw", "mode", "energy_kwh", "demand_kw", "connected")
    if "deadline" in fields.data:
        deadline = parse_time(fields.name("deadline"), fields.get("deadline"))
        if "energy_kwh" not in kwargs:
            raise ProblemError(fields.name("deadline"), "needs energy_kwh")
        after = _blocks_between(start, deadline, resolution)
        kwargs["deadline_block"] = int(min(max(math.floor(after + 1e-9), 0), blocks))
        if after > blocks and "max_kw" in kwargs:
            # Past the horizon: what full power after the horizon end cannot still deliver
            # is needed within it.
            later = (after - blocks) * resolution.total_seconds() / 3600.0
            energy = number(fields.name("energy_kwh"), kwargs["energy_kwh"], low=0.0)
            max_kw = number(fields.name("max_kw"), kwargs["max_kw"], low=0.0)
            kwargs["energy_kwh"] = max(0.0, energy - max_kw * later)
    fields.finish()  # a typo first: `maxkw` is an unknown field before max_kw is missing
    for key in ("id", "max_kw"):
        fields.need(key)
    return _build(path, Charger, **kwargs)


_BATTERY_FIELDS = (
    "id",
    "capacity_kwh",
    "soc_kwh",
    "max_charge_kw",
    "max_discharge_kw",
    "charge_efficiency",
    "discharge_efficiency",
    "threshold_min",
    "threshold_max",
    "threshold_end",
    "cost_charging",
    "cost_discharging",
)


def _battery(data: Any, path: str) -> Battery:
    fields = _Fields(data, path)
    for key in ("id", "capacity_kwh", "soc_kwh", "max_charge_kw", "max_discharge_kw"):
        fields.need(key)
    kwargs = fields.take(*_BATTERY_FIELDS)
    fields.finish()
    return _build(path, Battery, **kwargs)


def _list(fields: _Fields, key: str, most: int) -> list[Any]:
    items = fields.get(key, [])
    if not isinstance(items, list):
        raise ProblemError(key, "must be a list")
    check_count(key, len(items), most, "items")  # before building them one by one
    return items


def _horizon(fields: _Fields) -> tuple[datetime, timedelta, Any, int]:
    start = parse_time("start", fields.need("start"))
    resolution = parse_duration("resolution", fields.get("resolution", DEFAULT_RESOLUTION))
    price = fields.need("price_eur_per_kwh")
    if not isinstance(price, list) or not price:
        raise ProblemError("price_eur_per_kwh", "must be a non-empty array (one per block)")
    # Before any per-block work, and before targets and deadlines count blocks of it.
    check_blocks("price_eur_per_kwh", len(price))
    check_horizon(start, resolution, len(price))
    return start, resolution, price, len(price)


def group_problem_from_json(data: Any) -> GroupProblem:
    fields = _Fields(data, "")
    start, resolution, price, blocks = _horizon(fields)
    chargers = tuple(
        _charger(item, f"chargers[{i}]", start, resolution, blocks)
        for i, item in enumerate(_list(fields, "chargers", MAX_ASSETS))
    )
    batteries = tuple(
        _battery(item, f"batteries[{i}]")
        for i, item in enumerate(_list(fields, "batteries", MAX_ASSETS))
    )
    kwargs = fields.take("non_flexible_kw", "pv_kw", "export_price_eur_per_kwh")
    kwargs.update(_settings(fields))
    grid_limit = _grid_limit(fields)
    fields.finish()
    try:
        return _build(
            "",
            GroupProblem,
            start=start,
            resolution=resolution,
            price_eur_per_kwh=price,
            grid_limit_kw=grid_limit,
            chargers=chargers,
            batteries=batteries,
            **kwargs,
        )
    except ProblemError as exc:
        if "grid_limit_a" in fields.data and exc.field.startswith("grid_limit_kw"):
            # the JSON gave amps: point at them, not at the kW they became
            raise ProblemError("grid_limit_a.amps" + exc.field[13:], exc.reason) from None
        raise


def _target(data: Any, path: str, start: datetime, resolution: timedelta) -> SocTarget:
    fields = _Fields(data, path)
    moment = parse_time(fields.name("datetime"), fields.need("datetime"))
    soc = fields.need("soc_kwh")
    fields.finish()
    after = _blocks_between(start, moment, resolution)
    if after < 1 or abs(after - round(after)) > 1e-9:
        raise ProblemError(
            fields.name("datetime"), "must be a block boundary after start (start + k * resolution)"
        )
    return _build(path, SocTarget, block=round(after) - 1, soc_kwh=soc)


def storage_problem_from_json(data: Any) -> StorageProblem:
    fields = _Fields(data, "")
    start, resolution, price, _ = _horizon(fields)
    targets = tuple(
        _target(item, f"targets[{i}]", start, resolution)
        for i, item in enumerate(_list(fields, "targets", MAX_BLOCKS))
    )
    for key in ("soc_max_kwh", "max_charge_kw"):
        fields.need(key)
    kwargs = fields.take(
        "soc_max_kwh",
        "max_charge_kw",
        "max_discharge_kw",
        "soc_kwh",
        "soc_min_kwh",
        "roundtrip_efficiency",
        "production_price_eur_per_kwh",
    )
    kwargs.update(_settings(fields))
    fields.finish()
    return _build(
        "",
        StorageProblem,
        start=start,
        resolution=resolution,
        price_eur_per_kwh=price,
        targets=targets,
        **kwargs,
    )


# ---- out ---------------------------------------------------------------------------------


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def _settings_json(problem: GroupProblem | StorageProblem) -> dict[str, Any]:
    penalties, solver = problem.penalties, problem.solver
    return {
        "prefer_charging_sooner": problem.prefer_charging_sooner,
        "penalties": {
            "unmet_energy": penalties.unmet_energy,
            "soc_target": penalties.soc_target,
            "soc_bounds": penalties.soc_bounds,
            "grid_limit": penalties.grid_limit,
        },
        "solver": {
            "time_limit_s": solver.time_limit_s,
            "mip_rel_gap": solver.mip_rel_gap,
            "threads": solver.threads,
            "engine": str(solver.engine),
            "aggregate": solver.aggregate,
        },
    }


def _charger_json(charger: Charger, start: datetime, resolution: timedelta) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": charger.id,
        "max_kw": charger.max_kw,
        "min_kw": charger.min_kw,
        "mode": str(charger.mode),
    }
    if charger.energy_kwh is not None:
        item["energy_kwh"] = charger.energy_kwh
        if charger.deadline_block is not None:
            item["deadline"] = (start + charger.deadline_block * resolution).isoformat()
    if charger.demand_kw is not None:
        item["demand_kw"] = _floats(charger.demand_kw)
    if charger.connected is not None:
        item["connected"] = [bool(v) for v in charger.connected]
    return item


def group_problem_to_json(problem: GroupProblem) -> dict[str, Any]:
    """The JSON that group_problem_from_json reads back into an equal problem."""
    data: dict[str, Any] = {
        "start": problem.start.isoformat(),
        "resolution": isodate.duration_isoformat(problem.resolution),
        "price_eur_per_kwh": _floats(problem.price_eur_per_kwh),
        "grid_limit_kw": _floats(per_block(problem.grid_limit_kw)),
        "non_flexible_kw": _floats(per_block(problem.non_flexible_kw)),
        "pv_kw": _floats(per_block(problem.pv_kw)),
    }
    export = per_block(problem.export_price_eur_per_kwh)
    if export is not None:
        data["export_price_eur_per_kwh"] = _floats(export)
    data["chargers"] = [
        _charger_json(c, problem.start, problem.resolution) for c in problem.chargers
    ]
    data["batteries"] = [
        {key: getattr(b, key) for key in _BATTERY_FIELDS if getattr(b, key) is not None}
        for b in problem.batteries
    ]
    return {**data, **_settings_json(problem)}


def storage_problem_to_json(problem: StorageProblem) -> dict[str, Any]:
    """The JSON that storage_problem_from_json reads back into an equal problem."""
    data: dict[str, Any] = {
        "start": problem.start.isoformat(),
        "resolution": isodate.duration_isoformat(problem.resolution),
        "price_eur_per_kwh": _floats(problem.price_eur_per_kwh),
        "soc_kwh": problem.soc_kwh,
        "soc_min_kwh": problem.soc_min_kwh,
        "soc_max_kwh": problem.soc_max_kwh,
        "max_charge_kw": problem.max_charge_kw,
        "max_discharge_kw": problem.max_discharge_kw,
        "roundtrip_efficiency": problem.roundtrip_efficiency,
        "targets": [
            {
                "datetime": (problem.start + (t.block + 1) * problem.resolution).isoformat(),
                "soc_kwh": t.soc_kwh,
            }
            for t in problem.targets
        ],
    }
    production = per_block(problem.production_price_eur_per_kwh)
    if production is not None:
        data["production_price_eur_per_kwh"] = _floats(production)
    return {**data, **_settings_json(problem)}


def _numbers(values: np.ndarray) -> list[float]:
    return [round(float(v), DIGITS) + 0.0 for v in values]  # + 0.0 turns -0.0 into 0.0


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), DIGITS) + 0.0


def _horizon_json(plan: GroupPlan | StoragePlan) -> dict[str, Any]:
    return {
        "start": plan.start.isoformat(),
        "resolution": isodate.duration_isoformat(plan.resolution),
    }


def _outcome(plan: GroupPlan | StoragePlan) -> dict[str, Any]:
    return {
        "status": str(plan.status),
        "fallback": plan.fallback,
        "solver_status": plan.solver_status,
        "message": plan.message,
        "engine": plan.engine,
        "objective": _number(plan.objective),
        "cost_eur": _number(plan.cost_eur),
        "relaxations": [_relaxation(r) for r in plan.relaxations],
        "timings": _timings(plan.timings),
    }


def _relaxation(relaxation: Relaxation) -> dict[str, Any]:
    return {
        "kind": str(relaxation.kind),
        "amount_kwh": _number(relaxation.amount_kwh),
        "assets": list(relaxation.assets),
    }


def _timings(timings: Timings) -> dict[str, float]:
    return {
        "build_s": round(timings.build_s, 6),
        "solve_s": round(timings.solve_s, 6),
        "extract_s": round(timings.extract_s, 6),
    }


def group_plan_to_json(plan: GroupPlan) -> dict[str, Any]:
    chargers = []
    for charger in plan.chargers:
        item: dict[str, Any] = {"id": charger.id, "setpoint_kw": _numbers(charger.setpoint_kw)}
        if charger.on is not None:
            item["on"] = [bool(v) for v in charger.on]
        item["unmet_kwh"] = _number(charger.unmet_kwh)
        chargers.append(item)
    batteries = [
        {
            "id": battery.id,
            "setpoint_kw": _numbers(battery.setpoint_kw),
            "charge_kw": _numbers(battery.charge_kw),
            "discharge_kw": _numbers(battery.discharge_kw),
            "soc_kwh": _numbers(battery.soc_kwh),
        }
        for battery in plan.batteries
    ]
    return {
        "type": "group_plan",
        **_horizon_json(plan),
        **_outcome(plan),
        "capacity_kw": _numbers(plan.capacity_kw),
        "net_import_kw": _numbers(plan.net_import_kw),
        "flexibility_up_kw": _numbers(plan.flexibility_up_kw),
        "flexibility_down_kw": _numbers(plan.flexibility_down_kw),
        "chargers": chargers,
        "batteries": batteries,
    }


def storage_plan_to_json(plan: StoragePlan) -> dict[str, Any]:
    """Shaped like a USEF device message: start, duration, unit and the values (+ charging)."""
    return {
        "type": "storage_plan",
        **_horizon_json(plan),
        "duration": isodate.duration_isoformat(plan.resolution * plan.consumption_kw.size),
        "unit": "kW",
        "values": _numbers(plan.consumption_kw),
        "soc_kwh": _numbers(plan.soc_kwh),
        **_outcome(plan),
    }
