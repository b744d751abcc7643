"""OCMP 1.0 (docs/protocols/ocmp-1.0.md); the surface the adapter mounts."""

from protocols.ocmp.v1_0.surface import SURFACE

__all__ = ["SURFACE"]
