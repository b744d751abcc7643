"""The audit trail of CP-API messages that change state (DESIGN.md section 2.6): one message
row per save, with the body as received, the outcome and a one-line detail. Reads are
queries, not messages, and are not logged."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.context import request_id_of
from store.messages import Direction, log_message
from store.tenants import Tenant

PROTOCOL = "cpapi"


def outcome(saved: int, total: int) -> str:
    """The status of a list message: every item applied, some, or none."""
    return "applied" if saved == total else "partial" if saved else "refused"


async def log_inbound(
    request: web.Request,
    tx: AsyncConnection,
    tenant: Tenant,
    message_type: str,
    status: str,
    detail: str | None,
) -> None:
    await log_message(
        tx,
        tenant,
        protocol=PROTOCOL,
        message_type=message_type,
        direction=Direction.IN,
        status=status,
        message_id=(request_id_of(request) or "")[:200] or None,
        payload=await request.read(),
        detail=None if detail is None else detail[:1000],
    )
