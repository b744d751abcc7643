"""What the shapeshifter-uftp peer tests share: where the harnesses live, the skip when the
peers venv lacks the library, starting and stopping a harness process and reading its ready
line, its test-only routes, and signing a SignedMessage on the pytest side.

The harnesses (tests/peers/uftp_agr.py, tests/peers/uftp_dso_standin.py, their routes in
tests/peers/uftp_harness.py) run the library's own services in .venv-peers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyoscp_peer import wait_until

__all__ = [
    "AGR_HARNESS",
    "CRO_HARNESS",
    "DSO_STANDIN",
    "UftpPeer",
    "inner_test_message",
    "new_private_key",
    "node",
    "requires_uftp_peer",
    "signed_message",
    "wait_until",
]

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
AGR_HARNESS = ROOT / "tests" / "peers" / "uftp_agr.py"
DSO_STANDIN = ROOT / "tests" / "peers" / "uftp_dso_standin.py"
CRO_HARNESS = ROOT / "tests" / "peers" / "uftp_cro.py"

READY = re.compile(
    r"uftp (?P<role>AGR|DSO|CRO) ready on (?P<url>http://127\.0\.0\.1:\d+)"
    r" message_url=(?P<message_url>\S+) domain=(?P<domain>\S+)"
    r" public_key=(?P<public_key>\S+) private_key=(?P<private_key>\S+)"
)
DEADLINE = 20.0
TIMEOUT = aiohttp.ClientTimeout(total=15)


def _uftp_installed() -> bool:
    return any(PEERS_VENV.glob("lib/python3*/site-packages/shapeshifter_uftp/__init__.py"))


# Skipped on a developer's machine without the library in the peers venv; in CI (`make test`
# makes the venv) a missing library fails the tests instead of hiding them.
requires_uftp_peer = pytest.mark.skipif(
    not (PEERS_PYTHON.exists() and _uftp_installed()) and not os.environ.get("CI"),
    reason=(
        "shapeshifter-uftp is not installed in .venv-peers: create it with `make "
        ".venv-peers/.installed`, or `python3 -m venv .venv-peers && .venv-peers/bin/pip "
        "install -r tests/peers/requirements-pyoscp.txt -r tests/peers/requirements-uftp.txt`"
    ),
)


@dataclass
class UftpPeer:
    """A harness process (the library's AGR, DSO or CRO service) and an HTTP client for it."""

    proc: asyncio.subprocess.Process
    role: str
    url: str  # http://127.0.0.1:P, where the test-only routes are
    message_url: str  # the library's message route
    domain: str
    public_key: str  # raw base64 of the 32-byte Ed25519 public key
    private_key: str  # base64 of libsodium's 64-byte secret key
    stderr: Path
    session: aiohttp.ClientSession = field(repr=False)

    @classmethod
    async def start(cls, script: Path, tmp_path: Path, *args: str) -> UftpPeer:
        """Start ``script`` (a harness of this module) on a free port; wait for its ready line."""
        stderr = tmp_path / f"{script.stem}.stderr"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        with stderr.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                str(PEERS_PYTHON),
                str(script),
                "--port",
                "0",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
            )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
        except TimeoutError:
            line = b""
        match = READY.fullmatch(line.decode().strip())
        if not match:
            proc.kill()
            await proc.wait()
            raise AssertionError(
                f"no ready line from {script.name} (got {line!r}); stderr:\n"
                + stderr.read_text(errors="replace")[-3000:]
            )
        session = aiohttp.ClientSession(timeout=TIMEOUT)
        return cls(proc, stderr=stderr, session=session, **match.groupdict())

    async def stop(self) -> int | None:
        """SIGTERM, then the exit status (killed after the deadline: the status says so)."""
        await self.session.close()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), DEADLINE)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    async def get(self, what: str, **params: str) -> Any:
        """GET /_<what>: received, requests, sent, peer."""
        async with self.session.get(f"{self.url}/_{what}", params=params) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def received(self, message_type: str | None = None) -> list[dict[str, Any]]:
        params = {} if message_type is None else {"type": message_type}
        return await self.get("received", **params)

    async def set_peer(self, **change: str) -> dict[str, Any]:
        """POST /_peer: change the other side's domain, public_key or url."""
        async with self.session.post(f"{self.url}/_peer", json=change) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def send(
        self,
        message_type: str,
        attributes: dict[str, Any] | None = None,
        children: list[dict[str, Any]] | None = None,
        *,
        any_type: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """POST /_send/<type>: the library's client sends it; (status, outcome)."""
        body = {"attributes": attributes or {}, "children": children or []}
        params = {"any": "1"} if any_type else {}
        url = f"{self.url}/_send/{message_type}"
        async with self.session.post(url, json=body, params=params) as resp:
            return resp.status, await resp.json()

    async def post_message(self, body: bytes) -> tuple[int, str]:
        """POST raw bytes to the library's message route, as a peer would."""
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        async with self.session.post(self.message_url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()


def node(message_type: str, children: list[dict[str, Any]] | None = None, **attributes: Any):
    """A child element in the harness's JSON form: {"type", "attributes", "children"}."""
    return {"type": message_type, "attributes": attributes, "children": children or []}


# ------------------------------------------------------------------ signing, pytest side


def new_private_key() -> str:
    """A fresh key as the library takes it: base64(seed[32] || public key[32])."""
    key = Ed25519PrivateKey.generate()
    return base64.b64encode(key.private_bytes_raw() + key.public_key().public_bytes_raw()).decode()


def signed_message(inner: bytes, private_key: str, sender_domain: str, sender_role: str) -> bytes:
    """A SignedMessage whose Body is libsodium's combined form: signature[64] || inner."""
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key)[:32])
    body = base64.b64encode(key.sign(inner) + inner).decode()
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<SignedMessage SenderDomain="{sender_domain}"'
        f' SenderRole="{sender_role}" Body="{body}"/>'
    ).encode()


def inner_test_message(sender_domain: str, recipient_domain: str) -> tuple[bytes, str]:
    """A UFTP 3.1 TestMessage (inner XML) and its MessageID."""
    message_id = str(uuid.uuid4())
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<TestMessage Version="3.1.0"'
        f' SenderDomain="{sender_domain}" RecipientDomain="{recipient_domain}"'
        f' TimeStamp="{datetime.now(UTC).isoformat()}" MessageID="{message_id}"'
        f' ConversationID="{uuid.uuid4()}"/>'
    )
    return xml.encode(), message_id
