"""The `flexbridge` command: serve, and the administration commands around it.

Imports are lazy: a command imports what it uses when it runs (and `peer`, `optimize`,
`conformance` and `simulate` add their arguments only when chosen, see _Commands), so
`flexbridge --help` loads no server, and `optimize` loads the optimizer alone
(benchmarks/cli_startup.py; tests/test_cli_startup.py keeps it so).
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from adapter.settings import Settings
    from store.db import Database


def _ttl_days(text: str) -> float:
    """A token lifetime in days: positive (a token born expired is no token) and one whose
    expiry still falls within the calendar."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not (days > 0 and math.isfinite(days)):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of days")
    try:
        datetime.now(UTC) + timedelta(days=days)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text} days is beyond the year 9999") from None
    return days


def _usef_roles(text: str) -> tuple[str, ...]:
    """USEF market roles, comma-separated, in any letter case: their canonical names."""
    from protocols.usef.v1_v2_0.versions import MARKET_ROLES

    known = {role.lower(): role for role in MARKET_ROLES}
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name.lower() not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown USEF role {', '.join(unknown) or repr(text)}; expected some of "
            f"{', '.join(MARKET_ROLES)}"
        )
    return tuple(dict.fromkeys(known[name.lower()] for name in names))


def _one_line(exc: BaseException) -> str:
    """An exception as one line: a driver's own error rather than SQLAlchemy's wrapping of it
    (whose text spans lines and links to a help page)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_DIALECT_HELP = (
    "a named set of per-peer wire choices of the protocol (OSCP: oscp-2.0, the default, or "
    "pyoscp-0.1; docs/protocols/oscp-2.0.md, Dialects)"
)


def _environment_errors() -> tuple[type[Exception], ...]:
    """What a command can meet that is the environment's fault, not a bug: an unreachable or
    refusing database, unreadable or mismatched TLS files (ssl.SSLError is an OSError), a
    port in use, a date past the calendar."""
    from sqlalchemy.exc import SQLAlchemyError

    return (OSError, SQLAlchemyError, OverflowError, ValueError)


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL (env FLEXBRIDGE_DATABASE_URL)")
    parser.add_argument("--config", help="TOML settings file (env FLEXBRIDGE_CONFIG)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flexbridge",
        description=(
            "flexbridge: one server for OCMP/OSCP, the INVADE CP-API, USEF/UFTP and ETRM."
        ),
    )
    commands = cast(  # argparse makes it of the class given as `action`
        _Commands,
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND", action=_Commands),
    )

    serve = commands.add_parser("serve", help="migrate the database and serve HTTP")
    serve.add_argument("--host", help="listen address (env FLEXBRIDGE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (env FLEXBRIDGE_PORT, default 8080)")
    serve.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    serve.add_argument("--tls-key", help="PEM private key for --tls-cert")
    _settings_flags(serve)

    worker = commands.add_parser(
        "worker", help="run plan jobs, deliveries and the peer clock without serving HTTP"
    )
    worker.add_argument(
        "--name",
        help="this worker's process slot, unique among the processes sharing the database "
        "(default HOSTNAME:worker); started again under it, it takes its claims back at once",
    )
    _settings_flags(worker)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="action", required=True
    )
    _settings_flags(
        db.add_parser("upgrade", help="create or migrate the schema to the newest revision")
    )

    tenant = commands.add_parser("tenant", help="tenants").add_subparsers(
        dest="action", required=True
    )
    tenant_add = tenant.add_parser("add", help="create a tenant and print its tenant key")
    tenant_add.add_argument("name")
    _settings_flags(tenant_add)

    account = commands.add_parser("account", help="accounts").add_subparsers(
        dest="action", required=True
    )
    account_add = account.add_parser("add", help="create an account and print its password")
    account_add.add_argument("--tenant", required=True)
    account_add.add_argument("--username", required=True)
    account_add.add_argument(
        "--role", required=True, help="admin, participant, peer, gateway or reader"
    )
    account_add.add_argument("--password", help="generated when omitted")
    account_add.add_argument(
        "--email", help="an address the USEF API's requestAuthToken may name it by"
    )
    account_add.add_argument(
        "--usef-roles",
        type=_usef_roles,
        default=(),
        help="USEF market roles its USEF API services are for, comma-separated, e.g. "
        "Prosumer,ESCo (docs/protocols/usef-api.md)",
    )
    _settings_flags(account_add)
    account_unlock = account.add_parser(
        "unlock", help="lift the lock failed logins put on an account (docs/security.md)"
    )
    account_unlock.add_argument("--tenant", required=True)
    account_unlock.add_argument("--username", required=True)
    _settings_flags(account_unlock)

    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="action", required=True
    )
    token_issue = token.add_parser("issue", help="issue an opaque API token and print it")
    token_issue.add_argument("--tenant", required=True)
    token_issue.add_argument("--username", required=True)
    token_issue.add_argument(
        "--ttl-days", type=_ttl_days, help="expiry, in days (> 0); never when omitted"
    )
    _settings_flags(token_issue)

    gateway = commands.add_parser("gateway", help="event-hub gateways (CP-API 5)").add_subparsers(
        dest="action", required=True
    )
    gateway_add = gateway.add_parser(
        "add", help="create a gateway (event-hub publisher) and print its SharedAccessSignature"
    )
    gateway_add.add_argument("--tenant", required=True)
    gateway_add.add_argument("--gateway-id", required=True)
    gateway_add.add_argument(
        "--ttl-days", type=_ttl_days, default=365.0, help="token lifetime in days (default 365)"
    )
    gateway_add.add_argument(
        "--base-url", help="public base URL named in the token (default http://HOST:PORT)"
    )
    _settings_flags(gateway_add)

    commands.later(_optimize_commands, optimize="solve an optimizer problem file")
    commands.later(_conformance_commands, **_CONFORMANCE)
    commands.later(_peer_commands, peer="OCMP / OSCP / UFTP peers")
    commands.later(_uftp_commands, uftp="UFTP 3.1 (DSO): our key, congestion points, contracts")
    _cpapi_commands(commands)
    _secrets_commands(commands)
    return parser


class _Commands(argparse._SubParsersAction):
    """Subcommands whose arguments may be added only when one is chosen. `flexbridge --help`
    lists every command from its name and help line alone; building `peer` imports the hub
    and every protocol (its choices come from them), `optimize` numpy and HiGHS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._later: dict[str, Callable[[_Commands], None]] = {}

    def later(self, build: Callable[[_Commands], None], **helps: str) -> None:
        """List the commands `build` adds (name=help); build them when one is chosen."""
        for name, text in helps.items():
            self.add_parser(name, help=text)
            self._later[name] = build

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        build = self._later.get(values[0])
        if build is not None:
            for name in [name for name, owner in self._later.items() if owner is build]:
                del self._later[name], self._name_parser_map[name]  # the listing's stand-in
            build(self)
        super().__call__(parser, namespace, values, option_string)


