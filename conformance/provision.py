"""Provision a flexbridge database for the conformance suite and write the credentials file.

The runner (`conformance.runner`) speaks HTTP only and knows nothing of flexbridge's store;
this helper is the one place that does, because a suite run against flexbridge itself needs
logins, peers and the entities the vectors name before the server starts:

- tenant `conformance` with a CP-API participant, an OCMP peer (basic login), an OSCP peer
  (out-of-band token A) and an event-hub gateway (SharedAccessSignature);
- tenant `conformance-other` with a participant of its own, for the vectors that check that
  one tenant's login and key never reach another tenant's data (CP-API 4.1.3.3, 4.1.3.4);
- the CP-API endpoint of 6.1.1 pointed at the runner's peer endpoint (when its URL is known);
- the ids the vectors use: OCMP group `site-1` with charger `cp-1`; OSCP groups `abc123`
  and `CSMS-GROUP-ID` (the spec's example ids) and `site-1` with charger `evse-1`;
- UFTP (when the peer endpoint's URL is known): the tenant's DSO identity, a fresh Ed25519
  key for the runner as AGR `agr.conformance.example` (a uftp peer whose base URL is the
  peer endpoint's /uftp/message), a congestion point the AGR is active at with one
  connection, and one it is not active at - what `flexbridge uftp key`, `flexbridge peer add
  --protocol uftp --role AGR --public-key` and `flexbridge uftp congestion-point add` do.

    python -m conformance.provision --database-url sqlite+aiosqlite:///cf.db \\
        --credentials cf.json [--peer-url http://127.0.0.1:8765] [--base-url URL]

writes the credentials file that `flexbridge conformance --credentials` reads
(docs/conformance.md describes its shape).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.uftp import RECEIVER_PATH
from hub.provisioning import NewPeer, provision_peer
from protocols.cpapi.v1 import sas
from protocols.cpapi.v1.outbound import configure_endpoint
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.sealing import SigningKey
from store.accounts import Role, add_account, record_token
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.db import open_database
from store.entities import add_connector, create_entity
from store.key_file import secret_box
from store.migrate import upgrade
from store.references import ExternalRef, ProtocolId, add_reference
from store.secret_box import SecretBox
from store.secrets import new_secret
from store.tenants import add_tenant, get_tenant
from store.timeutil import utcnow

TENANT = "conformance"
OTHER_TENANT = "conformance-other"
USEF_USER, USEF_EMAIL = "cf-usef", "cf-usef@conformance.example"
USEF_AUTHORITY = "ea1.2026-12.example.conformance"
USEF_CONNECTION = f"{USEF_AUTHORITY}:usef-1"
USEF_MARKET = "cf_da"
CPAPI_USER = "cf-cpapi"
OTHER_USER = "cf-cpapi-other"
OCMP_PEER = "cf-cpo"
OCMP_USER = "cf-ocmp"
OSCP_PEER = "cf-fp"
GATEWAY = "cf-gw"
OUTBOUND_PATH = "/cpapi/iip"
OUTBOUND_SYSTEM = "System xyz"

UFTP_DSO = "dso.conformance.example"
UFTP_AGR = "agr.conformance.example"
UFTP_POINT = "ea1.2026-12.example.conformance:cp-1"
UFTP_OTHER_POINT = "ea1.2026-12.example.conformance:cp-other"  # the AGR is not active here
UFTP_CONNECTION = "871685900012345678"  # an 18-digit EAN at UFTP_POINT

# The ids the vectors name, per protocol: {group_id: [asset_id, ...]}.
OCMP_GROUPS = {"site-1": ["cp-1"]}
OSCP_GROUPS = {"abc123": [], "CSMS-GROUP-ID": [], "site-1": ["evse-1"]}


async def _groups(tx: Any, tenant: Any, protocol: str, peer: str, groups: dict) -> None:
    for group_id, assets in groups.items():
        site = await create_entity(
            tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": f"{protocol} {group_id}"}
        )
        await add_reference(tx, tenant, site, ProtocolId(protocol, peer, "group", group_id))
        for asset_id in assets:
            charger = await create_entity(
                tx,
                tenant,
                AssetType.RESOURCE,
                AssetSubType.CHARGING,
                {"Name": f"{protocol} {asset_id}"},
            )
            await add_reference(tx, tenant, charger, ProtocolId(protocol, peer, "asset", asset_id))
            await add_connector(tx, tenant, site, charger, ConnectorType.SITE)


async def provision(
    database_url: str,
    credentials_path: str | Path | None = None,
    *,
    peer_url: str | None = None,
    base_url: str = "http://127.0.0.1:8080",
    event_hub_path: str = "iotexternaleh",
    secrets: SecretBox | None = None,
) -> dict[str, Any]:
    """Create everything the vectors need in a fresh (or migrated) database; returns the
    credentials (and writes them as JSON to `credentials_path` when given).

    `peer_url` is where the runner's peer endpoint will listen (`--peer-port`): the tenant's
    CP-API endpoint (6.1.1) is set to `<peer_url>/cpapi/iip`; without it the CP-API section 6
    vectors are skipped. `base_url` is only written into the SAS token's resource. `secrets`
    are the keys the server will open the endpoint's password with (store/key_file.py)."""
    db = open_database(database_url, secrets=secrets)
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            tenant, tenant_key = await add_tenant(tx, TENANT)
            other, other_key = await add_tenant(tx, OTHER_TENANT)
            _, cpapi_password = await add_account(tx, tenant, CPAPI_USER, Role.PARTICIPANT)
            _, other_password = await add_account(tx, other, OTHER_USER, Role.PARTICIPANT)
        ocmp_password = new_secret()
        await provision_peer(
            db,
            NewPeer(TENANT, "ocmp", OCMP_PEER, None, OCMP_USER, ocmp_password),
        )
        token_a = new_secret()
        await provision_peer(db, NewPeer(TENANT, "oscp", OSCP_PEER, None, token=token_a))
        resource = f"{base_url.rstrip('/')}/{event_hub_path.strip('/')}/publishers/{GATEWAY}"
        expiry = utcnow() + timedelta(days=30)
        sas_token = sas.make_token(resource, expiry, key_name=GATEWAY)
        outbound: dict[str, Any] | None = None
        async with db.transaction() as tx:
            tenant = await get_tenant(tx, TENANT)
            gateway, _ = await add_account(tx, tenant, GATEWAY, Role.GATEWAY)
            await record_token(tx, gateway, sas.parse_token(sas_token).signature, expiry)
            await _groups(tx, tenant, "ocmp", OCMP_PEER, OCMP_GROUPS)
            await _groups(tx, tenant, "oscp", OSCP_PEER, OSCP_GROUPS)
            if peer_url:
                outbound = {
                    "peer_port": urlsplit(peer_url).port,
                    "path": OUTBOUND_PATH,
                    "username": "cf-iip",
                    "password": new_secret(),
                    "system": OUTBOUND_SYSTEM,
                }
                await configure_endpoint(
                    tx,
                    tenant,
                    url=peer_url.rstrip("/") + OUTBOUND_PATH,
                    username=outbound["username"],
                    password=outbound["password"],
                    system=OUTBOUND_SYSTEM,
                )
        uftp = await _uftp(db, peer_url) if peer_url else None
        usef = await _usef(db)
    finally:
        await db.close()
    credentials: dict[str, Any] = {
        "cpapi": {
            "username": CPAPI_USER,
            "password": cpapi_password,
            "tenant_key": tenant_key,
        },
        "cpapi_other": {
            "username": OTHER_USER,
            "password": other_password,
            "tenant_key": other_key,
        },
        "eventhub": {"gateway_id": GATEWAY, "sas_token": sas_token},
        "ocmp": {"username": OCMP_USER, "password": ocmp_password, "tenant_key": tenant_key},
        "oscp": {"token": token_a},
    }
    if outbound is not None:
        credentials["cpapi_outbound"] = outbound
    if uftp is not None:
        credentials["uftp"] = uftp
    credentials["usef"] = usef
    if credentials_path is not None:
        Path(credentials_path).write_text(json.dumps(credentials, indent=2) + "\n")
    return credentials


