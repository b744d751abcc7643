"""Shared fixtures: a migrated database on SQLite and, when it answers, on PostgreSQL.

Store tests take the `db` fixture and run once per backend. PostgreSQL is found through
FLEXBRIDGE_TEST_DATABASE_URL (the Makefile points it at 127.0.0.1:5432/test); each test run
creates its own scratch database beside it and drops it at the end. When PostgreSQL does not
answer, its variants are skipped and the run says so plainly at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from uftp_agr import dso  # noqa: F401  (the UFTP DSO fixture, for every UFTP test module)

import adapter.app
import store.key_file
from store.db import Database, open_database
from store.migrate import upgrade
from store.secret_box import SecretBox
from store.tables import metadata

PG_ENV = "FLEXBRIDGE_TEST_DATABASE_URL"
# The key sealing peer secrets in the tests' databases (store/secret_box.py).
TEST_KEY = "bm90LWEtcmVhbC1rZXktanVzdC1mb3ItdGVzdHMhIT0="
_pg_state: dict[str, str] = {}


async def _create_scratch(admin_url: str) -> str:
    name = f"flexbridge_test_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    db = open_database(url)
    try:
        await upgrade(db)
    finally:
        await db.close()
    return url


async def _drop_scratch(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
def _test_key_file(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server a test starts with the default key file (`flexbridge.key` where it runs)
    uses one holding TEST_KEY instead: no test leaves a key file in the work tree, and the
    `db` fixture opens what the test's server sealed."""
    folder = tmp_path_factory.getbasetemp() / "keys"
    folder.mkdir(exist_ok=True)
    test_file = folder / "flexbridge.key"
    test_file.write_text(TEST_KEY + "\n")
    test_file.chmod(0o600)
    real = store.key_file.secret_box

    def redirected(keys: str | None, key_file: str) -> SecretBox:
        return real(keys, str(test_file) if key_file == "flexbridge.key" else key_file)

    monkeypatch.setattr(store.key_file, "secret_box", redirected)
    monkeypatch.setattr(adapter.app, "secret_box", redirected)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """URL of a migrated scratch PostgreSQL database, or None when none answers."""
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        _pg_state["skip"] = f"{PG_ENV} is not set"
        yield None
        return
    try:
        url = asyncio.run(asyncio.wait_for(_create_scratch(admin_url), timeout=30))
    except Exception as exc:  # unreachable, refused, no rights: skip, and say why
        _pg_state["skip"] = (
            f"PostgreSQL at {make_url(admin_url).render_as_string()} unusable: {exc}"
        )
        yield None
        return
    _pg_state["used"] = url
    yield url
    asyncio.run(_drop_scratch(admin_url, url))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file the migrations have made, once per run: each test's database starts as
    a copy of it (migrating a new file costs 170-370 ms; a copy well under one, and the
    migrations a copy then meets have nothing to do)."""
    path = tmp_path_factory.mktemp("template") / "flexbridge.db"

    async def migrate() -> None:
        db = open_database(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(db)
        finally:
            await db.close()

    asyncio.run(migrate())
    assert not path.with_name(path.name + "-wal").exists(), "the template is not checkpointed"
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        path = tmp_path / "flexbridge.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    if url is None:
        pytest.skip(_pg_state["skip"])
    return url


async def _empty_tables(db: Database) -> None:
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with db.transaction() as tx:
        await tx.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url, secrets=SecretBox([TEST_KEY]))
    await upgrade(database)
    if database.dialect == "postgresql":
        await _empty_tables(database)
    try:
        yield database
    finally:
        await database.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist each worker has its own PostgreSQL state: hand it to the
    controller, which prints the summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["pg_state"] = dict(_pg_state)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # type: ignore[no-untyped-def]
    state = getattr(node, "workeroutput", {}).get("pg_state", {})
    if "used" in state:
        _pg_state["used"] = state["used"]
    elif "skip" in state and "used" not in _pg_state:
        _pg_state["skip"] = state["skip"]


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if "used" in _pg_state:
        terminalreporter.write_line("PostgreSQL: store tests ran on SQLite and on PostgreSQL.")
    elif "skip" in _pg_state:
        terminalreporter.write_line(
            f"PostgreSQL SKIPPED: {_pg_state['skip']}; store tests ran on SQLite only.", yellow=True
        )
