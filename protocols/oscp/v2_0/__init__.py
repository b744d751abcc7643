"""OSCP 2.0 (docs/protocols/oscp-2.0.md); the surfaces the adapter mounts."""

from protocols.oscp.v2_0.surface import CO_SURFACE, CP_SURFACE

__all__ = ["CO_SURFACE", "CP_SURFACE"]
