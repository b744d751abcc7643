"""UFTP 3.1 (Shapeshifter), flexbridge as the DSO (docs/protocols/uftp-3.1.md)."""

from protocols.uftp.v3_1.market import MARKET, Market
from protocols.uftp.v3_1.surface import surface

__all__ = ["MARKET", "Market", "surface"]
