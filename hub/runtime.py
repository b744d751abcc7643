"""What the running server lends the hub and the protocols: its public URL, the heartbeat it
asks of peers, the solver pool, the outbox and planner wake-ups, and the plan hooks and
optimum senders of every protocol.

The adapter builds one `Hub` at start-up; protocols reach it through
`protocols.common.context.hub_of(request)` and on the clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_link import HeartbeatLedger
from optimizer import GroupPlan, GroupProblem
from store.entities import Entity
from store.series import Series
from store.tenants import Tenant
from store.values import Point

if TYPE_CHECKING:  # hub.optimum needs the Hub too
    from hub.optimum import SendOptimum

# GroupProblem -> GroupPlan, off the event loop (the adapter's spawned process pool).
Solve = Callable[[GroupProblem], Awaitable[GroupPlan]]
# What a protocol does with each series of a plan the hub writes (CP-API: section 6).
PlanHook = Callable[[AsyncConnection, Tenant, Entity, Series, Sequence[Point]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Hub:
    public_url: str  # how peers reach this server, e.g. https://flexbridge.example
    heartbeat_seconds: float  # the heartbeat interval we ask of peers
    resend_after: timedelta  # optimal forecasts are re-sent on new inputs at most this often
    wake_outbox: Callable[[], None]  # after a commit that queued messages: send them now
    solve: Solve
    plan_hooks: tuple[PlanHook, ...] = ()
    # How each peer protocol sends a group's optimum (hub.optimum.SendOptimum), by the
    # protocol name of its peers.
    optimum_senders: Mapping[str, SendOptimum] = field(default_factory=dict)
    # After a commit that asked for plans: make them now (no-op where this process runs no
    # plan jobs; the processes that do find them at their next poll).
    wake_planner: Callable[[], None] = lambda: None
    # Groups with flexible assets are re-planned when their last optimum is this old (hub.replan);
    # None: only on new inputs.
    replan_every: timedelta | None = None
    # Heartbeats written in the last second, by account.
    heartbeats: HeartbeatLedger = field(default_factory=HeartbeatLedger)
