"""The CP-API on the wire: marshmallow schemas that decode and validate what arrives and
encode what we answer (assets, time series), and the wire types they share (`wire`).
Decisions: docs/protocols/cpapi-v1.md."""
