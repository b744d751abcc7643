"""Bounded work per request: how much one inbound message may make the server do.

A request is refused before the work it asks for, not stopped halfway: each limit is checked
where the work is counted (values expanded into blocks, blocks a derivation lays out, values
a read lays out, items of a list, the time a message spans), and the refusal names the field
and the setting that bounds it. The adapter builds one `Limits` from its settings and lends
it to the protocols (`protocols.common.context.limits_of`); the table of every limit on every
surface is docs/operations.md, "Limits".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from store.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits an operator may set (adapter.settings names each `max_...`)."""

    # Blocks one request's values may become once bands are split, all items together
    # (28 years of quarter hours): CP-API saves and event-hub messages.
    blocks: int = 1_000_000
    # Blocks one request's Table 2 derivations may lay out, all of them together.
    derived_blocks: int = 1_000_000
    # Values or periods one CP-API Get may lay out or read, all its series together.
    answer_values: int = 1_000_000
    # Items of one CP-API list save (SaveAssetListV1, SaveTimeSeriesListForEntitiesV1).
    list_items: int = 10_000
    # The time one OCMP or OSCP message's readings or measurements may span.
    message_span: timedelta = timedelta(days=31)


# The setting that bounds each kind of work, named in every refusal.
BLOCKS = "max_blocks_per_request"
DERIVED_BLOCKS = "max_derived_blocks_per_request"
ANSWER_VALUES = "max_values_per_answer"
LIST_ITEMS = "max_list_items"
MESSAGE_SPAN = "max_message_span_days"


class OverLimit(ValidationError):
    """A request asking for more work than a limit allows; the reason names the setting."""


class Budget:
    """What one request may still spend of one limit: each piece of work takes its share
    before it is done, and the piece that would pass the limit is refused."""

    __slots__ = ("limit", "setting", "used")

    def __init__(self, limit: int, setting: str) -> None:
        self.limit, self.setting, self.used = limit, setting, 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def take(self, count: int, field: str, what: str) -> None:
        """Spend `count`, or refuse naming `field`: `what` says what would pass the limit
        ("blocks the values expand into"), the reason adds the limit and its setting."""
        self.check(count, field, what)
        self.used += count

    def check(self, count: int, field: str, what: str) -> None:
        """Refuse as `take` would, without spending: work that must fit but is counted
        otherwise (the stored blocks a read goes through to make its answer)."""
        if count > self.left:
            raise OverLimit(field, self.reason(what))

    def reason(self, what: str) -> str:
        return f"{what}: more than {self.limit:,} in one request (limit {self.setting})"


def blocks_budget(limits: Limits) -> Budget:
    return Budget(limits.blocks, BLOCKS)


def derived_budget(limits: Limits) -> Budget:
    return Budget(limits.derived_blocks, DERIVED_BLOCKS)


def answer_budget(limits: Limits) -> Budget:
    return Budget(limits.answer_values, ANSWER_VALUES)


def check_items(limits: Limits, count: int, field: str, what: str) -> None:
    """Refuse a list of more items than one request may hold."""
    if count > limits.list_items:
        raise OverLimit(
            field, f"{count:,} {what}: more than {limits.list_items:,} (limit {LIST_ITEMS})"
        )


def check_span(limits: Limits, first: datetime, last: datetime, field: str) -> None:
    """Refuse a message whose times run from `first` to `last` over more than the span."""
    if last - first > limits.message_span:
        days = limits.message_span / timedelta(days=1)
        raise OverLimit(field, f"the message spans more than {days:g} days (limit {MESSAGE_SPAN})")