async def _usef(db: Any) -> dict[str, Any]:
    """A USEF API account (an MDC and a Prosumer), a connection with its EA1 address and a
    market (docs/protocols/usef-api.md)."""
    password = new_secret()
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, TENANT)
        await add_account(
            tx,
            tenant,
            USEF_USER,
            Role.PARTICIPANT,
            password,
            email=USEF_EMAIL,
            usef_roles=("MDC", "Prosumer"),
        )
        charger = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.CHARGING, {"Name": "usef connection"}
        )
        await add_reference(tx, tenant, charger, ExternalRef("usef", "ea1", USEF_CONNECTION))
        await create_entity(tx, tenant, AssetType.AREA, AssetSubType.MARKET, {"Name": USEF_MARKET})
    return {
        "email": USEF_EMAIL,
        "password": password,
        "connection": USEF_CONNECTION,
        "market": f"{USEF_AUTHORITY}:{USEF_MARKET}",
    }


async def _uftp(db: Any, peer_url: str) -> dict[str, Any]:
    """Our DSO identity, the runner's AGR key and peer, and the two congestion points."""
    agr = SigningKey.generate()
    async with db.transaction() as tx:
        identity = await identity_of(tx, await get_tenant(tx, TENANT), UFTP_DSO)
    receiver = peer_url.rstrip("/") + RECEIVER_PATH
    await provision_peer(
        db, NewPeer(TENANT, "uftp", UFTP_AGR, receiver, role="AGR", public_keys=(agr.public,))
    )
    point = await add_congestion_point(
        db, NewCongestionPoint(TENANT, UFTP_POINT, (f"ean.{UFTP_CONNECTION}",), (UFTP_AGR,))
    )
    await add_congestion_point(db, NewCongestionPoint(TENANT, UFTP_OTHER_POINT))
    return {
        "agr_domain": UFTP_AGR,
        "agr_secret_key": agr.secret,
        "agr_public_key": agr.public,
        "receiver_url": receiver,
        "dso_domain": identity.domain,
        "dso_public_key": identity.key.public,
        "congestion_point": UFTP_POINT,
        "congestion_point_key": str(point.key),
        "other_congestion_point": UFTP_OTHER_POINT,
        "connection": UFTP_CONNECTION,
        "time_zone": "Europe/Amsterdam",
    }


