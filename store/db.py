"""The database handle: one async engine, transactions, and SQLite's connection rules.

SQLite gets WAL (readers never block the writer), foreign keys, a busy timeout, and
`BEGIN IMMEDIATE` for write transactions: a deferred transaction that reads first and writes
later can fail with SQLITE_BUSY when another writer got there in between, where an
immediate one simply waits its turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, String, event, text
from sqlalchemy.engine import URL, Connection, CursorResult, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from store import sqlite_inline
from store.group_commit import GroupCommit
from store.secret_box import SecretBox

_WRITE_OPTION = "flexbridge_write"
_WRITE_OPTIONS = {_WRITE_OPTION: True}
_SECRETS_INFO = "flexbridge_secrets"
_STARTUP_LOCK = 0x666C6578  # "flex": the advisory lock id of startup work
_BUSY_TIMEOUT_MS = int(sqlite_inline.BUSY_TIMEOUT_SECONDS * 1000)
GROUP_COMMIT_MAX = 32  # writers per shared commit unless told (setting group_commit_max)


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    # SQLite has one writer at a time. Writers of this process queue here, first come first
    # served, instead of in SQLite's busy handler, which retries by sleeping and lets an
    # unlucky writer starve past its timeout ("database is locked") under load; the writers
    # queued share one transaction and commit (store/group_commit.py). Its connection runs
    # sqlite3 on the loop's thread (store/sqlite_inline.py); `engine` serves the readers.
    writer: GroupCommit | None = None
    # The keys that seal the secrets flexbridge presents to peers (store/secret_box.py); the
    # adapter gives them from its configuration. Every connection carries them too
    # (`secrets_of`), so that the store functions, which take a connection, reach them.
    secrets: SecretBox | None = None

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine of this database: the readers' and, on SQLite, the writer's."""
        return (self.engine,) if self.writer is None else (self.engine, self.writer.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on any exception.

        On SQLite the block may share its transaction with the writers queued beside it
        (group commit): it returns once the commit holding its rows is done, and what it
        raises rolls back its own work only."""
        if self.writer is not None:
            async with self.writer.member() as conn:
                yield conn
            return
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    def with_group_commit(self, max_members: int) -> Database:
        """This database with at most `max_members` writers per shared commit (1: every
        write transaction commits alone); PostgreSQL commits each on its own regardless."""
        if self.writer is None:
            return self
        writer = GroupCommit(self.writer.engine, max_members, _WRITE_OPTIONS)
        return replace(self, writer=writer)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot; never takes the write lock)."""
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = await conn.execution_options(postgresql_readonly=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def startup(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that one process at a time may hold (migrations, first-start
        seeding): several processes starting on one PostgreSQL would otherwise race."""
        async with self.transaction() as conn:
            if self.dialect == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                await conn.execute(lock, {"key": _STARTUP_LOCK})
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.engine.dispose()
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so we choose its kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _carry_secrets(engine: AsyncEngine, box: SecretBox) -> None:
    # Kept in the pooled connection's info, set once when the driver connects: the store
    # functions take a connection from any caller (protocols, hub, CLI) and none of those
    # callers should have to pass keys along that only the store uses.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_SECRETS_INFO] = box


def secrets_of(conn: AsyncConnection) -> SecretBox | None:
    """The keys of the database `conn` belongs to (None: opened without any)."""
    box = conn.info.get(_SECRETS_INFO)
    return box if isinstance(box, SecretBox) else None


def inserted_id(result: CursorResult[*tuple[Any, ...]]) -> int:
    """The integer primary key of the one row an INSERT statement added."""
    key = result.inserted_primary_key
    if key is None:  # only a statement that is not a single-row INSERT has none
        raise RuntimeError("the statement inserted no row")
    value: int = key[0]
    return value


def open_database(
    url: str,
    *,
    echo: bool = False,
    secrets: SecretBox | None = None,
    pool_size: int = 10,
    max_overflow: int = 10,
) -> Database:
    """Create the engine for `url` (sqlite+aiosqlite or postgresql+asyncpg); `secrets`
    seal and open the credentials stored for peers (without them, none can be written).

    `pool_size` connections stay open and `max_overflow` more may be opened at a peak
    (PostgreSQL only: SQLite has one writer, and its pool follows the driver's rules)."""
    parsed = make_url(url)
    server = parsed.get_backend_name() != "sqlite"
    pool = {"pool_size": pool_size, "max_overflow": max_overflow} if server else {}
    engine = _engine(parsed, echo, secrets, pool_pre_ping=server, **pool)
    if not server:
        writer = _engine(parsed, echo, secrets, module=sqlite_inline.DBAPI)
        return Database(engine, GroupCommit(writer, GROUP_COMMIT_MAX, _WRITE_OPTIONS), secrets)
    return Database(engine, secrets=secrets)


def _engine(url: URL, echo: bool, secrets: SecretBox | None, **options: Any) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=echo,
        # Every connection is used inside transaction() or read(), which always commit or
        # roll back; a reset on return would be one more driver round trip for nothing.
        pool_reset_on_return=None,
        **options,
    )
    if secrets is not None:
        _carry_secrets(engine, secrets)
    if engine.dialect.name == "sqlite":
        # The writer waits for a busy database on the loop, in its driver (sqlite_inline).
        waits_in_driver = options.get("module") is sqlite_inline.DBAPI
        _configure_sqlite(engine, 0 if waits_in_driver else _BUSY_TIMEOUT_MS)
    return engine


def text_limit(column: ColumnElement[Any]) -> int:
    """How many characters a String column holds (what check_fits compares with)."""
    kind = column.type
    assert isinstance(kind, String) and kind.length is not None, f"{column} has no length"
    return kind.length
