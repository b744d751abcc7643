"""Migrations: the tables the code declares are the tables the migrations make, and each
migration keeps the rows already stored."""

from __future__ import annotations

import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select

from store.db import open_database
from store.migrate import head_revision, upgrade
from store.tables import entities, metadata, tenants


async def test_migrations_make_the_declared_schema(database_url: str) -> None:
    """On SQLite and on PostgreSQL: the migrations are the one way the schema is made (no
    create_all anywhere), so what they make must be what store/tables.py declares."""
    db = open_database(database_url)
    try:
        assert await upgrade(db) == head_revision()
        async with db.read() as conn:
            differences = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    finally:
        await db.close()
    assert differences == []


async def test_0002_keeps_entities_and_allows_one_key_in_two_tenants(tmp_path: Path) -> None:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    key = uuid.uuid4()
    row = {
        "key": key,
        "asset_type": "Area",
        "asset_subtype": "Site",
        "name": "A",
        "status": "Active",
        "properties": {},
        "created_at": 0,
        "updated_at": 0,
    }
    try:
        await upgrade(db, "0001")
        async with db.transaction() as tx:
            for tenant_id in (1, 2):
                await tx.execute(
                    insert(tenants).values(
                        id=tenant_id, name=f"t{tenant_id}", key_hash=f"h{tenant_id}", created_at=0
                    )
                )
            await tx.execute(insert(entities).values(tenant_id=1, **row))
        assert await upgrade(db) == head_revision()
        async with db.transaction() as tx:
            await tx.execute(insert(entities).values(tenant_id=2, **{**row, "name": "B"}))
        async with db.read() as tx:
            stored = (await tx.execute(select(entities.c.tenant_id, entities.c.name))).all()
    finally:
        await db.close()
    assert sorted(stored) == [(1, "A"), (2, "B")]
