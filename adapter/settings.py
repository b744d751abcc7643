"""Settings: defaults that work on one machine, then a TOML file, then FLEXBRIDGE_* variables.

The precedence is defaults < TOML file < environment < command-line flags. Every key of the
TOML file is a field name of `Settings` at top level; an unknown key is an error that names it,
because a misspelt setting silently ignored is worse than a refusal to start.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.limits import Limits
from store.addresses import parse_entity_address
from store.errors import ValidationError
from store.key_file import SecretKeyError, parse_keys

ENV_PREFIX = "FLEXBRIDGE_"


class SettingsError(Exception):
    """A setting could not be read; the message names the setting and the source."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite+aiosqlite:///flexbridge.db"
    config: str | None = None
    # PostgreSQL connections each process keeps open, and how many more it may open at a peak.
    database_pool_size: int = 10
    database_max_overflow: int = 10
    # Concurrent small writes share one transaction and one commit, up to this many (each is
    # answered after the commit that holds its rows); 1: every write commits alone.
    group_commit_max: int = 32
    log_level: str = "INFO"
    # Largest request body accepted, in bytes (aiohttp answers 413 beyond it).
    max_body_bytes: int = 8 * 1024 * 1024
    # Bounded work per request (hub.limits, docs/operations.md "Limits"): beyond any of these
    # a request is refused before the work, naming the field and the setting. Blocks one
    # request's values may become once bands are split (CP-API saves, event-hub messages);
    # blocks its Table 2 derivations may lay out; values or periods one CP-API Get may lay
    # out or read; items of one CP-API list save; days one OCMP or OSCP message's readings
    # or measurements may span.
    max_blocks_per_request: int = 1_000_000
    max_derived_blocks_per_request: int = 1_000_000
    max_values_per_answer: int = 1_000_000
    max_list_items: int = 10_000
    max_message_span_days: float = 31.0
    # Seconds in-flight requests get to finish on shutdown.
    shutdown_timeout: float = 30.0
    # Connections (adapter/connections.py, docs/operations.md): a client must send a
    # request's headers within header_read_timeout_seconds of opening the connection (or of
    # the next request's first byte on a kept-alive one) and the whole body within
    # body_read_timeout_seconds of the headers, or it is answered 408 and cut off; at most
    # max_connections are open at once (more are answered 503 and closed); an idle
    # keep-alive connection closes after keepalive_timeout_seconds.
    header_read_timeout_seconds: float = 10.0
    body_read_timeout_seconds: float = 30.0
    max_connections: int = 1024
    keepalive_timeout_seconds: float = 75.0
    # Password for the admin account created on first start; generated when empty.
    admin_password: str | None = None
    # Header carrying the tenant key (CP-API section 4.1.3.4, OCMP).
    tenant_key_header: str = "X-Tenant-Key"
    # Where the INVADE CP-API is mounted: <prefix>/Asset/..., <prefix>/TimeSeries/...
    cpapi_prefix: str = "/api"
    # CP-API 5.3.1: event-hub messages arrive at /<event_hub_path>/publishers/<gateway>/messages.
    event_hub_path: str = "iotexternaleh"
    # Fernet keys sealing the secrets flexbridge presents to peers, comma-separated: the
    # first seals, all open (rotation: docs/security.md). When empty, the keys of
    # secret_key_file, which is created with one new key when missing. Never in the database.
    secret_keys: str | None = None
    secret_key_file: str = "flexbridge.key"
    # HS256 signing key for JWTs; generated once and kept in the database when empty.
    jwt_secret: str | None = None
    jwt_ttl_seconds: int = 3600
    # Per-account request budget: sustained requests per second and burst size.
    rate_limit_per_second: float = 200.0
    rate_limit_burst: int = 400
    # Seconds a verified basic login is reused without reading the database (0: never).
    login_cache_seconds: float = 5.0
    # The brake on guessing credentials (docs/security.md). This many failed logins of one
    # account (or one unknown username) within the window lock it; 0: accounts never lock.
    auth_max_failures: int = 10
    # This many refused credentials of any scheme from one client address within the
    # window lock the address; higher, as one address may be many clients behind a NAT.
    auth_address_max_failures: int = 50
    auth_failure_window_seconds: float = 900.0
    # A first lock lasts this long; each lock that follows the end of the last one within
    # the window lasts twice as long as that one, up to auth_lock_max_seconds.
    auth_lock_seconds: float = 60.0
    auth_lock_max_seconds: float = 3600.0
    # Client addresses and unknown usernames whose failures each process keeps in memory.
    auth_tracked_keys: int = 10_000
    # Reverse proxies in front of flexbridge whose X-Forwarded-For entries are believed:
    # the client is the entry this many from the right. 0: the socket peer, and the header
    # is ignored (anyone can write it).
    trusted_proxy_hops: int = 0
    # Outbox delivery.
    outbox_poll_seconds: float = 1.0
    outbox_batch: int = 50
    outbox_timeout_seconds: float = 10.0
    outbox_backoff_base_seconds: float = 1.0
    outbox_backoff_cap_seconds: float = 300.0
    outbox_deadline_seconds: float = 24 * 3600.0
    outbox_lease_seconds: float = 15.0
    # How peers reach this server (sent in handshakes); http://<host>:<port> when empty.
    public_url: str | None = None
    # Where OCMP 1.0 is mounted: <prefix>/handshake, <prefix>/heartbeat, ...
    ocmp_prefix: str = "/ocmp/1.0"
    # Where OSCP 2.0 is mounted: flexbridge as Capacity Optimizer and as Capacity Provider.
    oscp_co_prefix: str = "/oscp/co/2.0"
    oscp_cp_prefix: str = "/oscp/cp/2.0"
    # Where the USEF API (FlexMeasures 0.3, v1 to v2_0) is mounted: <prefix>/,
    # <prefix>/requestAuthToken, <prefix>/<version>/<endpoint>. It may share its prefix
    # with the CP-API (both /api by default): their paths differ.
    usef_prefix: str = "/api"
    # How long a token from requestAuthToken is good for (FlexMeasures' 6 h).
    usef_token_ttl_seconds: int = 21600
    # The naming authority of the EA1 addresses flexbridge mints for its connections,
    # `ea1.<YYYY-MM>.<reversed domain>`; when empty, that of the host of public_url with
    # the month it was first needed, kept in the database.
    usef_naming_authority: str | None = None
    # Where UFTP 3.1 is mounted (flexbridge as the DSO): <prefix>/message.
    uftp_prefix: str = "/shapeshifter/api/v3"
    # The DSO domain a tenant's UFTP identity is made with (`flexbridge uftp key`); the host
    # of public_url when empty. Lowercase, as UFTP's InternetDomainType requires.
    uftp_domain: str | None = None
    # The market's time zone: a UFTP message's TimeZone must keep its UTC offsets.
    uftp_time_zone: str = "Europe/Amsterdam"
    # A FlexOrder that does not cover its request in full waits for more offers until this
    # long before the earliest offer expires.
    uftp_order_lead_seconds: float = 300.0
    # A contract's FlexReservationUpdate for a Period goes out this long before the Period
    # begins (10 h: 14:00 the day before, local time), saying what is still reserved.
    uftp_reservation_lead_seconds: float = 36000.0
    # How often the UFTP clock checks every congestion point and Period for congestion and
    # due orders (a D-Prognosis is checked as it arrives): a MaxCapacity lowered through
    # any protocol makes its FlexRequest within this time.
    uftp_congestion_check_seconds: float = 5.0
    # The heartbeat interval flexbridge asks of peers in its handshakes (section 7: 15 min).
    heartbeat_seconds: float = 900.0
    # Optimal forecasts are re-sent when a group's inputs change, at most this often.
    resend_minutes: float = 5.0
    # Groups with flexible assets are re-planned and re-sent when their last optimum is this
    # old, new inputs or not (OCMP section 7: "triggered on a schedule"); 0: never.
    replan_minutes: float = 15.0
    # How often the peer clock runs (heartbeats due, peers gone offline, re-sends).
    peer_clock_seconds: float = 1.0
    # Whether `serve` also runs plan jobs and outbox deliveries (false: leave them to
    # `flexbridge worker` processes on the same database).
    run_jobs: bool = True
    # A claimed plan job is taken over by another process when its claim is this old.
    plan_lease_seconds: float = 30.0
    # Optimizer worker processes, and the time after which a solve gives way to the headroom.
    solver_workers: int = 1
    solver_deadline_seconds: float = 5.0

    @property
    def limits(self) -> Limits:
        return Limits(
            blocks=self.max_blocks_per_request,
            derived_blocks=self.max_derived_blocks_per_request,
            answer_values=self.max_values_per_answer,
            list_items=self.max_list_items,
            message_span=timedelta(days=self.max_message_span_days),
        )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _is_optional(text_type: str) -> bool:
    return "None" in (part.strip() for part in text_type.split("|"))


