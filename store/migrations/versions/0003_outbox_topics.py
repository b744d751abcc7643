"""outbox topics (supersession) and a per-peer order index

A message may name a topic; a newer message to the same peer with the same topic supersedes
an undelivered older one. Messages to one peer are delivered oldest first.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("topic", sa.String(200), nullable=True))
        batch_op.create_index("ix_outbox_peer_id_status_id", ["peer_id", "status", "id"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_peer_id_status_id")
        batch_op.drop_column("topic")