def _keys_of(environ: Mapping[str, str]) -> SecretBox:
    """The keys a server started with `environ` seals and opens peer secrets with."""
    return secret_box(
        environ.get("FLEXBRIDGE_SECRET_KEYS"),
        environ.get("FLEXBRIDGE_SECRET_KEY_FILE") or "flexbridge.key",
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Running:
    """A provisioned flexbridge serving on a free port."""

    url: str
    credentials: Path
    peer_port: int  # where the runner's peer endpoint must listen (--peer-port)
    database_url: str
    log: Path
    process: subprocess.Popen

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


STARTUP_SECONDS = 60.0
STOP_SECONDS = 40.0  # the server's shutdown_timeout is 30 s


@contextlib.contextmanager
def running_flexbridge(folder: Path, env: Mapping[str, str] | None = None) -> Iterator[Running]:
    """A fresh SQLite database in `folder`, provisioned, served by a real `flexbridge serve`
    process on a free port; stopped (SIGTERM) on exit. The credentials file is written to
    `folder/credentials.json`; `env` adds FLEXBRIDGE_* settings."""
    folder.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite+aiosqlite:///{folder / 'flexbridge.db'}"
    port, peer_port = free_port(), free_port()
    while peer_port == port:
        peer_port = free_port()
    url = f"http://127.0.0.1:{port}"
    credentials = folder / "credentials.json"
    environment = {
        **os.environ,
        "FLEXBRIDGE_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "FLEXBRIDGE_OUTBOX_POLL_SECONDS": "0.2",
        "FLEXBRIDGE_SECRET_KEY_FILE": str(folder / "flexbridge.key"),
        **(env or {}),
    }
    keys = _keys_of(environment)
    asyncio.run(
        provision(
            database_url,
            credentials,
            peer_url=f"http://127.0.0.1:{peer_port}",
            base_url=url,
            secrets=keys,
        )
    )
    command = [sys.executable, "-m", "adapter.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--database-url", database_url]
    log = folder / "flexbridge.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    running = Running(url, credentials, peer_port, database_url, log, process)
    try:
        _wait_ready(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(running: Running) -> None:
    """Poll /health until it answers 200, with a deadline (the process may still be
    migrating the database)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(
                f"flexbridge exited with {running.process.returncode}:\n{running.output()}"
            )
        try:
            with urllib.request.urlopen(running.url + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)  # polling with a deadline
    raise RuntimeError(f"flexbridge not ready after {STARTUP_SECONDS:.0f} s:\n{running.output()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.provision",
        description="provision a flexbridge database for the conformance suite",
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--credentials", required=True, help="where to write the JSON file")
    parser.add_argument("--peer-url", help="the runner's peer endpoint (runner --peer-port)")
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    args = parser.parse_args(argv)
    try:
        asyncio.run(
            provision(
                args.database_url,
                args.credentials,
                peer_url=args.peer_url,
                base_url=args.base_url,
                # The server's keys: FLEXBRIDGE_SECRET_KEYS, or its key file (created here).
                secrets=_keys_of(os.environ),
            )
        )
    except Exception as exc:  # a command line tool: one line, exit 2
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"credentials written to {args.credentials}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
