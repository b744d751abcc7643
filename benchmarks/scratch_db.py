"""A scratch PostgreSQL database for one benchmark leg: created on a server the benchmark
is pointed at, dropped afterwards whatever happened (as tests/conftest.py does)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@asynccontextmanager
async def scratch_postgres(server_url: str, label: str = "bench") -> AsyncIterator[str]:
    """The URL of a new empty database on the server of `server_url`, dropped on exit."""
    name = f"flexbridge_{label}_{uuid.uuid4().hex[:8]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
