"""Group commit (store/group_commit.py, docs/store.md "Group commit"): on SQLite the write
transactions queued for the one writer share one transaction and one commit; each is
answered only after that commit, a failing one loses only its own rows, a failed commit
fails every member. PostgreSQL runs write transactions side by side, each committing on its
own (the server flushes concurrent commits together), and the same guarantees hold there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapter.app import create_app
from adapter.keys import DB
from adapter.settings import Settings
from store.db import Database
from store.tables import app_secrets

WRITERS = 20
DEADLINE = 10.0


class Boom(Exception):
    """What a failing member raises."""


def _count_commits(db: Database) -> list[int]:
    """The write transactions committed from now on (reads commit too, and are left out)."""
    commits: list[int] = []

    def committed(conn: Connection) -> None:
        if conn.get_execution_options().get("flexbridge_write"):
            commits.append(1)

    for engine in db.engines:
        event.listen(engine.sync_engine, "commit", committed)
    return commits


async def _insert(tx: AsyncConnection, name: str) -> None:
    await tx.execute(app_secrets.insert().values(name=name, value="x"))


async def _stored(db: Database) -> set[str]:
    async with db.read() as tx:
        return set((await tx.execute(select(app_secrets.c.name))).scalars())


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        await asyncio.sleep(0.001)


async def _start_queued(
    db: Database, body: Callable[[int, AsyncConnection], Awaitable[None]], count: int
) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    """`count` writers, all queued (on SQLite) behind the first, which holds its block open
    until the event is set."""
    release = asyncio.Event()

    async def writer(n: int) -> None:
        async with db.transaction() as tx:
            if n == 0:
                await release.wait()
            await body(n, tx)

    tasks = [asyncio.create_task(writer(0))]
    if db.writer is not None:
        await _until(db.writer.locked, "the first writer holds the turn")
    tasks += [asyncio.create_task(writer(n)) for n in range(1, count)]
    if db.writer is not None:
        await _until(lambda: db.writer.waiting() == count - 1, "every other writer queued")  # type: ignore[union-attr]
    return release, tasks


async def _queued_behind_one(
    db: Database, body: Callable[[int, AsyncConnection], Awaitable[None]], count: int = WRITERS
) -> list[BaseException | None]:
    """Each writer's outcome (None: its block returned) when `count` writers queue behind
    the first before it ends: one batch or more, as the group commit forms them."""
    release, tasks = await _start_queued(db, body, count)
    release.set()
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DEADLINE)


async def test_writers_queued_together_share_one_commit(db):
    commits = _count_commits(db)
    outcomes = await _queued_behind_one(db, lambda n, tx: _insert(tx, f"w{n}"))
    assert outcomes == [None] * WRITERS
    assert await _stored(db) == {f"w{n}" for n in range(WRITERS)}
    if db.dialect == "sqlite":
        assert len(commits) == 1  # the first ends once every other has joined it
    else:
        assert len(commits) == WRITERS  # PostgreSQL: each transaction commits on its own


async def test_a_batch_holds_at_most_group_commit_max_members(db):
    db = db.with_group_commit(8)
    commits = _count_commits(db)
    outcomes = await _queued_behind_one(db, lambda n, tx: _insert(tx, f"w{n}"))
    assert outcomes == [None] * WRITERS
    assert await _stored(db) == {f"w{n}" for n in range(WRITERS)}
    assert len(commits) == (3 if db.dialect == "sqlite" else WRITERS)  # 8 + 8 + 4


async def test_group_commit_max_1_commits_every_writer_alone(db):
    db = db.with_group_commit(1)
    commits = _count_commits(db)
    outcomes = await _queued_behind_one(db, lambda n, tx: _insert(tx, f"w{n}"))
    assert outcomes == [None] * WRITERS
    assert len(commits) == WRITERS


@pytest.mark.parametrize("failing", [0, 7, WRITERS - 1])
async def test_a_failing_member_rolls_back_its_own_rows_only(db, failing):
    """The first member of a batch (no savepoint: nothing before it to keep), one in the
    middle and the last (which ends the batch): each loses its own rows only."""

    async def body(n: int, tx: AsyncConnection) -> None:
        await _insert(tx, f"w{n}")
        if n == failing:
            await _insert(tx, f"w{n}-more")
            raise Boom(n)

    outcomes = await _queued_behind_one(db, body)
    assert isinstance(outcomes[failing], Boom)
    assert [o for n, o in enumerate(outcomes) if n != failing] == [None] * (WRITERS - 1)
    assert await _stored(db) == {f"w{n}" for n in range(WRITERS) if n != failing}


async def test_a_member_whose_statement_fails_leaves_the_others_rows(db):
    """A database error inside one member (a duplicate key) is that member's alone."""
    async with db.transaction() as tx:
        await _insert(tx, "taken")

    async def body(n: int, tx: AsyncConnection) -> None:
        await _insert(tx, "taken" if n == 3 else f"w{n}")

    outcomes = await _queued_behind_one(db, body)
    assert isinstance(outcomes[3], IntegrityError)
    assert [o for n, o in enumerate(outcomes) if n != 3] == [None] * (WRITERS - 1)
    assert await _stored(db) == {"taken"} | {f"w{n}" for n in range(WRITERS) if n != 3}