def _coerce(name: str, raw: Any, target: Any, source: str) -> Any:
    """Turn a TOML or environment value into the field's type, or say which setting is wrong."""
    kind = target if isinstance(target, type) else None
    text_type = str(target)
    try:
        if kind is bool or text_type == "bool":
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected true or false, got {raw!r}")
        if text_type.startswith("int"):
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            return int(raw)
        if text_type.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            return float(raw)
        if raw is None or raw == "":
            # Only an optional setting may be unset; an empty host would listen on every
            # interface and an empty log level would fail at start-up, far from the cause.
            if _is_optional(text_type):
                return None
            raise ValueError("must not be empty")
        return str(raw)
    except ValueError as exc:
        raise SettingsError(f"{source}: setting {name!r}: {exc}") from None


def _field_types() -> dict[str, Any]:
    return {f.name: f.type for f in fields(Settings)}


def _from_mapping(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    types = _field_types()
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise SettingsError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    return {name: _coerce(name, raw, types[name], source) for name, raw in values.items()}


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    types = _field_types()
    found = {}
    for name in types:
        key = ENV_PREFIX + name.upper()
        if key in environ:
            found[name] = _coerce(name, environ[key], types[name], key)
    return found


def _from_toml(path: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from None
    return _from_mapping(data, path)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from defaults, the TOML file, the environment and explicit overrides.

    `overrides` are command-line flags; None values mean "not given".
    """
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    env = _from_environment(environ)
    config_path = given.get("config") or env.get("config")
    layered: dict[str, Any] = {}
    if config_path:
        layered.update(_from_toml(config_path))
    layered.update(env)
    layered.update(_from_mapping(given, "command line"))
    return _checked(replace(Settings(), **layered))


# (setting, lowest allowed value, whether that value itself is allowed)
_LOWER_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ("uftp_order_lead_seconds", 0, True),
    ("uftp_reservation_lead_seconds", 0, False),
    ("uftp_congestion_check_seconds", 0, False),
    ("max_body_bytes", 0, False),
    ("max_blocks_per_request", 1, True),
    ("max_derived_blocks_per_request", 1, True),
    ("max_values_per_answer", 1, True),
    ("max_list_items", 1, True),
    ("max_message_span_days", 0, False),
    ("shutdown_timeout", 0, True),
    ("header_read_timeout_seconds", 0, False),
    ("body_read_timeout_seconds", 0, False),
    ("max_connections", 1, True),
    ("keepalive_timeout_seconds", 0, True),
    ("database_pool_size", 1, True),
    ("database_max_overflow", 0, True),
    ("group_commit_max", 1, True),
    ("plan_lease_seconds", 0, False),
    ("jwt_ttl_seconds", 0, False),
    ("usef_token_ttl_seconds", 0, False),
    ("rate_limit_per_second", 0, False),
    ("rate_limit_burst", 1, True),
    ("login_cache_seconds", 0, True),
    ("auth_max_failures", 0, True),
    ("auth_address_max_failures", 0, True),
    ("auth_failure_window_seconds", 0, False),
    ("auth_lock_seconds", 0, False),
    ("auth_lock_max_seconds", 0, False),
    ("auth_tracked_keys", 1, True),
    ("trusted_proxy_hops", 0, True),
    ("outbox_poll_seconds", 0, False),
    ("outbox_batch", 0, False),
    ("outbox_timeout_seconds", 0, False),
    ("outbox_backoff_base_seconds", 0, True),
    ("outbox_backoff_cap_seconds", 0, True),
    ("outbox_deadline_seconds", 0, False),
    ("outbox_lease_seconds", 0, False),
    ("heartbeat_seconds", 1, True),
    ("resend_minutes", 0, True),
    ("replan_minutes", 0, True),
    ("peer_clock_seconds", 0, False),
    ("solver_workers", 1, True),
    ("solver_deadline_seconds", 0, False),
)


# A FlexReservationUpdate goes out at most a week before its Period: the clock looks that
# far ahead on every tick.
_RESERVATION_LEAD_MAX = 7 * 24 * 3600.0
# UFTP's InternetDomainType: lowercase labels, no trailing dot.
_DOMAIN = re.compile(r"([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,}")


def _check_uftp(settings: Settings) -> None:
    if settings.uftp_domain is not None and not _DOMAIN.fullmatch(settings.uftp_domain):
        raise SettingsError(
            f"setting 'uftp_domain': {settings.uftp_domain!r} is not a lowercase Internet "
            "domain such as dso.example.com"
        )
    try:
        ZoneInfo(settings.uftp_time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"setting 'uftp_time_zone': {settings.uftp_time_zone!r} is not an IANA time zone"
        ) from None
    if settings.uftp_reservation_lead_seconds > _RESERVATION_LEAD_MAX:
        raise SettingsError(
            "setting 'uftp_reservation_lead_seconds': at most 604800 (a week before the "
            f"Period), got {settings.uftp_reservation_lead_seconds}"
        )


def _check_usef(settings: Settings) -> None:
    authority = settings.usef_naming_authority
    if authority is None:
        return
    try:
        parse_entity_address(f"{authority}:-")
    except ValidationError as exc:
        raise SettingsError(
            f"setting 'usef_naming_authority': {authority!r} is not an EA1 naming authority "
            f"such as ea1.2026-12.io.example ({exc})"
        ) from None
    if not authority.startswith("ea1."):
        raise SettingsError(
            f"setting 'usef_naming_authority': {authority!r} is not an EA1 naming authority "
            "such as ea1.2026-12.io.example"
        )


def _checked(settings: Settings) -> Settings:
    """Refuse settings that would only fail later, far from where they were given."""
    if settings.jwt_secret is not None and len(settings.jwt_secret.encode()) < 32:
        raise SettingsError("setting 'jwt_secret': at least 32 bytes (RFC 7518 section 3.2)")
    if settings.secret_keys:
        try:
            parse_keys(settings.secret_keys, "setting 'secret_keys'")
        except SecretKeyError as exc:
            raise SettingsError(str(exc)) from None
    if not 0 < settings.port < 65536:
        raise SettingsError(f"setting 'port': {settings.port} is not a TCP port")
    _check_uftp(settings)
    _check_usef(settings)
    if settings.log_level.upper() not in logging.getLevelNamesMapping():
        known = ", ".join(sorted(logging.getLevelNamesMapping()))
        raise SettingsError(
            f"setting 'log_level': {settings.log_level!r} is not a logging level ({known})"
        )
    for name, lowest, inclusive in _LOWER_BOUNDS:
        value = getattr(settings, name)
        # Written so that NaN fails too; infinity is no duration, rate or size either.
        if not (value >= lowest if inclusive else value > lowest) or not math.isfinite(value):
            bound = f"at least {lowest}" if inclusive else f"greater than {lowest}"
            raise SettingsError(f"setting {name!r}: {value} must be {bound}")
    if settings.max_message_span_days > 3_650_000:  # beyond the stored years, and timedelta's
        raise SettingsError("setting 'max_message_span_days': at most 3650000 (10,000 years)")
    if settings.outbox_backoff_cap_seconds < settings.outbox_backoff_base_seconds:
        raise SettingsError(
            f"setting 'outbox_backoff_cap_seconds': {settings.outbox_backoff_cap_seconds} is "
            f"below outbox_backoff_base_seconds ({settings.outbox_backoff_base_seconds})"
        )
    if settings.auth_lock_max_seconds < settings.auth_lock_seconds:
        raise SettingsError(
            f"setting 'auth_lock_max_seconds': {settings.auth_lock_max_seconds} is below "
            f"auth_lock_seconds ({settings.auth_lock_seconds})"
        )
    if settings.outbox_lease_seconds <= settings.outbox_timeout_seconds:
        raise SettingsError(
            f"setting 'outbox_lease_seconds': {settings.outbox_lease_seconds} must exceed "
            f"outbox_timeout_seconds ({settings.outbox_timeout_seconds}), or a slow send is "
            "claimed again by another process and sent twice"
        )
    return settings
