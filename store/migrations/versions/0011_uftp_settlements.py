"""uftp settlements

The monthly FlexSettlement of a DSO (store/uftp_settlements.py, docs/protocols/uftp-3.1.md,
"Settlement"): one row per FlexSettlement sent to an AGR, one per FlexOrder settled in it
(at most one per order: an order is never settled twice), and on each FlexOrder the
baseline it was placed against (the AGR's D-Prognosis then, which later revisions replace
in the series).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _fk(column: str, table: str, target: str) -> sa.Column[int]:
    return sa.Column(
        column,
        sa.Integer(),
        sa.ForeignKey(f"{target}.id", ondelete="CASCADE", name=f"fk_{table}_{column}_{target}"),
        nullable=False,
    )


def upgrade() -> None:
    with op.batch_alter_table("uftp_flex_orders") as orders:
        orders.add_column(sa.Column("baseline", sa.JSON(), nullable=True))
        orders.add_column(sa.Column("d_prognosis_message_id", sa.String(200), nullable=True))
    op.create_table(
        "uftp_settlements",
        sa.Column("id", sa.Integer(), nullable=False),
        _fk("tenant_id", "uftp_settlements", "tenants"),
        _fk("peer_id", "uftp_settlements", "peers"),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("answered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_uftp_settlements"),
        sa.UniqueConstraint("peer_id", "message_id", name="uq_uftp_settlements_peer_id_message_id"),
    )
    op.create_index(
        "ix_uftp_settlements_tenant_id_month", "uftp_settlements", ["tenant_id", "month"]
    )
    op.create_table(
        "uftp_order_settlements",
        sa.Column("id", sa.Integer(), nullable=False),
        _fk("settlement_id", "uftp_order_settlements", "uftp_settlements"),
        _fk("order_id", "uftp_order_settlements", "uftp_flex_orders"),
        sa.Column("order_reference", sa.String(200), nullable=False),
        sa.Column("price", sa.String(40), nullable=False),
        sa.Column("penalty", sa.String(40), nullable=False),
        sa.Column("net_settlement", sa.String(40), nullable=False),
        sa.Column("isps", sa.JSON(), nullable=False),
        sa.Column("disposition", sa.String(20), nullable=True),
        sa.Column("dispute_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_uftp_order_settlements"),
        sa.UniqueConstraint("order_id", name="uq_uftp_order_settlements_order_id"),
    )


def downgrade() -> None:
    op.drop_table("uftp_order_settlements")
    op.drop_index("ix_uftp_settlements_tenant_id_month", table_name="uftp_settlements")
    op.drop_table("uftp_settlements")
    with op.batch_alter_table("uftp_flex_orders") as orders:
        orders.drop_column("d_prognosis_message_id")
        orders.drop_column("baseline")
