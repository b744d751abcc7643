"""Accounts and their credentials: passwords (scrypt) and opaque API tokens (SHA-256)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Row, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.errors import Conflict, NotFound, ValidationError
from store.secrets import hash_password, hash_token, new_password, new_secret
from store.tables import accounts, api_tokens, tenants
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow


class Role(StrEnum):
    """What an account may do. Protocol surfaces check the role they need."""

    ADMIN = "admin"
    PARTICIPANT = "participant"  # a CP-API / USEF / ETRM client of one tenant
    PEER = "peer"  # an OCMP/OSCP/UFTP counterpart
    GATEWAY = "gateway"  # an event-hub publisher
    READER = "reader"  # read-only access


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    tenant: Tenant
    username: str
    role: Role
    email: str | None = None
    # USEF market roles (Aggregator, Supplier, MDC, DSO, Prosumer, ESCo): the USEF API's
    # services are reserved for some of them. The store keeps them; the CLI checks names.
    usef_roles: tuple[str, ...] = ()


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise ValidationError("role", f"unknown role {text!r}; expected one of {choices}") from None


_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.username,
    accounts.c.role,
    accounts.c.password_hash,
    accounts.c.failed_logins,
    accounts.c.failed_since,
    accounts.c.locked_until,
    accounts.c.lock_count,
    accounts.c.email,
    accounts.c.usef_roles,
    tenants.c.id.label("tenant_id"),
    tenants.c.name.label("tenant_name"),
    tenants.c.key_hash.label("tenant_key_hash"),
)


def _account(row: Row[*tuple[Any, ...]]) -> Account:
    return Account(
        row.id,
        Tenant(row.tenant_id, row.tenant_name),
        row.username,
        Role(row.role),
        row.email,
        tuple(role for role in row.usef_roles.split(",") if role),
    )


def _account_query() -> Select[*tuple[Any, ...]]:
    return select(*_ACCOUNT_COLUMNS).join(tenants, tenants.c.id == accounts.c.tenant_id)


async def add_account(
    tx: AsyncConnection,
    tenant: Tenant,
    username: str,
    role: Role,
    password: str | None = None,
    *,
    email: str | None = None,
    usef_roles: Sequence[str] = (),
) -> tuple[Account, str]:
    """Create an account; returns it and its password (the one given, or a generated one)."""
    if not username or len(username) > 200 or any(ch in username for ch in ":\r\n"):
        raise ValidationError("username", "1-200 characters, without ':' or line breaks")
    _check_email(email)
    if any(not r or "," in r for r in usef_roles) or len(",".join(usef_roles)) > 200:
        raise ValidationError("usef_roles", "names without commas, 200 characters in all")
    password = password or new_password()
    try:
        result = await tx.execute(
            insert(accounts).values(
                tenant_id=tenant.id,
                username=username,
                role=role.value,
                password_hash=hash_password(password),
                created_at=to_micros(utcnow()),
                email=email,
                usef_roles=",".join(usef_roles),
            )
        )
    except IntegrityError:
        what = username if email is None else f"{username} or with email {email}"
        raise Conflict(f"account {what!r} already exists") from None
    account = Account(inserted_id(result), tenant, username, role, email, tuple(usef_roles))
    return account, password


def _check_email(email: str | None) -> None:
    """An address as flexmeasures-client insists on (`.+@.+\\..+`), that its column holds."""
    if email is None:
        return
    printable = all(ord(c) >= 0x21 and not 0xD800 <= ord(c) <= 0xDFFF for c in email)
    if len(email) > 254 or not _EMAIL.fullmatch(email) or not printable:
        raise ValidationError("email", f"{email[:60]!r} is not an email address (name@domain)")


_EMAIL = re.compile(r"[^@]+@[^@]+\.[^@]+")


async def login_name(tx: AsyncConnection, login: str) -> str:
    """The username of the account whose email is `login`, else `login` itself: a login may
    name an account either way (the USEF API's `email`)."""
    query = select(accounts.c.username).where(accounts.c.email == login)
    found: str | None = (await tx.execute(query)).scalar_one_or_none()
    return login if found is None else found


async def get_account(tx: AsyncConnection, tenant: Tenant, username: str) -> Account:
    query = _account_query().where(
        accounts.c.username == username, accounts.c.tenant_id == tenant.id
    )
    row = (await tx.execute(query)).first()
    if row is None:
        raise NotFound("account", f"{tenant.name}/{username}")
    return _account(row)


async def account_by_id(tx: AsyncConnection, account_id: int) -> Account:
    """The account with this id, of whichever tenant (a peer row names its account so)."""
    row = (await tx.execute(_account_query().where(accounts.c.id == account_id))).first()
    if row is None:
        raise NotFound("account", f"#{account_id}")
    return _account(row)


@dataclass(frozen=True, slots=True)
class LoginFailures:
    """An account's recent failed logins and its lock; adapter/throttle.py decides what they
    mean, the store only keeps them."""

    count: int = 0  # failures in the window that began at `since`
    since: datetime | None = None
    # Kept after it passes: the end of the last lock, from which a next lock may grow.
    locked_until: datetime | None = None
    locks: int = 0  # locks in a row


NO_FAILURES = LoginFailures()


def _micros_or_none(value: datetime | None) -> int | None:
    return None if value is None else to_micros(value)


def _datetime_or_none(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)


def _failures(row: Row[*tuple[Any, ...]]) -> LoginFailures:
    return LoginFailures(
        row.failed_logins,
        _datetime_or_none(row.failed_since),
        _datetime_or_none(row.locked_until),
        row.lock_count,
    )


class Login(NamedTuple):
    """What checking a basic login needs, in one read: the account, its password hash (to
    verify off the event loop), its tenant's key hash (CP-API 4.1.3.4's header) and its
    failed logins (a locked account is refused before its hash is computed)."""

    account: Account
    password_hash: str
    tenant_key_hash: str
    failures: LoginFailures = NO_FAILURES


async def password_hash_of(tx: AsyncConnection, username: str) -> Login | None:
    row = (await tx.execute(_account_query().where(accounts.c.username == username))).first()
    if row is None or row.password_hash is None:
        return None
    return Login(_account(row), row.password_hash, row.tenant_key_hash, _failures(row))


async def _failures_for_update(tx: AsyncConnection, account: Account) -> LoginFailures:
    query = (
        select(
            accounts.c.failed_logins,
            accounts.c.failed_since,
            accounts.c.locked_until,
            accounts.c.lock_count,
        )
        .where(accounts.c.id == account.id)
        .with_for_update()
    )
    row = (await tx.execute(query)).first()
    if row is None:
        raise NotFound("account", account.username)
    return _failures(row)


async def _keep_failures(tx: AsyncConnection, account: Account, failures: LoginFailures) -> None:
    await tx.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(
            failed_logins=failures.count,
            failed_since=_micros_or_none(failures.since),
            locked_until=_micros_or_none(failures.locked_until),
            lock_count=failures.locks,
        )
    )


