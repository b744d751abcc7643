"""flexbridge's own UFTP identity per tenant: the DSO's Internet domain and its Ed25519
signing key, made once and kept, as `flexbridge uftp key` prints it for the AGRs'
configuration. The key is sealed with the server's secret keys (store/secret_box.py) and
re-sealed by `flexbridge secrets rotate` with the peers' secrets."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.sealing import SigningKey
from store.app_secrets import get_or_create_secret, get_secret
from store.db import secrets_of
from store.secret_box import open_secret, seal_secret
from store.tenants import Tenant


@dataclass(frozen=True, slots=True)
class Identity:
    domain: str  # lowercase, as InternetDomainType requires
    key: SigningKey


def default_domain(configured: str | None, public_url: str) -> str:
    """The `uftp_domain` setting, else the host of `public_url`."""
    return (configured or urlsplit(public_url).hostname or "localhost").lower()


def _domain_name(tenant: Tenant) -> str:
    return f"uftp-domain:{tenant.id}"


async def identity_of(tx: AsyncConnection, tenant: Tenant, domain: str) -> Identity:
    """The tenant's identity, made with `domain` the first time it is asked for (later asks
    get the one made then, whatever domain they give)."""
    box = secrets_of(tx)

    def make_key() -> str:
        sealed = seal_secret(box, SigningKey.generate().secret)
        assert sealed is not None  # a generated secret is never empty
        return sealed

    kept_domain = await get_or_create_secret(tx, _domain_name(tenant), domain.lower)
    stored = await get_or_create_secret(tx, f"uftp-key:{tenant.id}", make_key)
    secret = open_secret(box, stored, f"uftp key of {tenant.name}")
    assert secret is not None  # made non-empty above
    return Identity(kept_domain, SigningKey.from_secret(secret))


async def kept_domain(tx: AsyncConnection, tenant: Tenant) -> str | None:
    """The tenant's DSO domain, if its identity was made (nothing is made here)."""
    return await get_secret(tx, _domain_name(tenant))
