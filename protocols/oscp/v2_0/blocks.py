"""OSCP 2.0 forecasted blocks as the store keeps capacity: kW on the 15-minute grid.

A block's capacity is a magnitude in A (per phase), W, KW, WH or KWH. Power and current
convert as protocols.common.capacity does (Amps with the group's NominalVoltage, PhaseCount
and PowerFactor, whatever the block's `phase` says). An energy over a block is its mean power:
WH or KWH divided by the block's length in hours (docs/protocols/oscp-2.0.md, "Units").
Each block is then laid onto the quarter hours it covers; a block off that grid is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from protocols.common.capacity import Block, quarter_hours, to_kw
from protocols.oscp.v2_0.times import timestamp
from store.entities import Entity
from store.errors import FieldIssue, ValidationError

HOUR = timedelta(hours=1)
SPAN = timedelta(days=31)  # the most one message may cover, all its blocks together
_ENERGY_PER_KWH = {"WH": 1000.0, "KWH": 1.0}


def _kw(group: Entity, capacity: float, unit: str, length: timedelta, where: str) -> float:
    if unit in _ENERGY_PER_KWH:
        kw = capacity / _ENERGY_PER_KWH[unit] / (length / HOUR)
    else:
        kw = to_kw(group, capacity, unit)
    if not math.isfinite(kw):
        raise ValidationError(f"{where}.capacity", "too large")
    return kw


def blocks_of(
    group: Entity, items: Sequence[dict[str, Any]], field: str = "forecasted_blocks"
) -> list[Block]:
    """Every wire block in kW quarter hours, in time order; ValidationError naming every bad
    block (and nothing converted) when any is bad."""
    blocks: list[Block] = []
    issues: list[FieldIssue] = []
    covered = timedelta(0)
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        try:
            start = timestamp(item["start_time"], f"{where}.start_time")
            end = timestamp(item["end_time"], f"{where}.end_time")
            if end <= start:
                raise ValidationError(f"{where}.end_time", "must be after start_time")
            covered += end - start
            if covered > SPAN:
                raise ValidationError(
                    f"{where}.end_time", f"the blocks cover more than {SPAN.days} days"
                )
            kw = _kw(group, float(item["capacity"]), item["unit"], end - start, where)
            blocks.extend(quarter_hours(start, end, kw, where))
        except ValidationError as exc:
            issues.extend(
                FieldIssue(i.field if i.field.startswith(field) else f"{where}.{i.field}", i.reason)
                for i in exc.issues
            )
    if issues:
        raise ValidationError(issues=issues)
    return sorted(blocks, key=lambda b: b.start)


def reply_unit(items: Sequence[dict[str, Any]]) -> str:
    """The unit our OPTIMUM answers in: A when the peer spoke Amps, else KW."""
    return "A" if items[0]["unit"] == "A" else "KW"


def reply_phase(items: Sequence[dict[str, Any]]) -> str:
    return items[0]["phase"]