def _optimize_commands(commands: _Commands) -> None:
    from optimizer import cli as optimizer_cli

    optimizer_cli.add_parser(commands)


# The conformance kit's commands (conformance.cli.COMMANDS), with their help lines.
_CONFORMANCE = {
    "conformance": "run the conformance vectors against any server",
    "simulate": "simulate a peer (CPO, SCADA, AGR) against any server",
}


def _conformance_commands(commands: _Commands) -> None:
    from conformance import cli as conformance_cli

    conformance_cli.add_parser(commands)


def _peer_commands(commands: _Commands) -> None:
    from adapter import peer_admin
    from hub.peer_state import UnknownIds

    peer = commands.add_parser("peer", help="OCMP / OSCP / UFTP peers").add_subparsers(
        dest="action", required=True
    )
    peer_add = peer.add_parser(
        "add", help="record a peer and the login it uses with us (printed when generated)"
    )
    peer_add.add_argument("--tenant", required=True)
    peer_add.add_argument("--protocol", required=True, choices=peer_admin.PROTOCOLS)
    peer_add.add_argument("--name", required=True)
    peer_add.add_argument("--base-url", help="the peer's endpoint (else learnt from its handshake)")
    login = peer_add.add_mutually_exclusive_group()
    login.add_argument(
        "--token", help="OSCP: the token the peer uses with us (generated if absent)"
    )
    login.add_argument("--username", help="OCMP: the username the peer uses with us")
    peer_add.add_argument("--password", help="OCMP: its password (generated if absent)")
    peer_add.add_argument(
        "--unknown-ids",
        choices=[str(u) for u in UnknownIds],
        default=str(UnknownIds.STRICT),
        help="an unknown group_id / asset_id: an error (strict) or a new entity (lenient)",
    )
    peer_add.add_argument("--dialect", help=_DIALECT_HELP)
    peer_add.add_argument("--role", help="UFTP: the role the peer signs as (AGR or CRO)")
    peer_add.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="UFTP: its raw base64 Ed25519 public key (twice while it rotates)",
    )
    _settings_flags(peer_add)
    peer_update = peer.add_parser("update", help="change how a provisioned peer is treated")
    peer_update.add_argument("--tenant", required=True)
    peer_update.add_argument("--protocol", required=True, choices=peer_admin.PROTOCOLS)
    peer_update.add_argument("--name", required=True)
    peer_update.add_argument("--base-url", help="the peer's endpoint")
    peer_update.add_argument("--unknown-ids", choices=[str(u) for u in UnknownIds])
    peer_update.add_argument("--dialect", help=_DIALECT_HELP)
    peer_update.add_argument(
        "--public-key", action="append", help="UFTP: replaces its keys (twice while it rotates)"
    )
    _settings_flags(peer_update)
    peer_list = peer.add_parser("list", help="peers with their state and last heartbeat")
    peer_list.add_argument("--tenant", required=True)
    _settings_flags(peer_list)


