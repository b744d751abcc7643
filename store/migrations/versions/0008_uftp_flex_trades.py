"""uftp flex trades

UFTP flexibility trading state of a DSO (store/uftp.py, docs/protocols/uftp-3.1.md): the
FlexRequests we send, the FlexOffers AGRs send (their options and ISPs as the message
gave them), and the FlexOrders we place, each with its state.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("uftp_flex_requests", "uftp_flex_offers", "uftp_flex_orders")


def _common(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name=f"fk_{table}_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column(
            "peer_id",
            sa.Integer(),
            sa.ForeignKey("peers.id", ondelete="CASCADE", name=f"fk_{table}_peer_id_peers"),
            nullable=False,
        ),
        sa.Column(
            "entity_id",
            sa.Integer(),
            sa.ForeignKey("entities.id", ondelete="CASCADE", name=f"fk_{table}_entity_id_entities"),
            nullable=False,
        ),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("peer_id", "message_id", name=f"uq_{table}_peer_id_message_id"),
    ]


def upgrade() -> None:
    op.create_table(
        "uftp_flex_requests",
        *_common("uftp_flex_requests"),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("isps", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_uftp_flex_requests_entity_id_period",
        "uftp_flex_requests",
        ["entity_id", "period"],
    )
    op.create_table(
        "uftp_flex_offers",
        *_common("uftp_flex_offers"),
        sa.Column("flex_request_message_id", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("version", sa.String(20), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_uftp_flex_offers_entity_id_period", "uftp_flex_offers", ["entity_id", "period"]
    )
    op.create_table(
        "uftp_flex_orders",
        *_common("uftp_flex_orders"),
        sa.Column("flex_offer_message_id", sa.String(200), nullable=False),
        sa.Column("option_reference", sa.String(200), nullable=False),
        sa.Column("activation_factor", sa.String(10), nullable=False),
        sa.Column("price", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("order_reference", sa.String(200), nullable=False),
        sa.Column("isps", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_uftp_flex_offers_entity_id_period", table_name="uftp_flex_offers")
    op.drop_index("ix_uftp_flex_requests_entity_id_period", table_name="uftp_flex_requests")
    for table in reversed(_TABLES):
        op.drop_table(table)
