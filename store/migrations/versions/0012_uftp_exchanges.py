"""uftp exchanges

What a DSO sends a peer outside a trade, and the answer (store/uftp_exchanges.py,
docs/protocols/uftp-3.1.md, "The CRO" and "TestMessage"): DSOPortfolioUpdate and
DSOPortfolioQuery to a CRO, TestMessage to any UFTP peer.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLE = "uftp_exchanges"


def _fk(column: str, target: str) -> sa.Column[int]:
    return sa.Column(
        column,
        sa.Integer(),
        sa.ForeignKey(f"{target}.id", ondelete="CASCADE", name=f"fk_{TABLE}_{column}_{target}"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        _fk("tenant_id", "tenants"),
        _fk("peer_id", "peers"),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("rejection_reason", sa.String(2000), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("answered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
        sa.UniqueConstraint("peer_id", "message_id", name=f"uq_{TABLE}_peer_id_message_id"),
    )
    op.create_index(f"ix_{TABLE}_peer_id_conversation_id", TABLE, ["peer_id", "conversation_id"])


def downgrade() -> None:
    op.drop_index(f"ix_{TABLE}_peer_id_conversation_id", table_name=TABLE)
    op.drop_table(TABLE)