def _secrets_commands(commands: _Commands) -> None:
    secrets = commands.add_parser(
        "secrets", help="the keys sealing the secrets we present to peers"
    ).add_subparsers(dest="action", required=True)
    _settings_flags(
        secrets.add_parser(
            "rotate", help="seal every stored peer secret with the first of secret_keys"
        )
    )


def _uftp_commands(commands: _Commands) -> None:
    from adapter import uftp_admin

    uftp_admin.add_commands(commands, _settings_flags)


def _cpapi_commands(commands: _Commands) -> None:
    cpapi = commands.add_parser("cpapi", help="INVADE CP-API").add_subparsers(
        dest="action", required=True
    )
    endpoint = cpapi.add_parser(
        "endpoint", help="set the tenant's external endpoint for outbound messages (CP-API 6.1.1)"
    )
    endpoint.add_argument("--tenant", required=True)
    endpoint.add_argument("--url", required=True, help="where TimeSeriesMessageV1 are POSTed")
    endpoint.add_argument("--username", required=True)
    endpoint.add_argument("--password", required=True)
    endpoint.add_argument(
        "--system", help="external system name whose cross-references name entities"
    )
    endpoint.add_argument(
        "--messages",
        help="comma-separated message names to send (default: all of "
        "ControlOnOffMessage,ControlRegulationMessage,FlexibilityOfferMessage)",
    )
    _settings_flags(endpoint)


# Objects between collections of the youngest generation (CPython's default is 700).
_GC_YOUNG_THRESHOLD = 50_000


