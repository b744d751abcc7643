"""The brake on guessing credentials (adapter/throttle.py, docs/security.md): failed logins,
tenant keys, OSCP tokens and event-hub signatures lock an account or a client address, and
a locked one is refused with 429 before any hash is computed, until the lock passes or
`flexbridge account unlock` lifts it. Time is the brake's injected clock."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from adapter import guards
from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.keys import BRAKE, DB
from adapter.settings import Settings, SettingsError, load_settings
from adapter.throttle import LockPolicy, MemoryLocks, address_key, seconds_locked
from protocols.cpapi.v1 import sas
from store.accounts import (
    NO_FAILURES,
    LoginFailures,
    Role,
    add_account,
    issue_token,
    password_hash_of,
    record_token,
)
from store.tenants import add_tenant
from store.timeutil import utcnow

ASSETS = "/api/Asset/GetAssetV1List"
OSCP_HEARTBEAT = "/oscp/co/2.0/heartbeat"
EVENT_HUB = "/iotexternaleh/publishers/{}/messages"
FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))


class Clock:
    """The brake's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Server:
    client: TestClient
    clock: Clock
    tenant_key: str
    database_url: str

    async def login(self, password: str, *, user: str = "cpo", key: str | None = None):  # type: ignore[no-untyped-def]
        headers = {
            "Authorization": encode_basic_auth(user, password),
            "X-Tenant-Key": self.tenant_key if key is None else key,
        }
        return await self.client.post(ASSETS, json={}, headers=headers)

    async def status(self, password: str, **kwargs: str) -> int:
        return (await self.login(password, **kwargs)).status

    async def failures(self, username: str = "cpo") -> LoginFailures:
        async with self.client.app[DB].read() as tx:
            login = await password_hash_of(tx, username)
        assert login is not None
        return login.failures


@pytest.fixture
async def server(aiohttp_client, tmp_path):  # type: ignore[no-untyped-def]
    async def start(**changes: object) -> Server:
        url = f"sqlite+aiosqlite:///{tmp_path / 'brake.db'}"
        settings = replace(Settings(), database_url=url, admin_password="admin-pw", **changes)
        app = create_app(settings)
        clock = Clock()
        app[BRAKE].clock = clock
        client = await aiohttp_client(app)
        async with app[DB].transaction() as tx:
            tenant, key = await add_tenant(tx, "pilot")
            await add_account(tx, tenant, "cpo", Role.PARTICIPANT, "right")
        return Server(client, clock, key, url)

    return start


@pytest.fixture
def hashes(monkeypatch):  # type: ignore[no-untyped-def]
    """How often the server computed a password hash."""
    calls = []
    real = guards.verify_password

    def counting(password: str, stored: str | None) -> bool:
        calls.append(password)
        return real(password, stored)

    monkeypatch.setattr(guards, "verify_password", counting)
    return calls


# --- accounts -------------------------------------------------------------------------------


async def test_ten_wrong_passwords_lock_the_account_and_even_the_right_one_waits_for_the_lock(
    server,
):
    s = await server()
    assert await s.status("right") == 200  # verified once: the credential cache knows it
    for _ in range(10):
        assert await s.status("wrong") == 401
    refused = await s.login("right")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "60"
    body = await refused.json()  # the CP-API's own envelope
    assert body["ErrorCode"] == "rate_limited"
    assert body["Message"] == "too many failed attempts for this username; retry in 60 s"
    s.clock.advance(59.5)
    late = await s.login("right")
    assert (late.status, late.headers["Retry-After"]) == (429, "1")
    s.clock.advance(1)
    assert await s.status("right") == 200


async def test_a_locked_account_is_refused_without_computing_a_hash(server, hashes):
    s = await server()
    for _ in range(10):
        assert await s.status("wrong") == 401
    assert len(hashes) == 10
    for password in ["wrong", "right", "another guess"] * 5:
        assert await s.status(password) == 429
    assert len(hashes) == 10


async def test_guesses_sent_at_once_cost_no_more_hashes_than_the_lock_allows(server, hashes):
    """Checks of one username take turns, so the guess after the tenth waits for the tenth to
    be counted, and is refused unhashed."""
    s = await server()
    statuses = await asyncio.gather(*(s.status(f"guess-{n}") for n in range(30)))
    assert sorted(statuses) == [401] * 10 + [429] * 20
    assert len(hashes) == 10


async def test_a_right_password_below_the_threshold_is_served_and_counted_failures_stay(
    server, hashes, monkeypatch
):
    s = await server()
    for _ in range(9):
        assert await s.status("wrong") == 401
    assert await s.status("right") == 200
    stored = await s.failures()
    assert (stored.count, stored.locked_until) == (9, None)
    # The hot path of good logins: one hash for all of them, and no database write.
    writes = []
    real = guards.edit_login_failures

    async def counting(*args):  # type: ignore[no-untyped-def]
        writes.append(args)
        return await real(*args)

    monkeypatch.setattr(guards, "edit_login_failures", counting)
    for _ in range(50):
        assert await s.status("right") == 200
    assert (len(hashes), writes) == (10, [])


