"""What a FlexOrder earns: per ISP the flex ordered, delivered and not delivered, and the
order's price, penalty and net amount (docs/protocols/uftp-3.1.md, "Settlement").

Powers are UFTP's, in watts, positive for consumption; an order's power has the direction
of the flex (negative: less consumption). Per ISP:

    OrderedFlexPower    the order's ISP power x its ActivationFactor ("Partial activation
                        applies to all ISPs in the offer and also to the offered price")
    realised            (ActualPower - BaselinePower), in the ordered direction
    DeliveredFlexPower  realised, at least 0 and at most the ordered flex, with the order's
                        sign ("the flexibility that is both acquired ... and delivered.
                        Passive contributions ... are not rewarded")
    PowerDeficiency     OrderedFlexPower - DeliveredFlexPower ("Amount of flex power sold
                        but not delivered")

An ISP with no baseline or no metering has nothing shown delivered: the missing figure is
taken equal to the other, so realised is 0 (both missing: both 0).

Per order:

    Price           the order's Price x ActivationFactor, 4 decimals half up ("the
                    settlement price is set to 80% of the original price in the offer")
    Penalty         Price x (sum of |PowerDeficiency| / sum of |OrderedFlexPower|), the
                    share of the ordered flex not delivered, 4 decimals half up
    NetSettlement   Price - Penalty ("Net settlement amount for this Period: Price minus
                    Penalty")

so the AGR is paid, at its own price, for the share it delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

_AMOUNT = Decimal("0.0001")
_WATT = Decimal(1)


@dataclass(frozen=True, slots=True)
class IspFigures:
    start: int
    baseline_w: int
    ordered_w: int
    actual_w: int
    delivered_w: int
    deficiency_w: int

    def stored(self) -> dict[str, int]:
        return {
            "start": self.start,
            "baseline_w": self.baseline_w,
            "ordered_w": self.ordered_w,
            "actual_w": self.actual_w,
            "delivered_w": self.delivered_w,
            "deficiency_w": self.deficiency_w,
        }


@dataclass(frozen=True, slots=True)
class Amounts:
    price: Decimal
    penalty: Decimal
    net: Decimal


def ordered_w(power_w: int, factor: Decimal) -> int:
    """An order ISP's power activated by `factor`, whole watts half away from zero."""
    return int((Decimal(power_w) * factor).quantize(_WATT, ROUND_HALF_UP))


def settle_isp(start: int, ordered: int, baseline: int | None, actual: int | None) -> IspFigures:
    if baseline is None:
        baseline = 0 if actual is None else actual
    if actual is None:
        actual = baseline
    direction = -1 if ordered < 0 else 1
    realised = (actual - baseline) * direction
    delivered = direction * min(max(realised, 0), abs(ordered))
    return IspFigures(start, baseline, ordered, actual, delivered, ordered - delivered)


def amounts(price: Decimal, factor: Decimal, isps: Sequence[IspFigures]) -> Amounts:
    due = (price * factor).quantize(_AMOUNT, ROUND_HALF_UP)
    ordered = sum(abs(i.ordered_w) for i in isps)
    missing = sum(abs(i.deficiency_w) for i in isps)
    penalty = Decimal(0) if ordered == 0 else due * Decimal(missing) / Decimal(ordered)
    penalty = penalty.quantize(_AMOUNT, ROUND_HALF_UP)
    return Amounts(due, penalty, due - penalty)
