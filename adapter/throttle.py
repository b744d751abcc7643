"""The brake on guessing credentials: repeated failures lock an account or a client address
for a while, and a locked one is refused before any expensive check (docs/security.md).

The rule, stated once:

- A failure counts in a window of `window` that opens at the first failure after the last
  window closed. The `max_failures`-th failure of one window locks: for `first_lock`,
  doubled for each lock before it that ended less than `window` earlier, up to
  `longest_lock`.
- While locked nothing is checked and nothing is counted: no scrypt hash, no token read,
  whatever the credentials, even the right ones; the answer is 429 with Retry-After.
- A success does not reset the count. A peer logging in 200 times a second would otherwise
  wipe an attacker's count between every two guesses; failures expire with their window.

Where the state lives: an account's in the database (`store.accounts.LoginFailures`), so
that every process on one PostgreSQL refuses a locked account, a restart does not lift the
lock, and `flexbridge account unlock` (another process) can. A client address's and an
unknown username's here, in each process's memory, bounded: an attacker chooses addresses
and usernames freely, and a database row per guess would hand them a write per request.
Unknown usernames lock as accounts do, so a lock does not tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from adapter.auth import retry_after
from store.accounts import NO_FAILURES, Account, LoginFailures
from store.timeutil import utcnow

if TYPE_CHECKING:
    from adapter.metrics import Metrics
    from adapter.settings import Settings

log = logging.getLogger("flexbridge.auth")

# Doubling beyond this many locks in a row cannot matter: any sane longest_lock is reached.
_MAX_DOUBLINGS = 40
# A client address kept as a key is at most this long (an X-Forwarded-For entry is text).
_MAX_ADDRESS_CHARS = 64


@dataclass(frozen=True, slots=True)
class LockPolicy:
    max_failures: int  # 0: never lock
    window: timedelta
    first_lock: timedelta
    longest_lock: timedelta

    def after_failure(self, failures: LoginFailures, now: datetime) -> LoginFailures:
        """`failures` with one more failure at `now`, locked when it is the last one allowed."""
        if self.max_failures <= 0 or seconds_locked(failures, now) > 0:
            # Locked: the failure raced with the lock (checked before it was set) and is
            # not counted, as refused attempts are not.
            return failures
        in_window = failures.since is not None and now - failures.since < self.window
        count = failures.count + 1 if in_window else 1
        since = failures.since if in_window else now
        if count < self.max_failures:
            return replace(failures, count=count, since=since)
        last = failures.locked_until
        locks = failures.locks + 1 if last is not None and now - last < self.window else 1
        doubled = self.first_lock.total_seconds() * 2.0 ** min(locks - 1, _MAX_DOUBLINGS)
        lasting = min(doubled, self.longest_lock.total_seconds())
        return LoginFailures(0, None, now + timedelta(seconds=lasting), locks)

    def forgotten(self, failures: LoginFailures, now: datetime) -> bool:
        """Whether `failures` can no longer change what happens next: unlocked, its window
        closed and its last lock too long ago to grow the next one."""
        closed = failures.since is None or now - failures.since >= self.window
        last = failures.locked_until
        return closed and (last is None or now - last >= self.window)


def seconds_locked(failures: LoginFailures, now: datetime) -> float:
    """Seconds until the lock passes; 0 when there is none."""
    if failures.locked_until is None:
        return 0.0
    return max(0.0, (failures.locked_until - now).total_seconds())


def newly_locked(before: LoginFailures, after: LoginFailures, now: datetime) -> bool:
    return seconds_locked(after, now) > 0 and after.locked_until != before.locked_until


class MemoryLocks:
    """Failures and locks by key (a client address, an unknown username) in this process.

    At most `max_keys` are kept: entries the policy has forgotten anyway are dropped first
    (lossless); only when every entry still matters is the least recently failed one dropped,
    which at worst gives that key a fresh count.
    """

    def __init__(self, policy: LockPolicy, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.policy = policy
        self.max_keys = max_keys
        # Insertion order doubles as recency order: a failing key is moved to the end.
        self._failures: OrderedDict[str, LoginFailures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def seconds_locked(self, key: str, now: datetime) -> float:
        failures = self._failures.get(key)
        return 0.0 if failures is None else seconds_locked(failures, now)

    def failed(self, key: str, now: datetime) -> tuple[LoginFailures, LoginFailures]:
        """Count a failure of `key`; returns its failures before and after."""
        before = self._failures.pop(key, None)
        if before is None:
            self._make_room(now)
            before = NO_FAILURES
        after = self.policy.after_failure(before, now)
        self._failures[key] = after
        return before, after

    def locked(self, now: datetime) -> int:
        return sum(1 for failures in self._failures.values() if seconds_locked(failures, now))

    def _make_room(self, now: datetime) -> None:
        while self._failures and self.policy.forgotten(next(iter(self._failures.values())), now):
            self._failures.popitem(last=False)
        while len(self._failures) >= self.max_keys:
            self._failures.popitem(last=False)


@dataclass(slots=True)
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class OneAtATime:
    """One password check at a time per username in this process. Without it, guesses sent
    at once all pass the lock check before the first of them is counted, and each costs a
    hash; in turn, the guess after the lock is refused unhashed. A right password waits for
    one hash at most before the credential cache answers it."""

    def __init__(self) -> None:
        # Only keys with a check in flight: bounded by the requests in flight.
        self._turns: dict[str, _Turn] = {}

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.waiting += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.waiting -= 1
            if not turn.waiting:
                del self._turns[key]


def address_key(address: str | None) -> str:
    """The key a client address is counted under. An IPv6 client usually holds a whole /64
    and can pick a new address per guess, so IPv6 is counted by its /64 (IPv4-mapped
    addresses as IPv4)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()[:_MAX_ADDRESS_CHARS]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _too_many(what: str, seconds: float) -> web.HTTPTooManyRequests:
    wait = retry_after(seconds)
    return web.HTTPTooManyRequests(
        text=f"too many failed attempts {what}; retry in {wait} s",
        headers={"Retry-After": wait},
    )


