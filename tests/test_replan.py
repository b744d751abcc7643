"""hub.replan's schedule: groups with flexible assets are re-planned when their last optimum is
`Hub.replan_every` old, for the peers of any protocol (OCMP's and OSCP's clocks both call
`resend_changed`). The clock is the test's: `resend_changed` is called with chosen times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hub.capacity import Block, Limit, quarter, store_limit
from hub.optimum import Optimum, track
from hub.peer_state import edit
from hub.plan_jobs import make_plan
from hub.replan import resend_changed
from hub.runtime import Hub
from optimizer import GroupPlan, GroupProblem, solve_group
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.entities import add_connector, create_entity
from store.peers import add_peer
from store.plan_jobs import claim_plans
from store.references import ProtocolId, add_reference
from store.tenants import add_tenant

Q = timedelta(minutes=15)
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
HORIZON = timedelta(hours=2)


async def _solve(problem: GroupProblem) -> GroupPlan:
    return solve_group(problem)


def _hub(replan_every: timedelta | None) -> Hub:
    return Hub(
        public_url="http://flexbridge.test",
        heartbeat_seconds=900.0,
        resend_after=timedelta(minutes=5),
        wake_outbox=lambda: None,
        solve=_solve,
        replan_every=replan_every,
    )


async def _oscp_peer_tracking(db, charger_props):  # type: ignore[no-untyped-def]
    """An OSCP peer that sent limits for group g-1 (a site with one charger) 20 minutes ago."""
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "pilot")
        peer = await add_peer(tx, tenant, protocol="oscp", name="dso", base_url=None)
        site = await create_entity(tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "S"})
        await add_reference(tx, tenant, site, ProtocolId("oscp", "dso", "group", "g-1"))
        charger = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.CHARGING, {"Name": "C", **charger_props}
        )
        await add_connector(tx, tenant, site, charger, ConnectorType.SITE)
        start = quarter(NOW)
        blocks = [Block(start + i * Q, start + (i + 1) * Q, 20.0) for i in range(8)]
        await store_limit(tx, tenant, site, Limit.CONSUMPTION, blocks, "dso")
        await track(tx, peer, "g-1", unit="KW", phase="ALL")
        async with edit(tx, peer) as state:
            state.groups["g-1"].sent_at = NOW - timedelta(minutes=20)
    return peer


async def _resend(db, hub: Hub, now: datetime) -> list[str]:  # type: ignore[no-untyped-def]
    """The groups whose optimum the clock asks for at `now`, once their plan jobs are made."""
    sent: list[str] = []

    async def send(tx, optimum: Optimum) -> bool:  # type: ignore[no-untyped-def]
        sent.append(optimum.group_id)
        return True

    hub = replace(hub, optimum_senders={"oscp": send})
    await resend_changed(db, hub, now, "oscp", HORIZON)
    for job in await claim_plans(db, "test", 10, timedelta(seconds=30)):
        await make_plan(db, hub, job, "test")
    return sent


async def test_the_schedule_re_plans_an_oscp_peers_group_with_flexible_assets(db):
    """The schedule is the hub's, not OCMP's: an OSCP peer's group with a charger whose last
    optimum is 20 minutes old is re-sent on a 15-minute schedule, with no new input; once sent
    it is not due again at the same time."""
    await _oscp_peer_tracking(db, {"InstalledMaxCapacity": 11.0})
    hub = _hub(timedelta(minutes=15))
    assert await _resend(db, hub, NOW) == ["g-1"]
    assert await _resend(db, hub, NOW) == []


async def test_the_schedule_waits_until_the_last_optimum_is_old_enough(db):
    await _oscp_peer_tracking(db, {"InstalledMaxCapacity": 11.0})
    assert await _resend(db, _hub(timedelta(minutes=30)), NOW) == []
    assert await _resend(db, _hub(None), NOW + timedelta(days=1)) == []  # no schedule


async def test_the_schedule_leaves_a_group_without_flexible_assets_alone(db):
    await _oscp_peer_tracking(db, {})
    assert await _resend(db, _hub(timedelta(minutes=15)), NOW) == []
