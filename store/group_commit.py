"""Group commit: the write transactions of one process that queue for SQLite's one writer
share one transaction and one commit (docs/store.md, "Group commit").

SQLite lets one connection write at a time, so writers queue for it anyway. The writers
queued behind the one at work are the natural batch: each in turn gets the batch's
connection, runs its block, and leaves its rows in the open transaction; the member that
finds nobody queued behind it (or the batch at `max_members`) commits for all.

- A member's block returns only after the commit that holds its rows: nothing answered is
  lost, and a commit that fails raises in every member of its batch.
- Every member but the first runs in a SAVEPOINT of its own: a block that raises rolls back
  its own work only and raises at once (nothing of it will commit, so it need not wait).
  The first member of a batch needs none: when it fails there is nothing else to keep.
- Blocks still run one at a time (the turn): they share one connection.
- A member cancelled while it waits for the commit stops waiting, and only it: its rows
  are in the batch and commit with the others'.
- Whoever ends a batch does so shielded, holding the turn until the connection is back, so
  a cancelled member (a client gone) never leaves a half-ended batch behind; a member
  cancelled while queued, when it was the one the batch waited for, commits it as it goes.
- A block that opens a second write transaction while in one waits for itself, as it did
  without grouping: the turn is not re-entrant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction


@dataclass(eq=False, slots=True)
class _Batch:
    conn: AsyncConnection
    transaction: AsyncTransaction
    committed: asyncio.Future[None]
    members: int = 0
    ending: asyncio.Task[None] | None = field(default=None)


class GroupCommit:
    """The write turn of one SQLite database, and the batch its writers share."""

    def __init__(
        self, engine: AsyncEngine, max_members: int, options: Mapping[str, Any] | None = None
    ) -> None:
        if max_members < 1:
            raise ValueError("max_members must be at least 1")
        self.max_members = max_members
        self._engine = engine
        self._options = dict(options or {})
        self._turn = asyncio.Lock()
        self._queued = 0  # writers waiting for the turn
        self._batch: _Batch | None = None

    @property
    def engine(self) -> AsyncEngine:
        """The engine whose connection the batches use."""
        return self._engine

    def locked(self) -> bool:
        """Whether a writer holds the turn."""
        return self._turn.locked()

    def waiting(self) -> int:
        """How many writers wait for the turn (the next batch, or the rest of this one)."""
        return self._queued

    @asynccontextmanager
    async def member(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction as one member of a batch (module docstring)."""
        await self._take_turn()
        try:
            batch = self._batch or await self._open()
        except BaseException:
            self._turn.release()
            raise
        batch.members += 1
        try:
            savepoint = await batch.conn.begin_nested() if batch.members > 1 else None
        except BaseException as broken:
            await self._end(batch, broken)
            raise
        try:
            yield batch.conn
        except BaseException as raised:
            await self._after_failure(batch, savepoint, raised)
            raise
        await self._after_success(batch, savepoint)
        # Shielded: cancelling a task that awaits a future cancels the future, and this one
        # is every member's. The cancelled member stops waiting; its rows commit anyway.
        await asyncio.shield(batch.committed)

    async def _take_turn(self) -> None:
        self._queued += 1
        try:
            await self._turn.acquire()
        except asyncio.CancelledError:
            self._queued -= 1
            await self._rescue()
            raise
        self._queued -= 1

    async def _rescue(self) -> None:
        """Commit an open batch that was waiting for this (now cancelled) writer alone."""
        batch = self._batch
        if batch is None or self._turn.locked() or self._queued:
            return  # someone holds or is about to take the turn and will end it
        await self._turn.acquire()  # free and nobody queued: taken at once
        if self._batch is batch:
            await self._end(batch, None)
        else:
            self._turn.release()

    async def _open(self) -> _Batch:
        conn = await self._engine.connect()
        try:
            conn = await conn.execution_options(**self._options)
            transaction = await conn.begin()
        except BaseException:
            await conn.close()
            raise
        batch = _Batch(conn, transaction, asyncio.get_running_loop().create_future())
        batch.committed.add_done_callback(_retrieved)
        self._batch = batch
        return batch

    async def _after_success(self, batch: _Batch, savepoint: AsyncTransaction | None) -> None:
        try:
            if savepoint is not None:
                await savepoint.commit()  # RELEASE: its rows join the batch's
        except BaseException as broken:
            await self._end(batch, broken)
            return  # the batch's failure is raised by `await batch.committed`
        await self._hand_on(batch)

    async def _after_failure(
        self, batch: _Batch, savepoint: AsyncTransaction | None, raised: BaseException
    ) -> None:
        if savepoint is None:  # the first member: nothing else in the batch to keep
            batch.members -= 1
            await self._end(batch, raised)  # nobody else waits for this batch
            return
        try:
            await savepoint.rollback()
        except BaseException as broken:
            await self._end(batch, broken)
            return
        batch.members -= 1
        await self._hand_on(batch)

    async def _hand_on(self, batch: _Batch) -> None:
        """Leave the batch open for the next writer queued, or commit it."""
        if self._queued and batch.members < self.max_members:
            self._turn.release()
            return
        await self._end(batch, None)

    async def _end(self, batch: _Batch, failure: BaseException | None) -> None:
        """Commit the batch (or roll it back on `failure`), give the connection back, tell
        every member, release the turn; shielded, so that a cancelled caller cannot stop it
        half-way (the batch keeps the task)."""
        batch.ending = asyncio.ensure_future(self._finish(batch, failure))
        await asyncio.shield(batch.ending)

    async def _finish(self, batch: _Batch, failure: BaseException | None) -> None:
        try:
            if failure is None:
                await batch.transaction.commit()
            else:
                await batch.transaction.rollback()
        except BaseException as exc:
            failure = failure or exc
            await _discard(batch)
        finally:
            try:
                await batch.conn.close()
            finally:
                self._batch = None
                if failure is None:
                    batch.committed.set_result(None)
                else:
                    batch.committed.set_exception(failure)
                self._turn.release()


async def _discard(batch: _Batch) -> None:
    """After a commit or rollback that failed: SQLite keeps a transaction whose COMMIT
    failed open (and its write lock with it), so the connection is closed, never pooled."""
    with suppress(Exception):  # the connection is dropped either way
        await batch.conn.invalidate()


def _retrieved(committed: asyncio.Future[None]) -> None:
    # A failure every waiting member has left (cancelled) is still not an unhandled error.
    if not committed.cancelled():
        committed.exception()