# What counts toward a lock: guesses. A malformed, expired or missing credential is no
# guess at anyone's secret (a gateway with an expired token retrying behind a shared NAT
# must not lock out the others); those are counted in the metrics only.
GUESSES = frozenset(
    {
        "unknown_user",
        "wrong_password",
        "wrong_tenant_key",
        "unknown_token",
        "unknown_signature",
        "wrong_publisher",
        "impersonation",
    }
)


class Brake:
    """The brake of one app (app state BRAKE): the policies, the memory locks, the metrics,
    and one warning line per lock (never one per attempt)."""

    def __init__(
        self,
        accounts: LockPolicy,
        addresses: LockPolicy,
        metrics: Metrics,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.accounts = accounts
        self.addresses = MemoryLocks(addresses, max_keys)
        self.usernames = MemoryLocks(accounts, max_keys)
        self.checks = OneAtATime()
        self.clock = clock
        self._metrics = metrics
        metrics.auth_locked.labels("address").set_function(
            lambda: self.addresses.locked(self.clock())
        )
        metrics.auth_locked.labels("username").set_function(
            lambda: self.usernames.locked(self.clock())
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, metrics: Metrics, *, clock: Callable[[], datetime] = utcnow
    ) -> Brake:
        def policy(max_failures: int) -> LockPolicy:
            return LockPolicy(
                max_failures,
                timedelta(seconds=settings.auth_failure_window_seconds),
                timedelta(seconds=settings.auth_lock_seconds),
                timedelta(seconds=settings.auth_lock_max_seconds),
            )

        return cls(
            policy(settings.auth_max_failures),
            policy(settings.auth_address_max_failures),
            metrics,
            max_keys=settings.auth_tracked_keys,
            clock=clock,
        )

    # --- before a check: refuse what is locked ----------------------------------------

    def refuse_address(self, address: str, scheme: str) -> None:
        seconds = self.addresses.seconds_locked(address, self.clock())
        if seconds:
            self.count(scheme, "address_locked")
            raise _too_many("from this address", seconds)

    def refuse_account(self, failures: LoginFailures, scheme: str) -> None:
        seconds = seconds_locked(failures, self.clock())
        if seconds:
            self.count(scheme, "account_locked")
            # The words of refuse_username: a lock does not tell which usernames exist.
            raise _too_many("for this username", seconds)

    def refuse_username(self, username: str, scheme: str) -> None:
        seconds = self.usernames.seconds_locked(username, self.clock())
        if seconds:
            self.count(scheme, "account_locked")
            raise _too_many("for this username", seconds)

    # --- after a check: count what failed ---------------------------------------------

    def count(self, scheme: str, reason: str) -> None:
        self._metrics.auth_failures.labels(scheme, reason).inc()

    def failed(self, address: str, scheme: str, reason: str) -> None:
        """A refused credential from `address`: counted, and toward its lock if a guess."""
        self.count(scheme, reason)
        if reason not in GUESSES:
            return
        now = self.clock()
        before, after = self.addresses.failed(address, now)
        if newly_locked(before, after, now):
            self._metrics.auth_locks.labels("address").inc()
            log.warning(
                "client address %s locked for %d s after %d refused credentials within %d s "
                "(the last: %s %s)",
                address,
                seconds_locked(after, now),
                self.addresses.policy.max_failures,
                self.addresses.policy.window.total_seconds(),
                scheme,
                reason,
            )

    def username_failed(self, username: str, address: str) -> None:
        """A login with a username no account has: locked as an account would be."""
        now = self.clock()
        before, after = self.usernames.failed(username, now)
        if newly_locked(before, after, now):
            self._metrics.auth_locks.labels("username").inc()
            log.warning(
                "unknown username %r locked for %d s after %d failed logins within %d s "
                "(the last from %s)",
                username,
                seconds_locked(after, now),
                self.accounts.max_failures,
                self.accounts.window.total_seconds(),
                address,
            )

    def account_failed(
        self,
        account: Account,
        before: LoginFailures,
        after: LoginFailures,
        address: str,
        scheme: str,
        now: datetime,
    ) -> None:
        """After the database counted a failure of `account` at `now` (before -> after)."""
        if newly_locked(before, after, now):
            self._metrics.auth_locks.labels("account").inc()
            log.warning(
                "account %r of tenant %r locked for %d s after %d failed logins within %d s "
                "(the last: %s from %s); `flexbridge account unlock` lifts it",
                account.username,
                account.tenant.name,
                seconds_locked(after, now),
                self.accounts.max_failures,
                self.accounts.window.total_seconds(),
                scheme,
                address,
            )
