"""Run-time values in vectors: `{{name}}` placeholders and `$repeat` lists.

A string may hold any number of `{{expression}}` placeholders; each is replaced by the text of
its value. A string that is one placeholder and nothing else takes the value itself (so a
number stays a number). Expressions:

- a variable: `peer_url`, `run_id`, `request_id`, `token_b`, `cred.ocmp.username` (a path into
  the credentials file), a value captured by an earlier vector (`oscp_token`), a `let` of the
  vector, or inside a `$repeat` item its `i`, `n`, `t` and `t_end`;
- a time: `now`, `q0` (the start of the quarter hour after the next one, fixed for the run) or
  `day0` (today 00:00 UTC), optionally followed by offsets such as `+15m`, `-1h`, `+2d`,
  `+90s`: an RFC 3339 UTC time with `Z` (`{{q0+1h}}`);
- `uuid` (one per vector) or `uuid:name` (one per name per vector);
- `basic:USER:PASSWORD` with two variables: an HTTP basic Authorization value.

`{"$repeat": {"count": 96, "start": "{{q0}}", "step": "15m", "item": {...}}}` stands for a
list of `count` copies of `item`, the k-th with `i` = k, `n` = k + 1 (a 1-based number, as
UFTP's ISPs count), `t` = start + k x step and `t_end` = t + step (the blocks of a forecast);
`count` may be a placeholder that names a whole number.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_TIME = re.compile(r"^(now|q0|day0)((?:\s*[+-]\s*\d+(?:\.\d+)?\s*[smhd])*)$")
_OFFSET = re.compile(r"([+-])\s*(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class TemplateError(ValueError):
    """A placeholder that names nothing, or a malformed `$repeat`."""


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with `Z`; microseconds only when there are any."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_duration(text: str) -> timedelta:
    """`15m`, `1h`, `90s`, `1d` -> timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise TemplateError(f"{text!r} is not a duration like 15m, 1h, 90s or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with `Z` or an offset (what a `{{q0}}` placeholder became)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TemplateError(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise TemplateError(f"{text!r} has no UTC offset")
    return moment


class Clock:
    """The run's reference times, fixed when the run starts."""

    def __init__(self, now: datetime | None = None) -> None:
        self.started = (now or datetime.now(UTC)).astimezone(UTC)
        quarter = self.started.replace(
            minute=self.started.minute - self.started.minute % 15, second=0, microsecond=0
        )
        self.q0 = quarter + timedelta(minutes=30)
        self.day0 = self.started.replace(hour=0, minute=0, second=0, microsecond=0)

    def time(self, expression: str) -> datetime | None:
        match = _TIME.match(expression.strip())
        if not match:
            return None
        base = {
            "now": datetime.now(UTC),
            "q0": self.q0,
            "day0": self.day0,
        }[match.group(1)]
        for sign, amount, unit in _OFFSET.findall(match.group(2)):
            delta = timedelta(seconds=float(amount) * _UNITS[unit])
            base = base + delta if sign == "+" else base - delta
        return base


class Scope:
    """Variables visible to one vector: the run's, the vector's own, and a `$repeat` item's."""

    def __init__(self, clock: Clock, variables: Mapping[str, Any], credentials: Mapping) -> None:
        self.clock = clock
        self.variables = dict(variables)
        self.credentials = credentials
        self.uuids: dict[str, str] = {}

    def child(self, **more: Any) -> Scope:
        scope = Scope(self.clock, {**self.variables, **more}, self.credentials)
        scope.uuids = self.uuids
        return scope

    def lookup(self, expression: str) -> Any:
        name = expression.strip()
        if name in self.variables:
            return self.variables[name]
        if name == "uuid" or name.startswith("uuid:"):
            return self.uuids.setdefault(name, str(uuid.uuid4()))
        if name.startswith("cred."):
            value: Any = self.credentials
            for part in name[5:].split("."):
                if not isinstance(value, Mapping) or part not in value:
                    raise TemplateError(f"{{{{{name}}}}}: the credentials file has no {name[5:]}")
                value = value[part]
            return value
        if name.startswith("basic:"):
            parts = name.split(":")
            if len(parts) != 3:
                raise TemplateError(f"{{{{{name}}}}}: write basic:USER_VARIABLE:PASSWORD_VARIABLE")
            user, password = (str(self.lookup(p)) for p in parts[1:])
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        moment = self.clock.time(name)
        if moment is not None:
            return iso(moment)
        raise TemplateError(f"{{{{{name}}}}} names no variable")


def has_placeholder(value: Any) -> bool:
    return isinstance(value, str) and PLACEHOLDER.search(value) is not None


def render(value: Any, scope: Scope) -> Any:
    """`value` with every placeholder replaced and every `$repeat` expanded."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return scope.lookup(whole.group(1))
        return PLACEHOLDER.sub(lambda m: _text(scope.lookup(m.group(1))), value)
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, dict) and set(item) == {"$repeat"}:
                out.extend(_repeat(item["$repeat"], scope))
            else:
                out.append(render(item, scope))
        return out
    if isinstance(value, dict):
        if set(value) == {"$repeat"}:
            return _repeat(value["$repeat"], scope)
        return {
            render(k, scope) if has_placeholder(k) else k: render(v, scope)
            for k, v in value.items()
        }
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _repeat(spec: Any, scope: Scope) -> list[Any]:
    if not isinstance(spec, dict) or "count" not in spec or "item" not in spec:
        raise TemplateError("$repeat needs an object with count and item")
    count = render(spec["count"], scope)
    if not isinstance(count, int) or count < 0 or count > 100_000:
        raise TemplateError(f"$repeat count {count!r} is not a whole number 0-100000")
    start = parse_time(render(spec["start"], scope)) if "start" in spec else None
    step = parse_duration(spec.get("step", "15m"))
    items = []
    for k in range(count):
        local: dict[str, Any] = {"i": k, "n": k + 1}
        if start is not None:
            local["t"] = iso(start + k * step)
            local["t_end"] = iso(start + (k + 1) * step)
        items.append(render(spec["item"], scope.child(**local)))
    return items
