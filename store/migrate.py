"""Schema migrations (Alembic), run by `flexbridge db upgrade` and on every `serve`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from store.db import Database

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def current_revision(db: Database) -> str | None:
    """The applied revision, or None on an empty database (read directly: it is polled by
    /health, and Alembic's migration context logs every time it is made)."""
    async with db.read() as conn:
        exists = await conn.run_sync(lambda c: inspect(c).has_table("alembic_version"))
        if not exists:
            return None
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to `revision`; returns the revision now in place."""
    async with db.startup() as conn:
        await conn.run_sync(lambda c: command.upgrade(_config(c), revision))
    return await current_revision(db)
