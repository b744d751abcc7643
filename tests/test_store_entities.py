"""Entities, connectors and the reference resolver, on every database backend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from store.addresses import parse_entity_address
from store.catalogue import AssetSubType, AssetType, ConnectorType, EntityStatus
from store.entities import (
    add_connector,
    children_of,
    connectors_of,
    create_entity,
    end_connector,
    list_entities,
    update_entity,
)
from store.errors import Conflict, NotFound, ValidationError
from store.references import (
    EntityRef,
    ExternalRef,
    ProtocolId,
    add_reference,
    references_of,
    resolve,
)
from store.tables import entities
from store.tenants import add_tenant

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 6, 1, tzinfo=UTC)


async def _tenants(db):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        first, _ = await add_tenant(tx, "one")
        second, _ = await add_tenant(tx, "two")
    return first, second


async def _site_and_battery(tx, tenant):  # type: ignore[no-untyped-def]
    site = await create_entity(tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "Site 123"})
    battery = await create_entity(
        tx,
        tenant,
        AssetType.RESOURCE,
        AssetSubType.STORAGE,
        {
            "name": "Battery",
            "StorageType": "battery",
            "InstalledMaxCapacity": 10,
            "InstalledMinCapacity": 0,
            "IsControllable": "TRUE",
            "ControllableType": "OnOff",
        },
    )
    return site, battery


async def test_properties_are_checked_typed_and_defaulted(db):
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
    assert site.properties["SiteType"] == "NotSpecified"
    assert site.status is EntityStatus.ACTIVE
    assert battery.name == "Battery"
    assert battery.properties["StorageType"] == "Battery"
    assert battery.properties["IsControllable"] is True
    assert battery.properties["InstalledMaxCapacity"] == 10


async def test_a_refused_entity_writes_nothing_and_names_every_field(db):
    tenant, _ = await _tenants(db)
    with pytest.raises(ValidationError) as refused:
        async with db.transaction() as tx:
            await create_entity(tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "ok"})
            await create_entity(
                tx,
                tenant,
                AssetType.RESOURCE,
                AssetSubType.STORAGE,
                {"Name": "B", "EfficiencyOfCharging": 1.5, "StorageType": "Flywheel"},
            )
    assert {issue.field for issue in refused.value.issues} == {
        "EfficiencyOfCharging",
        "StorageType",
    }
    async with db.read() as tx:
        assert (await tx.execute(select(func.count()).select_from(entities))).scalar_one() == 0


async def test_update_keeps_unsupplied_properties_and_rechecks_orderings(db):
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        _, battery = await _site_and_battery(tx, tenant)
        changed = await update_entity(
            tx, tenant, battery, {"Name": "Big battery", "InstalledMaxCapacity": 20}
        )
    assert changed.name == "Big battery"
    assert changed.properties["StorageType"] == "Battery"
    with pytest.raises(ValidationError) as refused:
        async with db.transaction() as tx:
            await update_entity(tx, tenant, changed, {"InstalledMinCapacity": 25})
    assert refused.value.field == "InstalledMinCapacity"


async def test_deleted_entities_leave_the_default_listing(db):
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        await update_entity(tx, tenant, battery, {"EntityStatus": "deleted"})
        listed = await list_entities(tx, tenant)
        everything = await list_entities(tx, tenant, include_deleted=True)
        resources = await list_entities(
            tx, tenant, asset_type=AssetType.RESOURCE, include_deleted=True
        )
    assert [e.key for e in listed] == [site.key]
    assert len(everything) == 2 and [e.key for e in resources] == [battery.key]


async def test_one_active_parent_of_a_type_at_any_time(db):
    """CP-API 3.1: "Validation ensures a resource asset has only one active connection to one
    site or site asset group over any period of time"."""
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        other = await create_entity(
            tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "Site 2"}
        )
        await add_connector(tx, tenant, site, battery, ConnectorType.SITE, valid_to=T1)
        # Afterwards is fine; so is the same link again (nothing added).
        await add_connector(tx, tenant, other, battery, ConnectorType.SITE, valid_from=T1)
        await add_connector(tx, tenant, site, battery, ConnectorType.SITE, valid_to=T1)
    with pytest.raises(Conflict, match="already has an active Site parent"):
        async with db.transaction() as tx:
            await add_connector(tx, tenant, other, battery, ConnectorType.SITE, valid_from=T0)
    async with db.read() as tx:
        before = await connectors_of(tx, tenant, battery, direction="parent", at=T0)
        after = await connectors_of(tx, tenant, battery, direction="parent", at=T1)
        assert [c.parent.key for c in before] == [site.key]
        assert [c.parent.key for c in after] == [other.key]
        assert [e.key for e in await children_of(tx, tenant, site, at=T0)] == [battery.key]
        assert await children_of(tx, tenant, site, at=T1) == []


