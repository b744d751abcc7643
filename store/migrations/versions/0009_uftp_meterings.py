"""uftp meterings

The revision of each AGR's UFTP Metering per connection (its Meter entity) and Period, so
that an older revision is refused (store/uftp.py, docs/protocols/uftp-3.1.md).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uftp_meterings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey(
                "tenants.id", ondelete="CASCADE", name="fk_uftp_meterings_tenant_id_tenants"
            ),
            nullable=False,
        ),
        sa.Column(
            "peer_id",
            sa.Integer(),
            sa.ForeignKey("peers.id", ondelete="CASCADE", name="fk_uftp_meterings_peer_id_peers"),
            nullable=False,
        ),
        sa.Column(
            "entity_id",
            sa.Integer(),
            sa.ForeignKey(
                "entities.id", ondelete="CASCADE", name="fk_uftp_meterings_entity_id_entities"
            ),
            nullable=False,
        ),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uftp_meterings"),
        sa.UniqueConstraint(
            "peer_id",
            "entity_id",
            "period",
            name="uq_uftp_meterings_peer_id_entity_id_period",
        ),
    )


def downgrade() -> None:
    op.drop_table("uftp_meterings")
