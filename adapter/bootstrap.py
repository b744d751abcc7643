"""First start: an empty database gets a tenant `default` and an admin account."""

from __future__ import annotations

from dataclasses import dataclass

from store.accounts import Role, add_account
from store.db import Database
from store.tenants import add_tenant, count_tenants

DEFAULT_TENANT = "default"
ADMIN_USERNAME = "admin"


@dataclass(frozen=True, slots=True)
class FirstStart:
    tenant: str
    tenant_key: str
    username: str
    password: str
    password_generated: bool

    def banner(self) -> str:
        password = self.password if self.password_generated else "(from FLEXBRIDGE_ADMIN_PASSWORD)"
        return "\n".join(
            (
                "flexbridge: first start, created tenant and admin account (shown once):",
                f"  tenant:     {self.tenant}",
                f"  tenant key: {self.tenant_key}   (header X-Tenant-Key)",
                f"  username:   {self.username}",
                f"  password:   {password}",
            )
        )


async def first_start(db: Database, admin_password: str | None) -> FirstStart | None:
    """Create the default tenant and admin when there is no tenant at all; else None."""
    async with db.startup() as tx:
        if await count_tenants(tx):
            return None
        tenant, key = await add_tenant(tx, DEFAULT_TENANT)
        _, password = await add_account(
            tx, tenant, ADMIN_USERNAME, Role.ADMIN, admin_password or None
        )
    return FirstStart(DEFAULT_TENANT, key, ADMIN_USERNAME, password, not admin_password)