async def _poison_commit(tx: AsyncConnection) -> None:
    """Make this transaction's COMMIT fail (a deferred constraint, checked only then)."""
    if tx.dialect.name == "sqlite":
        await tx.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS poison (id INTEGER PRIMARY KEY, parent INTEGER "
                "REFERENCES poison(id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
        await tx.execute(text("INSERT INTO poison (id, parent) VALUES (1, 99)"))
    else:
        await tx.execute(
            text(
                "CREATE TEMP TABLE poison (id INTEGER, "
                "CONSTRAINT once UNIQUE (id) DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"
            )
        )
        await tx.execute(text("INSERT INTO poison (id) VALUES (1), (1)"))


async def test_a_failed_commit_fails_every_member_of_its_batch(db):
    async def body(n: int, tx: AsyncConnection) -> None:
        await _insert(tx, f"w{n}")
        if n == 5:
            await _poison_commit(tx)

    outcomes = await _queued_behind_one(db, body)
    failed = [n for n, outcome in enumerate(outcomes) if outcome is not None]
    if db.dialect == "sqlite":
        assert failed == list(range(WRITERS))  # one batch: every member saw the failure
        assert await _stored(db) == set()
    else:
        assert failed == [5]  # each commits on its own
        assert await _stored(db) == {f"w{n}" for n in range(WRITERS) if n != 5}
    assert all("constraint" in str(outcomes[n]).lower() for n in failed)
    # The failed batch left no transaction (nor SQLite's write lock) behind.
    async with db.transaction() as tx:
        await _insert(tx, "after")
    assert "after" in await _stored(db)


async def test_nothing_is_answered_before_the_commit_that_holds_it(db):
    """When a writer's block returns, a reader on another connection sees its row."""
    seen: dict[int, bool] = {}

    async def writer(n: int) -> None:
        async with db.transaction() as tx:
            await _insert(tx, f"w{n}")
            await asyncio.sleep(0)  # let the others queue behind this one
        seen[n] = f"w{n}" in await _stored(db)

    commits = _count_commits(db)
    await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(WRITERS))), DEADLINE)
    assert seen == {n: True for n in range(WRITERS)}
    if db.dialect == "sqlite":
        assert len(commits) < WRITERS


async def test_a_writer_cancelled_after_its_turn_came_still_lets_the_batch_commit(db):
    """The first writer leaves its batch open for the one queued behind it; that one is
    cancelled (its client gone) before it runs: it commits the batch as it goes, so the
    first writer is answered and the turn is free."""
    if db.writer is None:
        pytest.skip("PostgreSQL has no write turn: nothing waits for a cancelled writer")
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def second() -> None:
        async with db.transaction() as tx:
            await _insert(tx, "second")

    async def first() -> None:
        async with db.transaction() as tx:
            await _insert(tx, "first")
            await release.wait()
            # Runs before the second's wake-up, which the first's hand-on schedules next.
            loop.call_soon(queued.cancel)

    leader = asyncio.create_task(first())
    await _until(db.writer.locked, "the first writer holds the turn")
    queued = asyncio.create_task(second())
    await _until(lambda: db.writer.waiting() == 1, "the second writer queued")  # type: ignore[union-attr]
    release.set()
    await asyncio.wait_for(leader, DEADLINE)
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await _stored(db) == {"first"}
    assert not db.writer.locked() and db.writer.waiting() == 0


async def test_a_writer_cancelled_in_its_block_loses_its_rows_not_the_others(db):
    started = asyncio.Event()

    async def body(n: int, tx: AsyncConnection) -> None:
        await _insert(tx, f"w{n}")
        if n == 4:
            started.set()
            await asyncio.Event().wait()  # until cancelled

    release, tasks = await _start_queued(db, body, 8)
    release.set()
    await asyncio.wait_for(started.wait(), DEADLINE)
    tasks[4].cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DEADLINE)
    assert isinstance(outcomes[4], asyncio.CancelledError)
    assert [o for n, o in enumerate(outcomes) if n != 4] == [None] * 7
    assert await _stored(db) == {f"w{n}" for n in range(8) if n != 4}


async def test_serve_takes_group_commit_max_from_its_settings(aiohttp_client, database_url):
    settings = replace(Settings(), database_url=database_url, admin_password="pw")
    client = await aiohttp_client(create_app(replace(settings, group_commit_max=3)))
    db = client.server.app[DB]
    async with db.read() as tx:
        assert (await tx.execute(select(func.count()).select_from(app_secrets))).scalar()
    if db.dialect == "sqlite":
        assert db.writer is not None and db.writer.max_members == 3
    else:
        assert db.writer is None


async def test_a_writer_cancelled_while_it_waits_for_the_commit_fails_nobody_else(db):
    """A member whose block has returned waits for the batch's commit; cancelling it (a
    worker stopping, a client gone) cancels that wait, not the commit the others wait for:
    they are answered, its rows commit with theirs, and the turn is free."""
    if db.writer is None:
        pytest.skip("PostgreSQL has no shared commit to wait for")
    holding = asyncio.Event()

    async def body(n: int, tx: AsyncConnection) -> None:
        await _insert(tx, f"w{n}")
        if n == 5:
            holding.set()
            await asyncio.sleep(0)  # member 2 is cancelled while this one holds the batch

    release, tasks = await _start_queued(db, body, 8)
    release.set()
    await asyncio.wait_for(holding.wait(), DEADLINE)
    tasks[2].cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DEADLINE)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert [o for n, o in enumerate(outcomes) if n != 2] == [None] * 7
    assert await _stored(db) == {f"w{n}" for n in range(8)}
    assert not db.writer.locked() and db.writer.waiting() == 0
