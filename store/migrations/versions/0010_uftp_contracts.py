"""uftp contracts

Bilateral contracts between the DSO and its AGRs (flex reserved per congestion point,
Period and ISP), the FlexReservationUpdates sent under them, and the ContractID a
FlexRequest carried or a FlexOffer named (store/uftp_contracts.py, store/uftp.py,
docs/protocols/uftp-3.1.md).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, referred: str) -> sa.Column[int]:
    return sa.Column(
        column,
        sa.Integer(),
        sa.ForeignKey(f"{referred}.id", ondelete="CASCADE", name=f"fk_{table}_{column}_{referred}"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "uftp_contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        _fk("uftp_contracts", "tenant_id", "tenants"),
        _fk("uftp_contracts", "peer_id", "peers"),
        _fk("uftp_contracts", "entity_id", "entities"),
        sa.Column("contract_id", sa.String(200), nullable=False),
        sa.Column("valid_from", sa.String(10), nullable=False),
        sa.Column("valid_to", sa.String(10), nullable=False),
        sa.Column("reserved_w", sa.BigInteger(), nullable=True),
        sa.Column("reserved_isps", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("removed_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_uftp_contracts"),
        sa.UniqueConstraint(
            "tenant_id", "contract_id", name="uq_uftp_contracts_tenant_id_contract_id"
        ),
    )
    op.create_index("ix_uftp_contracts_entity_id", "uftp_contracts", ["entity_id"])
    table = "uftp_reservation_updates"
    op.create_table(
        table,
        sa.Column("id", sa.Integer(), nullable=False),
        _fk(table, "tenant_id", "tenants"),
        _fk(table, "peer_id", "peers"),
        _fk(table, "entity_id", "entities"),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        _fk(table, "uftp_contract_id", "uftp_contracts"),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("isps", sa.JSON(), nullable=False),
        sa.Column("rejection_reason", sa.String(2000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("peer_id", "message_id", name=f"uq_{table}_peer_id_message_id"),
    )
    op.create_index(f"ix_{table}_uftp_contract_id_period", table, ["uftp_contract_id", "period"])
    for trade in ("uftp_flex_requests", "uftp_flex_offers"):
        op.add_column(trade, sa.Column("contract_id", sa.String(200), nullable=True))


def downgrade() -> None:
    for trade in ("uftp_flex_offers", "uftp_flex_requests"):
        with op.batch_alter_table(trade) as batch:
            batch.drop_column("contract_id")
    op.drop_index("ix_uftp_reservation_updates_uftp_contract_id_period", "uftp_reservation_updates")
    op.drop_table("uftp_reservation_updates")
    op.drop_index("ix_uftp_contracts_entity_id", "uftp_contracts")
    op.drop_table("uftp_contracts")
