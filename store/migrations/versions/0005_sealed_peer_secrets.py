"""room for sealed peer secrets

The credential flexbridge presents to a peer is stored sealed (store/secret_box.py): a
secret of 500 characters becomes "fernet:" and a token of about 760. Rows written before
keep their clear text until `flexbridge secrets rotate` seals them (docs/security.md).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("peers") as batch_op:
        batch_op.alter_column(
            "out_secret",
            existing_type=sa.String(500),
            type_=sa.String(1000),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("peers") as batch_op:
        batch_op.alter_column(
            "out_secret",
            existing_type=sa.String(1000),
            type_=sa.String(500),
            existing_nullable=True,
        )
