"""The connections a message names by EA1 address (A.1, A.8.6-7): an address that is not
EA1 (a plain name, FlexMeasures' `<owner>:<asset>` shorthand, the docs' `eal.` typo, an EAN)
is INVALID_DOMAIN naming what is wrong; one this tenant has no resource at is the endpoint's
`unknown` status (UNRECOGNIZED_ASSET on a POST, UNRECOGNIZED_CONNECTION_GROUP on a GET).
Another tenant's resource is as unknown as one nobody has."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.usef.v1_v2_0.errors import UsefError
from store.addresses import EA1Address
from store.catalogue import AssetType
from store.entities import Entity
from store.errors import ValidationError
from store.references import ExternalRef, find_many, normalise, parse_address
from store.tenants import Tenant


def ea1_address(text: str, field: str) -> EA1Address:
    """`text` as an EA1 address; INVALID_DOMAIN naming what is wrong with it."""
    try:
        address = parse_address(text, field)
    except ValidationError as exc:
        reason = "; ".join(issue.reason for issue in exc.issues)
        raise UsefError("INVALID_DOMAIN", f"{text[:80]!r}: {reason}.") from None
    if not isinstance(address, EA1Address):
        raise UsefError("INVALID_DOMAIN", f"{text[:80]!r} is not an EA1 address.")
    return address


def _parsed(text: str) -> ExternalRef:
    ref = normalise(ea1_address(text, "connection"))
    assert isinstance(ref, ExternalRef)
    return ref


async def resources_at(
    tx: AsyncConnection, tenant: Tenant, addresses: Sequence[str], *, unknown: str
) -> list[Entity]:
    """The resource at each address, in their order."""
    refs = [_parsed(text) for text in addresses]
    found = await find_many(tx, tenant, refs)
    resources = []
    for text, ref in zip(addresses, refs, strict=True):
        entity = found.get(ref)
        if entity is None or entity.asset_type is not AssetType.RESOURCE:
            raise UsefError(unknown, f"{text[:80]!r}")
        resources.append(entity)
    return resources
