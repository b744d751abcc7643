"""OSCP 2.0 JSON Schemas (draft-07), written for flexbridge from the OSCP 2.0 field tables."""