async def test_failures_older_than_the_window_do_not_count_toward_a_lock(server):
    s = await server()
    for _ in range(9):
        assert await s.status("wrong") == 401
    s.clock.advance(900)  # the window of 15 minutes has closed: a new count begins
    for _ in range(9):
        assert await s.status("wrong") == 401
    assert await s.status("right") == 200
    assert await s.status("wrong") == 401  # the tenth of this window
    assert await s.status("right") == 429


async def test_wrong_tenant_keys_with_the_right_password_lock_the_account(server):
    s = await server()
    for n in range(10):
        assert await s.status("right", key=f"guessed-key-{n}") == 403
    assert await s.status("right") == 429


async def test_an_unknown_username_locks_as_an_account_does_so_a_lock_names_no_account(server):
    s = await server()
    for _ in range(10):
        assert await s.status("x", user="nobody") == 401
        assert await s.status("wrong") == 401
    unknown, known = await s.login("x", user="nobody"), await s.login("right")
    assert unknown.status == known.status == 429
    assert (await unknown.json())["Message"] == (await known.json())["Message"]


async def test_a_lock_is_logged_once_and_counted_in_metrics(server, caplog):
    s = await server()
    with caplog.at_level(logging.WARNING, logger="flexbridge.auth"):
        for _ in range(15):
            await s.status("wrong")
    locks = [r.getMessage() for r in caplog.records if r.name == "flexbridge.auth"]
    assert len(locks) == 1
    assert locks[0].startswith("account 'cpo' of tenant 'pilot' locked for 60 s after 10 failed")
    text = await (await s.client.get("/metrics")).text()
    assert 'flexbridge_auth_failures_total{reason="wrong_password",scheme="basic"} 10.0' in text
    assert 'flexbridge_auth_failures_total{reason="account_locked",scheme="basic"} 5.0' in text
    assert 'flexbridge_auth_locks_total{kind="account"} 1.0' in text
    assert 'flexbridge_auth_locked{kind="account"} 1.0' in text
    assert 'flexbridge_auth_locked{kind="address"} 0.0' in text
    s.clock.advance(61)
    text = await (await s.client.get("/metrics")).text()
    assert 'flexbridge_auth_locked{kind="account"} 0.0' in text


