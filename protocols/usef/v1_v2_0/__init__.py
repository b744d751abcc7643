"""The USEF API of FlexMeasures 0.3, versions v1 to v2_0: one package, as the versions
differ by which endpoints they have and how they read belief timing (versions.py)."""

from protocols.usef.v1_v2_0.naming import NAMING, Naming
from protocols.usef.v1_v2_0.root import TOKEN_TTL
from protocols.usef.v1_v2_0.surface import SURFACE

__all__ = ["NAMING", "SURFACE", "TOKEN_TTL", "Naming"]
