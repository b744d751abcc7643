"""OSCP 2.0 (Open Smart Charging Protocol), docs/protocols/oscp-2.0.md."""
