"""`conformance` and `simulate cpo|scada|agr`: the conformance kit's commands.

The project's main CLI mounts them with add_parser(subparsers) and calls run(args) for the
commands in COMMANDS; they also run alone:

    python -m conformance.cli conformance --target http://127.0.0.1:8080 --credentials cf.json
    python -m conformance.cli simulate cpo --target http://127.0.0.1:8080 --credentials cf.json
    python -m conformance.cli simulate agr --target http://127.0.0.1:8080 --credentials cf.json

Exit codes: 0 when every vector passed (skipped ones allowed); 1 when any failed; 2 on a usage
error (unreadable credentials, unknown protocol, a broken vector file, an unreachable target).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from conformance import report
from conformance.errors import UsageError
from conformance.peer import PeerEndpoint
from conformance.runner import Runner, credential
from conformance.vectors import PROTOCOLS, ROOT, VectorFileError, load

COMMANDS = ("conformance", "simulate")


def add_parser(subparsers: Any) -> None:
    """Add `conformance` and `simulate` (with `cpo`, `scada` and `agr`) to an argparse
    subparsers."""
    from conformance import simulate

    conformance = subparsers.add_parser(
        "conformance",
        help="run the conformance vectors against any server",
        description="Run the protocol conformance vectors against a server (any "
        "implementation) and report per vector; docs/conformance.md.",
    )
    conformance.add_argument("--target", required=True, help="base URL, e.g. http://host:8080")
    conformance.add_argument(
        "--protocol",
        default=",".join(PROTOCOLS),
        help=f"comma-separated, of {', '.join(PROTOCOLS)} (default: all)",
    )
    conformance.add_argument("--credentials", help="JSON credentials file (docs/conformance.md)")
    conformance.add_argument("--report", help="folder for the JUnit XML and Markdown reports")
    conformance.add_argument("--vectors", help="vector folder (default: the shipped vectors)")
    conformance.add_argument(
        "--only", action="append", default=[], metavar="GLOB", help="run only vector ids matching"
    )
    conformance.add_argument(
        "--peer-host", default="127.0.0.1", help="address the peer endpoint listens on"
    )
    conformance.add_argument(
        "--peer-port",
        type=int,
        default=0,
        help="port of the peer endpoint (default: cpapi_outbound.peer_port, else a free one)",
    )
    conformance.add_argument(
        "--peer-url", help="URL the server reaches the peer endpoint at (default http://HOST:PORT)"
    )
    conformance.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    conformance.add_argument("--list", action="store_true", help="list the vectors and exit")
    conformance.add_argument("--quiet", action="store_true", help="no progress lines")
    simulate.add_parser(subparsers)


def _credentials(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--credentials: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--credentials: {path} must hold a JSON object")
    return data


def _protocols(text: str) -> list[str]:
    chosen = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PROTOCOLS]
    if unknown or not chosen:
        named = ", ".join(unknown) or repr(text)
        raise UsageError(f"--protocol: {named} is not one of {', '.join(PROTOCOLS)}")
    return list(dict.fromkeys(chosen))


def _target(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--target: {text!r} is not an http(s) URL")
    return text.rstrip("/")


async def _reachable(target: str, timeout: float) -> None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(target + "/") as answer,
        ):
            await answer.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UsageError(
            f"--target: {target} does not answer: {type(exc).__name__}: {exc}"
        ) from None


async def _conformance(args: argparse.Namespace) -> int:
    target = _target(args.target)
    protocols = _protocols(args.protocol)
    credentials = _credentials(args.credentials)
    try:
        files = load(protocols, Path(args.vectors) if args.vectors else ROOT)
    except VectorFileError as exc:
        raise UsageError(f"vectors: {exc}") from None
    if args.list:
        for vector_file in files:
            for vector in vector_file.vectors:
                print(f"{vector['id']}  [{vector['spec']}]")
        return 0
    await _reachable(target, args.timeout)
    # CP-API 6.1.1 and UFTP's peer --base-url: the server was told where to send, so the
    # port may be fixed in advance.
    port = (
        args.peer_port
        or int(credential(credentials, "cpapi_outbound.peer_port") or 0)
        or urlsplit(credential(credentials, "uftp.receiver_url") or "").port
        or 0
    )
    peer = PeerEndpoint(args.peer_host, port, args.peer_url)
    try:
        await peer.start()
    except OSError as exc:
        raise UsageError(f"--peer-port: cannot listen on {args.peer_host}:{port}: {exc}") from None
    progress = None if args.quiet else (lambda line: print(line, flush=True))
    try:
        print(
            f"conformance: {target} ({', '.join(protocols)}); peer endpoint {peer.url}",
            flush=True,
        )
        runner = Runner(
            target, credentials, peer, timeout=args.timeout, progress=progress, only=args.only
        )
        results = await runner.run(files)
    finally:
        await peer.stop()
    failures = report.failures_text(results)
    if failures:
        print("\nFailures:\n", flush=True)
        print(failures, flush=True)
    print("\n" + report.summary_table(results), flush=True)
    if args.report:
        junit, markdown = report.write_reports(Path(args.report), results, target, protocols)
        print(f"reports: {junit} {markdown}", flush=True)
    _next_credentials(credentials, runner.variables, Path(args.report) if args.report else None)
    counts = report.counts(results)
    if not counts["total"]:
        print("no vector selected", file=sys.stderr)
        return 2
    return 1 if counts["failed"] else 0


def _next_credentials(
    credentials: dict[str, Any], variables: dict[str, Any], folder: Path | None
) -> None:
    """OSCP's registration swaps the out-of-band token for one the server issued (token C):
    the credentials file's token no longer works. Say which one does, and write a copy of
    the credentials with it (next-credentials.json in the report folder)."""
    token = variables.get("oscp_token")
    if not token or token == (credentials.get("oscp") or {}).get("token"):
        return
    print(
        "note: the OSCP registration replaced oscp.token; the server now knows this runner "
        f"by token {token}"
        + (f" (written to {folder / 'next-credentials.json'})" if folder else ""),
        flush=True,
    )
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        updated = {**credentials, "oscp": {**credentials.get("oscp", {}), "token": token}}
        (folder / "next-credentials.json").write_text(json.dumps(updated, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    """Run a command added by add_parser; returns the exit status."""
    try:
        if args.command == "conformance":
            return asyncio.run(_conformance(args))
        from conformance import simulate

        return simulate.run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.cli")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
