"""The one error an optimizer input can raise: which field is wrong, and why."""

from __future__ import annotations


class ProblemError(ValueError):
    """A value that cannot describe a problem. `field` names it the way the JSON does
    (`chargers[2].max_kw`), so a caller can point a peer at the exact spot."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def inside(self, prefix: str) -> ProblemError:
        """The same error seen from a containing object (`chargers[2]` + `max_kw`)."""
        return ProblemError(f"{prefix}.{self.field}", self.reason)


# A reason quotes at most this much of a value: the message stays one short line.
_SHOWN = 40


def shown(value: object) -> str:
    """A value as a reason quotes it: repr (so a newline stays on the line), cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."
