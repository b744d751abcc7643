"""The INVADE CP-API 1 (docs/protocols/cpapi-v1.md); the surfaces the adapter mounts."""

from protocols.cpapi.v1.surface import EVENT_HUB, SURFACE

__all__ = ["EVENT_HUB", "SURFACE"]
