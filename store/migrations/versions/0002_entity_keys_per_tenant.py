"""platform keys unique per tenant, not across tenants

A globally unique key told a tenant inserting another tenant's key that it exists.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entities") as batch_op:
        batch_op.drop_constraint("uq_entities_key", type_="unique")
        batch_op.create_unique_constraint("uq_entities_tenant_id_key", ["tenant_id", "key"])


def downgrade() -> None:
    with op.batch_alter_table("entities") as batch_op:
        batch_op.drop_constraint("uq_entities_tenant_id_key", type_="unique")
        batch_op.create_unique_constraint("uq_entities_key", ["key"])
