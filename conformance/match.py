"""Comparing what came with what a vector expects, and saying readably where they differ.

`body_subset` semantics (`subset(expected, got)`):

- an object matches when every key it names is present in `got` with a matching value (other
  keys of `got` are ignored); with `keys="insensitive"` key names match in any letter case;
- a list matches a list of the same length, item by item;
- `{"$contains": [a, b]}` matches a list holding, for each of a, b, a distinct matching item;
- `{"$regex": "..."}` matches a string that `re.search` finds the pattern in;
- `{"$any": true}` matches any value that is present; `{"$absent": true}` (as the value of a
  key) matches only when the key is missing;
- `{"$approx": x, "tolerance": 1e-6}` matches a number within the tolerance of x;
- `{"$type": "string" | "number" | "integer" | "boolean" | "object" | "array" | "null"}`;
- `{"$time": {"after": T1, "before": T2}}` matches an RFC 3339 time (with `Z` or an offset)
  strictly between T1 and T2 (either bound may be left out);
- anything else matches by equality (1 == 1.0).

Every difference is a `Mismatch(path, expected, got, reason)`; `unified_diff` renders the
expected subset beside the same parts of what came, as a unified diff of pretty JSON.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
_MARKERS = {"$contains", "$regex", "$any", "$absent", "$approx", "$type", "$time"}


@dataclass(frozen=True, slots=True)
class Mismatch:
    path: str
    expected: Any
    got: Any
    reason: str

    def __str__(self) -> str:
        got = "<missing>" if self.got is MISSING else _short(self.got)
        return f"{self.path}: {self.reason} (expected {_short(self.expected)}, got {got})"


def _short(value: Any, limit: int = 160) -> str:
    text = value if value is MISSING else json.dumps(value, ensure_ascii=False, default=str)
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _marker(value: Any) -> str | None:
    if isinstance(value, dict) and value and set(value) & _MARKERS:
        return next(k for k in value if k in _MARKERS)
    return None


def _find_key(got: dict, key: str, insensitive: bool) -> str | None:
    if key in got:
        return key
    if insensitive:
        lowered = key.lower()
        for name in got:
            if isinstance(name, str) and name.lower() == lowered:
                return name
    return None


def subset(expected: Any, got: Any, path: str = "$", *, keys: str = "exact") -> list[Mismatch]:
    """Where `got` departs from the `expected` subset (empty when it matches)."""
    insensitive = keys == "insensitive"
    marker = _marker(expected)
    if marker == "$any":
        return [] if got is not MISSING else [Mismatch(path, expected, got, "missing")]
    if got is MISSING:
        return [Mismatch(path, expected, got, "missing")]
    if marker == "$regex":
        pattern = expected["$regex"]
        if isinstance(got, str) and re.search(pattern, got):
            return []
        return [Mismatch(path, expected, got, f"does not match /{pattern}/")]
    if marker == "$type":
        wanted = _TYPES.get(expected["$type"], ())
        ok = isinstance(got, wanted) and not (
            isinstance(got, bool) and expected["$type"] in ("number", "integer")
        )
        return [] if ok else [Mismatch(path, expected, got, f"is not of type {expected['$type']}")]
    if marker == "$approx":
        tolerance = float(expected.get("tolerance", 1e-6))
        number = isinstance(got, int | float) and not isinstance(got, bool)
        if number and abs(got - float(expected["$approx"])) <= tolerance:
            return []
        return [Mismatch(path, expected["$approx"], got, f"not within {tolerance}")]
    if marker == "$contains":
        return _contains(expected["$contains"], got, path, keys)
    if marker == "$time":
        return _time(expected["$time"], got, path)
    if marker == "$absent":
        return [Mismatch(path, expected, got, "should be absent")]
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [Mismatch(path, expected, got, "expected an object")]
        out: list[Mismatch] = []
        for key, want in expected.items():
            found = _find_key(got, key, insensitive)
            child = f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][\w]*", key) else f"{path}[{key!r}]"
            if _marker(want) == "$absent":
                if found is not None:
                    out.append(Mismatch(child, "<absent>", got[found], "should be absent"))
                continue
            out.extend(subset(want, got[found] if found else MISSING, child, keys=keys))
        return out
    if isinstance(expected, list):
        if not isinstance(got, list):
            return [Mismatch(path, expected, got, "expected an array")]
        if len(expected) != len(got):
            return [
                Mismatch(path, expected, got, f"expected {len(expected)} items, got {len(got)}")
            ]
        out = []
        for n, (want, have) in enumerate(zip(expected, got, strict=True)):
            out.extend(subset(want, have, f"{path}[{n}]", keys=keys))
        return out
    if _equal(expected, got):
        return []
    return [Mismatch(path, expected, got, "differs")]


def _equal(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    return expected == got


def _contains(wanted: list[Any], got: Any, path: str, keys: str) -> list[Mismatch]:
    if not isinstance(got, list):
        return [Mismatch(path, {"$contains": wanted}, got, "expected an array")]
    used: set[int] = set()
    out = []
    for want in wanted:
        hit = next(
            (
                n
                for n, have in enumerate(got)
                if n not in used and not subset(want, have, keys=keys)
            ),
            None,
        )
        if hit is None:
            out.append(Mismatch(f"{path}[*]", want, got, "no item of the array matches"))
        else:
            used.add(hit)
    return out


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text.strip()))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _time(bounds: dict[str, str], got: Any, path: str) -> list[Mismatch]:
    moment = _instant(got)
    if moment is None:
        return [Mismatch(path, {"$time": bounds}, got, "is not an RFC 3339 time with an offset")]
    after, before = _instant(bounds.get("after")), _instant(bounds.get("before"))
    if after is not None and moment <= after:
        return [Mismatch(path, {"$time": bounds}, got, f"is not after {bounds['after']}")]
    if before is not None and moment >= before:
        return [Mismatch(path, {"$time": bounds}, got, f"is not before {bounds['before']}")]
    return []


def project(expected: Any, got: Any, keys: str = "exact") -> Any:
    """The parts of `got` that `expected` speaks of, in its shape (for a focused diff)."""
    if got is MISSING:
        return "<missing>"
    if _marker(expected):
        return got
    if isinstance(expected, dict) and isinstance(got, dict):
        out = {}
        for key, want in expected.items():
            found = _find_key(got, key, keys == "insensitive")
            if _marker(want) == "$absent":
                if found is not None:
                    out[key] = got[found]
                continue
            out[key] = project(want, got[found], keys) if found is not None else "<missing>"
        return out
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [project(w, g, keys) for w, g in zip(expected, got, strict=True)]
    return got


def _describe(expected: Any) -> Any:
    """A marker as a reader would say it."""
    marker = _marker(expected)
    if marker == "$regex":
        return f"<a string matching /{expected['$regex']}/>"
    if marker == "$type":
        return f"<any {expected['$type']}>"
    if marker == "$approx":
        return expected["$approx"]
    if marker == "$any":
        return "<present>"
    if marker == "$absent":
        return "<absent>"
    if marker == "$time":
        bounds = expected["$time"]
        return f"<a time after {bounds.get('after', '-')} and before {bounds.get('before', '-')}>"
    if isinstance(expected, dict):
        return {k: _describe(v) for k, v in expected.items()}
    if isinstance(expected, list):
        return [_describe(v) for v in expected]
    return expected


def expected_view(expected: Any, got: Any, keys: str = "exact") -> Any:
    """What `got` would be if it matched `expected`: the parts that match are taken from
    `got`, the others from `expected` - so a diff against `project` shows only differences."""
    if not subset(expected, got, keys=keys):
        return project(expected, got, keys)
    marker = _marker(expected)
    if marker == "$contains" and isinstance(got, list):
        missing = [
            w for w in expected["$contains"] if not any(not subset(w, g, keys=keys) for g in got)
        ]
        return [*got, *(_describe(w) for w in missing)]
    if marker or got is MISSING:
        return _describe(expected)
    if isinstance(expected, dict) and isinstance(got, dict):
        out = {}
        for key, want in expected.items():
            found = _find_key(got, key, keys == "insensitive")
            if _marker(want) == "$absent":
                continue
            out[key] = expected_view(want, got[found] if found is not None else MISSING, keys)
        return out
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [expected_view(w, g, keys) for w, g in zip(expected, got, strict=True)]
    return _describe(expected)


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).splitlines()


def unified_diff(expected: Any, got: Any, keys: str = "exact", label: str = "body") -> str:
    """A unified diff of the expected subset against the matching parts of what came."""
    lines = difflib.unified_diff(
        _pretty(expected_view(expected, got, keys)),
        _pretty(project(expected, got, keys)),
        fromfile=f"expected {label}",
        tofile=f"got {label}",
        lineterm="",
        n=2,
    )
    return "\n".join(lines)


def pretty(value: Any, limit: int = 2000) -> str:
    text = "\n".join(_pretty(value))
    return text if len(text) <= limit else text[:limit] + "\n... (cut)"
