"""Tenants, accounts, tokens and application secrets in the store."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from store.accounts import (
    NO_FAILURES,
    LoginFailures,
    Role,
    account_for_token,
    add_account,
    count_locked_accounts,
    edit_login_failures,
    get_account,
    issue_token,
    parse_role,
    password_hash_of,
    unlock_account,
)
from store.app_secrets import get_or_create_secret
from store.errors import Conflict, NotFound, ValidationError
from store.secrets import hash_token, verify_password
from store.tenants import add_tenant, count_tenants, get_tenant, tenant_for_key
from store.timeutil import utcnow


async def test_tenant_key_is_returned_once_and_finds_the_tenant(db):
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot-a")
        other, other_key = await add_tenant(tx, "pilot-b")
    async with db.read() as tx:
        assert await tenant_for_key(tx, key) == tenant
        assert await tenant_for_key(tx, other_key) == other
        assert await tenant_for_key(tx, key + "x") is None
        assert await get_tenant(tx, "pilot-b") == other
        assert await count_tenants(tx) == 2


async def test_tenant_names_are_unique_and_checked(db):
    async with db.transaction() as tx:
        await add_tenant(tx, "pilot")
    with pytest.raises(Conflict):
        async with db.transaction() as tx:
            await add_tenant(tx, "pilot")
    with pytest.raises(ValidationError) as err:
        async with db.transaction() as tx:
            await add_tenant(tx, "has space")
    assert err.value.field == "name"
    async with db.read() as tx:
        with pytest.raises(NotFound, match="tenant not found: nobody"):
            await get_tenant(tx, "nobody")


async def test_password_is_stored_hashed_and_generated_when_absent(db):
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "t")
        account, given = await add_account(tx, tenant, "alice", Role.PARTICIPANT, "s3cret!")
        _, generated = await add_account(tx, tenant, "bob", Role.PEER)
    assert given == "s3cret!"
    assert len(generated) >= 16
    async with db.read() as tx:
        found, stored, key_hash, failures = await password_hash_of(tx, "alice")
        assert failures == NO_FAILURES
        assert key_hash == hash_token(key)
        assert found == account
        assert "s3cret!" not in stored
        assert verify_password("s3cret!", stored)
        assert not verify_password("wrong", stored)
        _bob, bob_hash, _, _ = await password_hash_of(tx, "bob")
        assert verify_password(generated, bob_hash)
        assert await password_hash_of(tx, "carol") is None


async def test_usernames_are_global_across_tenants(db):
    """CP-API 4.1.3.4: "each user name is associated to one tenant key"."""
    async with db.transaction() as tx:
        first, _ = await add_tenant(tx, "one")
        second, _ = await add_tenant(tx, "two")
        await add_account(tx, first, "shared", Role.PARTICIPANT)
    with pytest.raises(Conflict):
        async with db.transaction() as tx:
            await add_account(tx, second, "shared", Role.PARTICIPANT)


async def test_token_finds_its_account_until_it_expires(db):
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
        account, _ = await add_account(tx, tenant, "svc", Role.PARTICIPANT)
        forever = await issue_token(tx, account)
        short = await issue_token(tx, account, timedelta(minutes=5))
    async with db.read() as tx:
        assert await account_for_token(tx, forever) == account
        assert await account_for_token(tx, short) == account
        later = utcnow() + timedelta(minutes=6)
        assert await account_for_token(tx, short, now=later) is None
        assert await account_for_token(tx, forever, now=later) == account
        assert await account_for_token(tx, "not-a-token") is None
        assert await get_account(tx, tenant, "svc") == account


def test_unknown_role_is_refused_with_the_choices():
    assert parse_role(" Admin ") is Role.ADMIN
    with pytest.raises(ValidationError, match="expected one of admin"):
        parse_role("superuser")


async def test_app_secret_is_made_once_and_kept(db):
    async with db.transaction() as tx:
        first = await get_or_create_secret(tx, "jwt", lambda: "one")
    async with db.transaction() as tx:
        second = await get_or_create_secret(tx, "jwt", lambda: "two")
    assert first == second == "one"


async def test_failed_logins_are_counted_under_the_row_lock_and_unlock_forgets_them(db):
    """Processes failing one account at once each count (adapter/throttle.py's state)."""
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
        account, _ = await add_account(tx, tenant, "cpo", Role.PEER)
    now = utcnow()

    async def fail() -> None:
        async with db.transaction() as tx:
            await edit_login_failures(
                tx, account, lambda f: replace(f, count=f.count + 1, since=f.since or now)
            )

    await asyncio.gather(*(fail() for _ in range(5)))
    lock = LoginFailures(0, None, now + timedelta(minutes=1), 1)
    async with db.transaction() as tx:
        before, after = await edit_login_failures(tx, account, lambda _: lock)
        assert before.count == 5 and after == lock
    async with db.read() as tx:
        assert await count_locked_accounts(tx, now) == 1
        assert await count_locked_accounts(tx, now + timedelta(minutes=2)) == 0
        login = await password_hash_of(tx, "cpo")
        assert login is not None and login.failures == lock
    async with db.transaction() as tx:
        assert await unlock_account(tx, tenant, "cpo") == lock
        with pytest.raises(NotFound):
            await unlock_account(tx, tenant, "nobody")
    async with db.read() as tx:
        login = await password_hash_of(tx, "cpo")
        assert login is not None and login.failures == NO_FAILURES
        assert await count_locked_accounts(tx, now) == 0