async def test_account_unlock_on_the_command_line_lifts_the_lock(server):
    s = await server(login_cache_seconds=0)  # the unlock is seen at the next request
    for _ in range(10):
        await s.status("wrong")
    assert await s.status("right") == 429
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    env["FLEXBRIDGE_DATABASE_URL"] = s.database_url

    async def flexbridge(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            FLEXBRIDGE,
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, _ = await flexbridge("account", "unlock", "--tenant", "pilot", "--username", "cpo")
    assert code == 0 and out.startswith("account cpo unlocked (it was locked until ")
    assert await s.failures() == NO_FAILURES
    assert await s.status("right") == 200
    again = await flexbridge("account", "unlock", "--tenant", "pilot", "--username", "cpo")
    assert again[:2] == (0, "account cpo was not locked (0 failed logins forgotten)\n")
    code, _, err = await flexbridge("account", "unlock", "--tenant", "pilot", "--username", "x")
    assert code == 2 and err.count("\n") == 1 and "x" in err


# --- client addresses -----------------------------------------------------------------------


async def _peer_token(s: Server) -> str:
    async with s.client.app[DB].transaction() as tx:
        tenant, _ = await add_tenant(tx, "dso")
        account, _ = await add_account(tx, tenant, "dso-1", Role.PEER)
        return await issue_token(tx, account)


async def test_wrong_tokens_from_one_address_lock_that_address_and_not_another(server):
    s = await server(auth_address_max_failures=5, trusted_proxy_hops=1)
    token = await _peer_token(s)

    async def heartbeat(token: str, address: str):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Token {token}", "X-Forwarded-For": f"203.0.113.9, {address}"}
        return await s.client.post(OSCP_HEARTBEAT, json={}, headers=headers)

    for n in range(5):
        assert (await heartbeat(f"guess{n}", "198.51.100.1")).status == 403  # OSCP: unknown
    refused = await heartbeat(token, "198.51.100.1")  # even the right token
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "60"
    assert (await refused.json()) == {  # OSCP's own envelope
        "message": "too many failed attempts from this address; retry in 60 s"
    }
    assert (await heartbeat("guess", "198.51.100.2")).status == 403  # another client
    s.clock.advance(60)
    assert (await heartbeat("guess", "198.51.100.1")).status == 403


async def test_x_forwarded_for_is_ignored_unless_a_setting_trusts_a_proxy(server):
    s = await server(auth_address_max_failures=5)
    for n in range(5):
        headers = {"Authorization": "Token guess", "X-Forwarded-For": f"198.51.100.{n}"}
        assert (await s.client.post(OSCP_HEARTBEAT, json={}, headers=headers)).status == 403
    headers = {"Authorization": "Token guess", "X-Forwarded-For": "198.51.100.99"}
    assert (await s.client.post(OSCP_HEARTBEAT, json={}, headers=headers)).status == 429


async def test_wrong_signatures_lock_the_address_in_the_event_hub_envelope(server):
    s = await server(auth_address_max_failures=3)
    expiry = utcnow() + timedelta(days=1)
    token = sas.make_token("https://hub.example/iotexternaleh/publishers/gw1", expiry, "gw1")
    async with s.client.app[DB].transaction() as tx:
        tenant, _ = await add_tenant(tx, "grid")
        account, _ = await add_account(tx, tenant, "gw1", Role.GATEWAY)
        await record_token(tx, account, sas.parse_token(token).signature, expiry)
    forged = token.replace("sig=", "sig=X")
    for _ in range(3):
        response = await s.client.post(
            EVENT_HUB.format("gw1"), json={}, headers={"Authorization": forged}
        )
        assert response.status == 401
    refused = await s.client.post(
        EVENT_HUB.format("gw1"), json={}, headers={"Authorization": token}
    )
    assert refused.status == 429 and refused.headers["Retry-After"] == "60"
    assert (await refused.json())["ErrorCode"] == "rate_limited"
    text = await (await s.client.get("/metrics")).text()
    assert 'flexbridge_auth_failures_total{reason="unknown_signature",scheme="sas"} 3.0' in text
    assert 'flexbridge_auth_locked{kind="address"} 1.0' in text


async def test_an_expired_signature_is_no_guess_and_locks_no_address(server):
    s = await server(auth_address_max_failures=3)
    expired = sas.make_token(
        "https://hub.example/iotexternaleh/publishers/gw1", utcnow() - timedelta(1), "gw1"
    )
    for _ in range(6):
        response = await s.client.post(
            EVENT_HUB.format("gw1"), json={}, headers={"Authorization": expired}
        )
        assert response.status == 401
    text = await (await s.client.get("/metrics")).text()
    assert 'flexbridge_auth_failures_total{reason="expired",scheme="sas"} 6.0' in text


# --- the rule, by itself ----------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
POLICY = LockPolicy(3, timedelta(minutes=15), timedelta(minutes=1), timedelta(minutes=5))


def _fail(policy: LockPolicy, failures: LoginFailures, now: datetime, times: int) -> LoginFailures:
    for _ in range(times):
        failures = policy.after_failure(failures, now)
    return failures


def test_each_lock_soon_after_the_last_lasts_twice_as_long_up_to_the_longest() -> None:
    failures, now, lasted = NO_FAILURES, T0, []
    for _ in range(5):
        failures = _fail(POLICY, failures, now, 3)
        lasted.append(seconds_locked(failures, now))
        now = failures.locked_until or now
    assert lasted == [60, 120, 240, 300, 300]


def test_a_lock_long_after_the_last_is_a_first_lock_again() -> None:
    first = _fail(POLICY, NO_FAILURES, T0, 3)
    assert first.locked_until is not None
    later = first.locked_until + timedelta(minutes=15)
    assert seconds_locked(_fail(POLICY, first, later, 3), later) == 60


def test_a_failure_during_a_lock_is_not_counted() -> None:
    locked = _fail(POLICY, NO_FAILURES, T0, 3)
    assert POLICY.after_failure(locked, T0 + timedelta(seconds=30)) == locked


def test_no_lock_when_max_failures_is_zero() -> None:
    off = replace(POLICY, max_failures=0)
    assert _fail(off, NO_FAILURES, T0, 1000) == NO_FAILURES


def test_memory_locks_stay_bounded_and_drop_what_no_longer_matters_first() -> None:
    locks = MemoryLocks(POLICY, max_keys=3)
    locks.failed("old", T0 - timedelta(minutes=20))  # its window has closed: it matters no more
    for _ in range(3):
        locks.failed("attacker", T0)
    now = T0 + timedelta(seconds=30)
    locks.failed("a", now)
    locks.failed("b", now)
    assert len(locks) == 3 and locks.seconds_locked("attacker", now) == 30
    for n in range(100):
        locks.failed(f"spray-{n}", now)
    assert len(locks) == 3


def test_ipv6_clients_are_counted_by_their_64_prefix() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key(None) == "unknown"


def test_a_longest_lock_shorter_than_the_first_is_refused() -> None:
    with pytest.raises(SettingsError, match="auth_lock_max_seconds"):
        load_settings(
            environ={
                "FLEXBRIDGE_AUTH_LOCK_SECONDS": "600",
                "FLEXBRIDGE_AUTH_LOCK_MAX_SECONDS": "60",
            }
        )
