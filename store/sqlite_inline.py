"""An aiosqlite-shaped driver that runs sqlite3 on the event loop's own thread, for the one
connection that writes (docs/store.md, "The writer runs in the loop").

aiosqlite hands every call to a thread of its own and waits for the answer: for the short
statements of a write transaction that hand-off is most of the cost (0.37 ms of CPU per
INSERT through SQLAlchemy, against 0.08 ms in the loop, `benchmarks/sqlite_driver.py`).
The writer's statements are short, and they run one at a time anyway (store/group_commit.py),
so running them in place costs the loop less than handing them off. Readers keep aiosqlite:
a long read there does not stall the loop.

SQLAlchemy's aiosqlite dialect drives this module as it would drive aiosqlite (it is passed
as the engine's `module`); only what that dialect calls is here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

BUSY_TIMEOUT_SECONDS = 15.0  # as long as the busy timeout of the readers' connections


class Cursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, size: int) -> None:
        self._cursor.arraysize = size

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        await _when_free(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        rows = list(parameters)  # retried whole when the database is busy
        await _when_free(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


async def _when_free(statement: Callable[[], object]) -> None:
    """Run `statement`, waiting on the loop while another connection holds the write lock.

    SQLite's own busy handler would wait by sleeping in this thread, the loop's: a writer of
    this same process then could never finish, and every request would stall meanwhile. So
    the connection has no busy timeout, and the wait is here: SQLITE_BUSY leaves nothing
    done, and the statement is tried again (what the busy handler does) until
    BUSY_TIMEOUT_SECONDS have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_SECONDS
    pause = 0.001
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.025)


class _NewCursor:
    """What `Connection.cursor()` gives: awaited or entered, a cursor (as aiosqlite's)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def __aenter__(self) -> Cursor:
        return Cursor(self._connection.cursor())

    async def __aexit__(self, *_exc: object) -> None:
        return None


class _RunNow:
    """The dialect sets isolation_level by queueing (future, function) for aiosqlite's
    thread; here there is no thread, so it runs at once."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:  # handed to the awaiting dialect, as aiosqlite would
            future.set_exception(error)


class Connection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection  # None once closed
        self._tx = _RunNow()
        self._thread = types.SimpleNamespace(daemon=True)  # the dialect marks it a daemon

    def __await__(self) -> Any:
        # `await connect(...)`: already connected.
        return self._opened().__await__()

    async def _opened(self) -> Connection:
        return self

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _NewCursor:
        return _NewCursor(self._conn)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()
        self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    def stop(self) -> None:
        self._conn.close()
        self._connection = None


def connect(database: str, *args: Any, **kwargs: Any) -> Connection:
    for aiosqlite_only in ("iter_chunk_size", "loop"):
        kwargs.pop(aiosqlite_only, None)
    # Opened, used and closed on the loop's thread; pool disposal at exit may come from
    # another, which sqlite3 would refuse by default.
    kwargs["check_same_thread"] = False
    connection = sqlite3.connect(database, *args, **kwargs)
    return Connection(connection)


def _module() -> types.ModuleType:
    module = types.ModuleType("flexbridge_sqlite_inline")
    errors: Sequence[str] = (
        "DatabaseError",
        "Error",
        "IntegrityError",
        "NotSupportedError",
        "OperationalError",
        "ProgrammingError",
        "sqlite_version",
        "sqlite_version_info",
    )
    for name in errors:
        setattr(module, name, getattr(sqlite3, name))
    module.Connection = Connection  # type: ignore[attr-defined]
    module.connect = connect  # type: ignore[attr-defined]
    module.__version__ = "inline"  # type: ignore[attr-defined]
    return module


# The `module` for create_async_engine: what the aiosqlite dialect expects of a DBAPI.
DBAPI = AsyncAdapt_aiosqlite_dbapi(_module(), sqlite3)
