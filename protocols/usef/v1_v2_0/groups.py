"""The connections (or sensors, markets) of a message and their values (A.1): singular and
plural keys alike (`connection`/`connections`, `value`/`values`), and `groups`, a list of
{connections, values} whose `start`, `duration` and `unit` come from the top level; a
message of one group may be flattened into the top level."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from protocols.usef.v1_v2_0.errors import UsefError


@dataclass(frozen=True, slots=True)
class Group:
    addresses: tuple[str, ...]
    values: tuple[float, ...] = ()


def plural(item: dict[str, Any], key: str) -> list[Any] | None:
    """`key` or `key`s, a single value as a list of one; None when neither is there."""
    value = item.get(f"{key}s", item.get(key))
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


def _addresses(item: dict[str, Any], key: str) -> tuple[str, ...]:
    found = plural(item, key)
    if not found:
        raise UsefError("REQUIRED_INFO_MISSING", fields=f"['{key}']")
    if not all(isinstance(address, str) for address in found):
        raise UsefError("INVALID_DOMAIN", f"Each {key} must be a string.")
    return tuple(found)


def _values(item: dict[str, Any]) -> tuple[float, ...]:
    found = plural(item, "value")
    if not found or any(value is None for value in found):
        raise UsefError("PTUS_INCOMPLETE")
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in found
    ):
        raise UsefError("PTUS_INCOMPLETE", "Request includes empty or ill-formatted value(s).")
    return tuple(float(v) for v in found)


def groups_of(fields: dict[str, Any], key: str, *, with_values: bool) -> list[Group]:
    items = fields.get("groups")
    if items is None:
        items = [fields]
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise UsefError("REQUIRED_INFO_MISSING", fields="['groups']")
    return [Group(_addresses(item, key), _values(item) if with_values else ()) for item in items]
