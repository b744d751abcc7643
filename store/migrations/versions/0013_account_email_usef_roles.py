"""account email and usef roles

An account's email, by which the USEF API's requestAuthToken may name it (its username
serves too), and its USEF market roles (Aggregator, Supplier, MDC, DSO, Prosumer, ESCo),
which the USEF API's services are reserved for (docs/protocols/usef-api.md).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("usef_roles", sa.String(200), nullable=False, server_default=""))
        batch.create_unique_constraint("uq_accounts_email", ["email"])


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("uq_accounts_email", type_="unique")
        batch.drop_column("usef_roles")
        batch.drop_column("email")
