"""The USEF-style messaging of FlexMeasures 0.3: its API v1 to v2_0 (docs/protocols/usef-api.md)."""
