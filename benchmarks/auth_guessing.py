"""Password guessing against a real flexbridge server: how much scrypt an attacker buys.

    .venv/bin/python benchmarks/auth_guessing.py [--seconds 10] [--concurrency 8]
                                                 [--source DIR]

Set-up (not timed): a fresh SQLite file, a tenant, the attacked account `victim` and a second
account `busy`; a `flexbridge serve` subprocess on it, run from --source (default this
checkout; an older one, e.g. `git archive HEAD~1 | tar -x -C /tmp/old`, measures the code
before the brake).

1. Guessing: --concurrency clients send wrong basic-auth passwords for `victim` (with the
   right tenant key) for --seconds. Each 401 for a known account cost the server one scrypt
   hash; a 429 cost none. The server's CPU seconds per second come from /proc (Linux).
2. Then `victim`'s right password: served (200), or refused while the lock lasts (429).
3. Good logins of `busy` from the same clients for --seconds, after the guessing (the hot
   path of a peer's heartbeats: the credential cache answers, no hash).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
ASSETS = "/api/Asset/GetAssetV1List"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _flexbridge(source: Path, env: dict[str, str], *args: str) -> str:
    # `python -m adapter.cli` from the source tree runs that tree's code, not the installed one.
    done = subprocess.run(
        [sys.executable, "-m", "adapter.cli", *args],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def _hammer(
    session: aiohttp.ClientSession,
    url: str,
    headers_of: list[dict[str, str]],
    seconds: float,
    concurrency: int,
) -> tuple[Counter[int], float]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        i = n
        while time.monotonic() < deadline:
            async with session.post(url, json={}, headers=headers_of[i % len(headers_of)]) as r:
                statuses[r.status] += 1
                await r.read()
            i += concurrency

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return statuses, time.monotonic() - started


async def _measure(base: str, key: str, pid: int, seconds: float, concurrency: int) -> None:
    url = base + ASSETS
    wrong = [
        {"Authorization": _basic("victim", f"guess-{n}"), "X-Tenant-Key": key} for n in range(997)
    ]
    right = {"Authorization": _basic("victim", "victim-pw"), "X-Tenant-Key": key}
    busy = [{"Authorization": _basic("busy", "busy-pw"), "X-Tenant-Key": key}]
    async with aiohttp.ClientSession() as session:
        cpu = _cpu_seconds(pid)
        statuses, wall = await _hammer(session, url, wrong, seconds, concurrency)
        cpu = _cpu_seconds(pid) - cpu
        hashed = statuses.get(401, 0)
        print(f"guessing, {concurrency} clients, {wall:.1f} s: {dict(sorted(statuses.items()))}")
        print(
            f"  hashed (401): {hashed / wall:.1f}/s; refused unhashed (429): "
            f"{statuses.get(429, 0) / wall:.1f}/s; server CPU {cpu / wall:.2f} s/s"
        )
        async with session.post(url, json={}, headers=right) as answer:
            after = answer.headers.get("Retry-After")
            print(
                f"then the right password: {answer.status}"
                + (f", Retry-After {after}" * bool(after))
            )
        statuses, wall = await _hammer(session, url, busy, seconds, concurrency)
        print(
            f"good logins of another account: {sum(statuses.values()) / wall:.0f}/s "
            f"{dict(sorted(statuses.items()))}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--source", type=Path, default=ROOT, help="flexbridge tree to serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
        env |= {
            "FLEXBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/guess.db",
            "FLEXBRIDGE_ADMIN_PASSWORD": "admin-pw",
            "FLEXBRIDGE_PORT": str(port),
            "FLEXBRIDGE_LOG_LEVEL": "WARNING",
            # The per-account request budget would answer good logins 429 beyond 200/s,
            # hiding what authentication itself costs.
            "FLEXBRIDGE_RATE_LIMIT_PER_SECOND": "1000000",
            "FLEXBRIDGE_RATE_LIMIT_BURST": "1000000",
        }
        key = _flexbridge(args.source, env, "tenant", "add", "pilot")
        for user in ("victim", "busy"):
            _flexbridge(
                args.source, env, "account", "add", "--tenant", "pilot", "--username", user,
                "--role", "participant", "--password", f"{user}-pw",
            )  # fmt: skip
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "adapter.cli", "serve"],
                cwd=args.source,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        print(log.read_text(errors="replace"), file=sys.stderr)
                        return 1
                    time.sleep(0.1)
            print(describe())
            print(f"server from {args.source}")
            asyncio.run(_measure(base, key, server.pid, args.seconds, args.concurrency))
            warnings = [line for line in log.read_text().splitlines() if "locked" in line]
            print(f"lock lines in the server log: {len(warnings)}")
            for line in warnings:
                print(f"  {line}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