async def edit_login_failures(
    tx: AsyncConnection, account: Account, change: Callable[[LoginFailures], LoginFailures]
) -> tuple[LoginFailures, LoginFailures]:
    """Apply `change` to the account's failed logins under its row lock and keep the result,
    returned with what there was: two processes failing one account at once count two
    failures, not one."""
    before = await _failures_for_update(tx, account)
    after = change(before)
    await _keep_failures(tx, account, after)
    return before, after


async def unlock_account(tx: AsyncConnection, tenant: Tenant, username: str) -> LoginFailures:
    """Forget the account's failed logins and lift its lock (`flexbridge account unlock`);
    returns what there was."""
    account = await get_account(tx, tenant, username)
    before, _ = await edit_login_failures(tx, account, lambda _: NO_FAILURES)
    return before


async def count_locked_accounts(tx: AsyncConnection, now: datetime) -> int:
    """Accounts whose lock has not passed at `now` (the /metrics gauge)."""
    query = select(func.count()).where(accounts.c.locked_until > to_micros(now))
    return int((await tx.execute(query)).scalar_one())


async def issue_token(tx: AsyncConnection, account: Account, ttl: timedelta | None = None) -> str:
    """A new opaque bearer token for `account` (shown once, stored hashed)."""
    token = new_secret()
    now = utcnow()
    await tx.execute(
        insert(api_tokens).values(
            account_id=account.id,
            token_hash=hash_token(token),
            created_at=to_micros(now),
            expires_at=None if ttl is None else to_micros(now + ttl),
        )
    )
    return token


async def account_for_token(
    tx: AsyncConnection, token: str, now: datetime | None = None
) -> Account | None:
    query = (
        _account_query()
        .add_columns(api_tokens.c.expires_at)
        .join(api_tokens, api_tokens.c.account_id == accounts.c.id)
        .where(api_tokens.c.token_hash == hash_token(token))
    )
    row = (await tx.execute(query)).first()
    if row is None:
        return None
    if row.expires_at is not None and from_micros(row.expires_at) <= (now or utcnow()):
        return None
    return _account(row)


async def record_token(
    tx: AsyncConnection, account: Account, token: str, expires_at: datetime | None
) -> None:
    """Keep the hash of a token made elsewhere (a gateway's SAS signature) for `account`."""
    await tx.execute(
        insert(api_tokens).values(
            account_id=account.id,
            token_hash=hash_token(token),
            created_at=to_micros(utcnow()),
            expires_at=None if expires_at is None else to_micros(expires_at),
        )
    )


async def revoke_token(tx: AsyncConnection, account: Account, token: str) -> bool:
    """Forget one token of `account` (OSCP 2.0 registration: token C replaces token A);
    True when the account had it."""
    result = await tx.execute(
        delete(api_tokens).where(
            api_tokens.c.account_id == account.id, api_tokens.c.token_hash == hash_token(token)
        )
    )
    return result.rowcount == 1


async def accounts_of(tx: AsyncConnection, tenant: Tenant) -> list[Account]:
    """The tenant's accounts, oldest first."""
    query = _account_query().where(accounts.c.tenant_id == tenant.id).order_by(accounts.c.id)
    return [_account(row) for row in await tx.execute(query)]