def _tune_garbage_collector() -> None:
    """A server holding a parsed message of tens of thousands of objects spent two thirds of
    a list save in the cyclic collector at CPython's defaults (benchmarks/cpapi_ingest.py):
    collect the young generation less often, and leave the objects made at start-up out of
    every full collection. Reference counting still frees everything without cycles at once."""
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 100)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import ssl

    from aiohttp import web
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.app import create_app
    from adapter.connections import GuardedSite
    from store.key_file import SecretKeyError

    tls = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            print("error: --tls-cert and --tls-key go together", file=sys.stderr)
            return 2
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"error: --tls-cert/--tls-key: {_one_line(exc)}", file=sys.stderr)
            return 2
    scheme = "https" if tls else "http"

    async def run() -> None:
        # Not web.run_app: its site would take every connection with aiohttp's own handler,
        # which has no read deadlines and no cap (adapter/connections.py).
        runner = web.AppRunner(
            create_app(settings), handle_signals=False, shutdown_timeout=settings.shutdown_timeout
        )
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await GuardedSite(runner, settings.host, settings.port, ssl_context=tls).start()
            print(f"flexbridge serving on {scheme}://{settings.host}:{settings.port}", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()

    _tune_garbage_collector()
    try:
        asyncio.run(run())
    except (OSError, SQLAlchemyError, SecretKeyError) as exc:  # database, port or key file
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


def _work(settings: Settings, args: argparse.Namespace) -> int:
    """`flexbridge worker`: the background work of `serve` (adapter/background.py) until
    SIGINT or SIGTERM, which finish the jobs and deliveries in hand."""
    import asyncio
    import signal
    import socket

    from aiohttp import web
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.app import create_worker
    from store.key_file import SecretKeyError

    name = args.name or f"{socket.gethostname()}:worker"

    async def run() -> None:
        runner = web.AppRunner(create_worker(settings, name), handle_signals=False)
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        database = make_url(settings.database_url).render_as_string(hide_password=True)
        print(f"flexbridge worker {name} running on {database}", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    _tune_garbage_collector()
    try:
        asyncio.run(run())
    except (OSError, SQLAlchemyError, SecretKeyError) as exc:  # database or key file
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


async def _with_database(settings: Settings, work: Callable[[Database], Awaitable[str]]) -> str:
    from store.db import open_database
    from store.key_file import secret_box
    from store.migrate import upgrade

    db = open_database(
        settings.database_url,
        secrets=secret_box(settings.secret_keys, settings.secret_key_file),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        await upgrade(db)
        return await work(db)
    finally:
        await db.close()


def _admin_command(
    args: argparse.Namespace, settings: Settings
) -> Callable[[Database], Awaitable[str]]:
    """The database work of one administration command; it returns what to print."""
    if args.command == "uftp":
        from adapter import uftp_admin

        return uftp_admin.command(args, settings)
    from adapter import peer_admin
    from hub.peer_state import UnknownIds
    from protocols.cpapi.v1 import sas
    from protocols.cpapi.v1.outbound import configure_endpoint
    from store.accounts import (
        Role,
        add_account,
        get_account,
        issue_token,
        parse_role,
        record_token,
        unlock_account,
    )
    from store.tenants import add_tenant, get_tenant
    from store.timeutil import utcnow

    async def db_upgrade(db: Database) -> str:
        from store.migrate import current_revision

        return f"database at revision {await current_revision(db)}"

    async def tenant_add(db: Database) -> str:
        async with db.transaction() as tx:
            _, key = await add_tenant(tx, args.name)
        return key

    async def account_add(db: Database) -> str:
        role = parse_role(args.role)
        async with db.transaction() as tx:
            tenant = await get_tenant(tx, args.tenant)
            _, password = await add_account(
                tx,
                tenant,
                args.username,
                role,
                args.password,
                email=args.email,
                usef_roles=args.usef_roles,
            )
        return f"account {args.username} created" if args.password else password

    async def account_unlock(db: Database) -> str:
        async with db.transaction() as tx:
            before = await unlock_account(tx, await get_tenant(tx, args.tenant), args.username)
        if before.locked_until is not None and before.locked_until > utcnow():
            return f"account {args.username} unlocked (it was locked until {before.locked_until})"
        return f"account {args.username} was not locked ({before.count} failed logins forgotten)"

    async def token_issue(db: Database) -> str:
        ttl = None if args.ttl_days is None else timedelta(days=args.ttl_days)
        async with db.transaction() as tx:
            account = await get_account(tx, await get_tenant(tx, args.tenant), args.username)
            return await issue_token(tx, account, ttl)

    async def gateway_add(db: Database) -> str:
        base = (args.base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        resource = f"{base}/{settings.event_hub_path.strip('/')}/publishers/{args.gateway_id}"
        expiry = utcnow() + timedelta(days=args.ttl_days)
        token = sas.make_token(resource, expiry, key_name=args.gateway_id)
        async with db.transaction() as tx:
            tenant = await get_tenant(tx, args.tenant)
            account, _ = await add_account(tx, tenant, args.gateway_id, Role.GATEWAY)
            await record_token(tx, account, sas.parse_token(token).signature, expiry)
        return token

    async def cpapi_endpoint(db: Database) -> str:
        messages = [m.strip() for m in (args.messages or "").split(",") if m.strip()]
        async with db.transaction() as tx:
            await configure_endpoint(
                tx,
                await get_tenant(tx, args.tenant),
                url=args.url,
                username=args.username,
                password=args.password,
                system=args.system,
                messages=messages,
            )
        return f"CP-API endpoint of {args.tenant}: {args.url}"

    async def peer_add(db: Database) -> str:
        new = peer_admin.NewPeer(
            args.tenant,
            args.protocol,
            args.name,
            args.base_url,
            username=args.username,
            password=args.password,
            token=args.token,
            unknown_ids=UnknownIds(args.unknown_ids),
            dialect=args.dialect,
            role=args.role,
            public_keys=tuple(args.public_key),
        )
        return await peer_admin.add(db, new)

    async def peer_update(db: Database) -> str:
        change = peer_admin.PeerChange(
            args.tenant,
            args.protocol,
            args.name,
            base_url=args.base_url,
            unknown_ids=None if args.unknown_ids is None else UnknownIds(args.unknown_ids),
            dialect=args.dialect,
            public_keys=None if args.public_key is None else tuple(args.public_key),
        )
        return await peer_admin.update(db, change)

    async def peer_list(db: Database) -> str:
        return await peer_admin.describe(db, args.tenant)

    async def secrets_rotate(db: Database) -> str:
        from store.peers import reseal_secrets
        from store.secret_box import SecretsLeftUnread

        assert db.secrets is not None  # _with_database always gives the keys
        async with db.transaction() as tx:
            rewritten, unreadable = await reseal_secrets(tx, db.secrets)
        if unreadable:  # the others are rewritten all the same; the exit code says it
            raise SecretsLeftUnread(rewritten, unreadable)
        return f"{rewritten} secret(s) (of peers, and our UFTP keys) sealed with the first key"

    return {
        ("peer", "add"): peer_add,
        ("peer", "update"): peer_update,
        ("peer", "list"): peer_list,
        ("cpapi", "endpoint"): cpapi_endpoint,
        ("db", "upgrade"): db_upgrade,
        ("gateway", "add"): gateway_add,
        ("tenant", "add"): tenant_add,
        ("account", "add"): account_add,
        ("account", "unlock"): account_unlock,
        ("token", "issue"): token_issue,
        ("secrets", "rotate"): secrets_rotate,
    }[(args.command, args.action)]


def _quiet_teardown(args: threading.ExceptHookArgs) -> None:
    """aiosqlite's worker thread may report a failed connection to an event loop that the
    finished command has already closed; its "Event loop is closed" is teardown noise after
    the error was printed, and must not turn a one-line error into a traceback."""
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    threading.__excepthook__(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "optimize":  # what-if solves: no server, no database
        from optimizer import cli as optimizer_cli

        return optimizer_cli.run(args)
    if args.command in _CONFORMANCE:  # HTTP clients of a server, any server
        from conformance import cli as conformance_cli

        return conformance_cli.run(args)
    import asyncio

    from adapter.settings import SettingsError, load_settings
    from store.errors import StoreError

    flags = {name: getattr(args, name, None) for name in ("host", "port", "database_url", "config")}
    try:
        settings = load_settings(flags)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command in ("serve", "worker"):
        # Loaded before logging is set up: alembic logs its plugins at INFO as it is
        # imported, which is no news of the server's.
        import adapter.app  # noqa: F401
    # Administration commands print their one result; only the server narrates its work.
    level = settings.log_level.upper() if args.command in ("serve", "worker") else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.excepthook = _quiet_teardown
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "worker":
        return _work(settings, args)
    try:
        print(asyncio.run(_with_database(settings, _admin_command(args, settings))))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _environment_errors() as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
