"""OCMP: the Open Capacity Management Protocol (flexbridge as the CMO)."""