async def test_connector_refuses_itself_and_a_reversed_interval(db):
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        with pytest.raises(ValidationError, match="itself"):
            await add_connector(tx, tenant, site, site, ConnectorType.AREA)
        with pytest.raises(ValidationError) as reversed_interval:
            await add_connector(
                tx, tenant, site, battery, ConnectorType.SITE, valid_from=T1, valid_to=T0
            )
        assert reversed_interval.value.field == "ValidToTime"
        with pytest.raises(ValidationError, match="naive"):
            await add_connector(
                tx, tenant, site, battery, ConnectorType.SITE, valid_from=datetime(2026, 1, 1)
            )


async def test_platform_key_wins_over_external_key(db):
    """CP-API 4.2.1: "Key (string, optional): Platform Key, if supplied will be used as
    preference over the ExternalKey if also supplied"."""
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        await add_reference(tx, tenant, site, ExternalRef("System 1", "Site", "12344534457"))
        both = EntityRef(
            key=str(battery.key),
            system="System 1",
            reference_type="Site",
            external_key="12344534457",
        )
        only_external = EntityRef(
            system="System 1", reference_type="Site", external_key="12344534457"
        )
        assert (await resolve(tx, tenant, both)).key == battery.key
        assert (await resolve(tx, tenant, only_external)).key == site.key


async def test_unknown_references_raise_not_found_naming_the_reference(db):
    tenant, _ = await _tenants(db)
    async with db.read() as tx:
        with pytest.raises(NotFound, match="System 9/Resource/42"):
            await resolve(tx, tenant, ExternalRef("System 9", "Resource", "42"))
        missing = uuid.uuid4()
        with pytest.raises(NotFound, match=str(missing)):
            await resolve(tx, tenant, missing)
        with pytest.raises(ValidationError) as bad_key:
            await resolve(tx, tenant, EntityRef(key="not-a-guid"))
        assert bad_key.value.field == "Key"
        with pytest.raises(ValidationError) as no_system:
            await resolve(tx, tenant, EntityRef(external_key="1"))
        assert no_system.value.field == "SystemIdentifier"


async def test_one_resolver_for_addresses_protocol_ids_and_cross_references(db):
    tenant, _ = await _tenants(db)
    ea1 = parse_entity_address("ea1.2018-06.io.flexmeasures.company:1:1")
    ean = parse_entity_address("ean.871685900012636543")
    group = ProtocolId("ocmp", "cpo-1", "group", "G-7")
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        for ref in (ea1, group, ExternalRef("System 1", "Site", "S1")):
            await add_reference(tx, tenant, site, ref)
        await add_reference(tx, tenant, battery, ean)
        assert (await resolve(tx, tenant, ea1)).key == site.key
        assert (await resolve(tx, tenant, group)).key == site.key
        assert (await resolve(tx, tenant, ean)).key == battery.key
        # The same group id from another peer names nothing.
        with pytest.raises(NotFound):
            await resolve(tx, tenant, ProtocolId("ocmp", "cpo-2", "group", "G-7"))
        names = await references_of(tx, tenant, site)
    assert [str(n) for n in names] == [
        "usef/ea1/ea1.2018-06.io.flexmeasures.company:1:1",
        "ocmp:cpo-1/group/G-7",
        "System 1/Site/S1",
    ]


async def test_a_reference_names_one_entity(db):
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        await add_reference(tx, tenant, site, ExternalRef("S", "Site", "1"))
        await add_reference(tx, tenant, site, ExternalRef("S", "Site", "1"))  # idempotent
        with pytest.raises(Conflict, match="already names entity"):
            await add_reference(tx, tenant, battery, ExternalRef("S", "Site", "1"))
        # Another reference type with the same key is another name.
        await add_reference(tx, tenant, battery, ExternalRef("S", "Resource", "1"))


