"""failed logins and locks on accounts

An account's recent failed logins and its lock live with the account, so that every process
sharing the database refuses a locked account and `flexbridge account unlock` reaches them
all (docs/security.md).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("failed_since", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("locked_until", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("lock_count", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("lock_count")
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_since")
        batch_op.drop_column("failed_logins")
