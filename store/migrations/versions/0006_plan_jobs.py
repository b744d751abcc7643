"""plan jobs

A group's plan is no longer made inside the request that asks for it: the request stores
its inputs and a plan job, and any process running jobs (`serve` by default, or
`flexbridge worker`) claims it (hub/plan_jobs.py, docs/store.md).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_plan_jobs_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column(
            "peer_id",
            sa.Integer(),
            sa.ForeignKey("peers.id", ondelete="CASCADE", name="fk_plan_jobs_peer_id_peers"),
            nullable=False,
        ),
        sa.Column("group_key", sa.String(300), nullable=False),
        sa.Column(
            "entity_id",
            sa.Integer(),
            sa.ForeignKey(
                "entities.id", ondelete="CASCADE", name="fk_plan_jobs_entity_id_entities"
            ),
            nullable=False,
        ),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("claimed_generation", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_plan_jobs"),
        sa.UniqueConstraint(
            "peer_id",
            "group_key",
            "window_start",
            "window_end",
            name="uq_plan_jobs_peer_id_group_key_window_start_window_end",
        ),
    )
    op.create_index("ix_plan_jobs_requested_at", "plan_jobs", ["requested_at"])


def downgrade() -> None:
    op.drop_index("ix_plan_jobs_requested_at", table_name="plan_jobs")
    op.drop_table("plan_jobs")
