"""The hub: what every protocol needs and none owns (docs/architecture.md).

Protocol-free and wire-free: planning a group and fanning the plan out to every protocol's
hook (`planning`), group capacity and the optimum bookkeeping (`capacity`, `optimum`), what
makes a plan stale (`replan`), the Table 2 derivations (`derivations`), how peers name
entities (`ids`), typed peer state and the link kept with a peer (`peer_state`,
`peer_link`, `fallbacks`), the outbound send path (`outbound`) and the one way an inbound
message is opened (`inbound`). Protocols call in; the hub calls only `store` and
`optimizer`.
"""
