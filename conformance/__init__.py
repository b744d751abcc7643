"""The conformance kit: protocol vectors as data and a runner that checks any server over
HTTP (`flexbridge conformance`), peer simulators (`flexbridge simulate cpo|scada`), and the
helpers that provision and start flexbridge itself for them. docs/conformance.md.

The runner, the simulators and the vectors know the protocols only from the wire; only
`conformance.provision` (and `conformance.selftest`, which uses it) touches flexbridge's store.
"""