async def test_tenants_never_see_each_others_entities(db):
    first, second = await _tenants(db)
    async with db.transaction() as tx:
        site, _ = await _site_and_battery(tx, first)
        await add_reference(tx, first, site, ExternalRef("S", "Site", "1"))
    async with db.read() as tx:
        assert await list_entities(tx, second) == []
        with pytest.raises(NotFound):
            await resolve(tx, second, site.key)
        with pytest.raises(NotFound):
            await resolve(tx, second, ExternalRef("S", "Site", "1"))


async def test_no_function_accepts_another_tenants_entity(db):
    first, second = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, first)
        own_site = await create_entity(tx, second, AssetType.AREA, AssetSubType.SITE, {"Name": "S"})
        for attempt in (
            update_entity(tx, second, battery, {"Name": "hijack"}),
            add_connector(tx, second, own_site, battery, ConnectorType.SITE),
            add_reference(tx, second, battery, ExternalRef("S", "Resource", "1")),
            references_of(tx, second, battery),
            connectors_of(tx, second, site),
        ):
            with pytest.raises(NotFound):
                await attempt
    async with db.read() as tx:
        assert (await resolve(tx, first, battery.key)).name == "Battery"


async def test_a_platform_key_in_use_in_the_tenant_is_a_conflict_not_a_crash(db):
    first, _ = await _tenants(db)
    key = uuid.uuid4()
    async with db.transaction() as tx:
        await create_entity(tx, first, AssetType.AREA, AssetSubType.SITE, {"Name": "A"}, key=key)
        with pytest.raises(Conflict, match="already in use in this tenant"):
            await create_entity(
                tx, first, AssetType.AREA, AssetSubType.SITE, {"Name": "B"}, key=key
            )


async def test_another_tenants_platform_key_reveals_nothing(db):
    """Keys are unique per tenant: inserting a key another tenant uses succeeds, so that the
    answer does not tell that the key exists elsewhere, and each tenant sees its own."""
    first, second = await _tenants(db)
    key = uuid.uuid4()
    async with db.transaction() as tx:
        await create_entity(tx, first, AssetType.AREA, AssetSubType.SITE, {"Name": "A"}, key=key)
        await create_entity(tx, second, AssetType.AREA, AssetSubType.SITE, {"Name": "B"}, key=key)
    async with db.read() as tx:
        assert (await resolve(tx, first, key)).name == "A"
        assert (await resolve(tx, second, key)).name == "B"


async def test_relinking_the_same_parent_with_another_period_is_a_conflict(db):
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        first = await add_connector(tx, tenant, site, battery, ConnectorType.SITE, valid_to=T1)
        again = await add_connector(tx, tenant, site, battery, ConnectorType.SITE, valid_to=T1)
        assert again.id == first.id
        with pytest.raises(Conflict):
            await add_connector(tx, tenant, site, battery, ConnectorType.SITE)


async def test_ending_a_connector_closes_its_period_or_deletes_a_future_one(db):
    tenant, _ = await _tenants(db)
    async with db.transaction() as tx:
        site, battery = await _site_and_battery(tx, tenant)
        current = await add_connector(tx, tenant, site, battery, ConnectorType.SITE, valid_from=T0)
        ended = await end_connector(tx, tenant, current, T1)
        assert ended.valid_to == T1 and ended.status is EntityStatus.ACTIVE
        # Ending it again later changes nothing: it ended already.
        assert (await end_connector(tx, tenant, ended, T1 + timedelta(days=1))).valid_to == T1
        future = await add_connector(
            tx, tenant, site, battery, ConnectorType.SITE, valid_from=T1 + timedelta(days=9)
        )
        assert (await end_connector(tx, tenant, future, T1)).status is EntityStatus.DELETED
        stored = {c.id: c for c in await connectors_of(tx, tenant, battery)}
    assert stored[current.id].valid_to == T1
    assert stored[future.id].status is EntityStatus.DELETED
    # The period after T1 is free again for an active parent.
    async with db.transaction() as tx:
        await add_connector(tx, tenant, site, battery, ConnectorType.SITE, valid_from=T1)
