"""Making a plan job (store.plan_jobs): the group's inputs read, the plan solved outside any
transaction, then written and sent in one short write transaction.

The solve used to run inside the write transaction of the message that asked for it, and
held SQLite's one writer for as long as it took (forecasts saturated at about 12 per second
per process). Now a request only stores its inputs and the job; whichever process runs jobs
(`serve`, or any `flexbridge worker` on the same database) claims it, gathers in a read
transaction (which never waits for the writer), solves in the pool, and writes. The write
transaction first checks that the claim still holds, so that a run whose lease lapsed while
it solved (the job taken over by another process) writes nothing.
"""

from __future__ import annotations

import logging

from hub.capacity import Block
from hub.optimum import Optimum
from hub.peer_state import GroupLink, current
from hub.planning import gather, write_plan
from hub.runtime import Hub
from store.db import Database
from store.entities import get_entity_by_id
from store.errors import NotFound
from store.peers import get_peer
from store.plan_jobs import PlanJob, drop_plan, finish_plan, still_claimed

log = logging.getLogger("flexbridge.planning")


async def make_plan(db: Database, hub: Hub, job: PlanJob, worker: str) -> bool:
    """Plan the job's group, hand the plan to every plan hook and queue the optimum for its
    peer (the caller wakes the outbox); False when nothing was written (the job's peer or
    group is gone, or another process took the job over)."""
    try:
        async with db.read() as tx:
            peer = await get_peer(tx, job.tenant, job.peer_id)
            group = await get_entity_by_id(tx, job.tenant, job.entity_id)
            gathered = await gather(tx, job.tenant, group, job.start, job.end)
    except NotFound:  # removed since it was asked for (a cascade drops most such jobs)
        async with db.transaction() as tx:
            await drop_plan(tx, job)
        return False
    solved = None
    if gathered is not None and (gathered[0].chargers or gathered[0].batteries):
        solved = await hub.solve(gathered[0])
    send = hub.optimum_senders.get(peer.protocol)
    async with db.transaction() as tx:
        # The peer's row before the job's: a message from the peer locks its row first and
        # then asks for the job again (hub.inbound, request_plan), so the other order
        # deadlocked with a forecast for the same window on PostgreSQL.
        try:
            locked, state = await current(tx, peer)
        except NotFound:  # the peer was removed since, its jobs with it
            return False
        if not await still_claimed(tx, job, worker):
            log.info("plan of group %r for peer #%d taken over", job.group_key, job.peer_id)
            return False
        if gathered is not None:
            problem, assets = gathered
            points = await write_plan(
                tx, job.tenant, group, problem, solved, assets, hub.plan_hooks
            )
            blocks = [Block(p.start, p.end, p.value) for p in points if p.value is not None]
            link = state.groups.get(job.group_key, GroupLink())
            if blocks and send is not None:
                await send(tx, Optimum(locked, group, job.group_key, link, blocks))
        await finish_plan(tx, job, worker)
    return True
