"""The tables. SQLAlchemy Core, because the hot paths are bulk inserts and plain selects.

Times are stored as integer microseconds since the Unix epoch (UTC): the same on SQLite and
PostgreSQL, exact, cheap to index and compare, and free of driver time-zone surprises.
`store.timeutil` converts at the boundary.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

Micros = BigInteger


def _tenant_fk() -> Column[int]:
    return Column(
        "tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Micros, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    # Usernames are global: a basic-auth request names the account before the tenant key is
    # checked against it (CP-API 4.1.3: "each user name is associated to one tenant key").
    Column("username", String(200), nullable=False, unique=True),
    Column("role", String(40), nullable=False),
    Column("password_hash", String(200), nullable=True),
    Column("created_at", Micros, nullable=False),
    # The brake on guessing (adapter/throttle.py): failed logins in the window that began at
    # failed_since, the lock they led to (kept after it passes, so the next one can grow),
    # and how many locks came in a row. In the database, not in memory, so that every
    # process on one PostgreSQL refuses a locked account and `flexbridge account unlock`
    # reaches them all.
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("failed_since", Micros, nullable=True),
    Column("locked_until", Micros, nullable=True),
    Column("lock_count", Integer, nullable=False, server_default="0"),
    # The USEF API: an address its login may name the account by (besides the username),
    # and the USEF market roles its services are reserved for, comma-separated.
    Column("email", String(254), nullable=True, unique=True),
    Column("usef_roles", String(200), nullable=False, server_default=""),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Micros, nullable=False),
    Column("expires_at", Micros, nullable=True),
)

entities = Table(
    "entities",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    # Unique per tenant, not globally: a global constraint would tell a tenant that inserts
    # another tenant's key that the key exists (CP-API 4.2.7 lets the caller choose it).
    Column("key", Uuid, nullable=False),
    Column("asset_type", String(20), nullable=False),
    Column("asset_subtype", String(40), nullable=False),
    Column("name", String(400), nullable=False),
    Column("status", String(20), nullable=False),
    Column("valid_from", Micros, nullable=True),
    Column("valid_to", Micros, nullable=True),
    Column("properties", JSON, nullable=False),
    Column("created_at", Micros, nullable=False),
    Column("updated_at", Micros, nullable=False),
    Index(None, "tenant_id", "asset_type", "asset_subtype"),
    UniqueConstraint("tenant_id", "key"),
)

connectors = Table(
    "connectors",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("parent_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("child_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("connector_type", String(40), nullable=False),
    Column("valid_from", Micros, nullable=True),
    Column("valid_to", Micros, nullable=True),
    Column("status", String(20), nullable=False),
    Index(None, "child_id", "connector_type"),
    Index(None, "parent_id"),
)

entity_references = Table(
    "entity_references",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("system", String(200), nullable=False),
    Column("reference_type", String(60), nullable=False),
    Column("external_key", String(300), nullable=False),
    UniqueConstraint("tenant_id", "system", "reference_type", "external_key"),
    Index(None, "entity_id"),
)

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("name", String(200), nullable=False),
    UniqueConstraint("tenant_id", "name"),
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("series_type", String(60), nullable=False),
    # 0 = not per phase; 1..3 = the phase (CP-API Table 2 "Phase n" variants).
    Column("phase", Integer, nullable=False),
    Column("unit", String(20), nullable=False),
    # Seconds per block; 0 for irregular instants ("Frequent" in CP-API Table 2).
    Column("resolution_s", Integer, nullable=False),
    UniqueConstraint("entity_id", "series_type", "phase"),
)

values = Table(
    "values",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    Column("start", Micros, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id"), primary_key=True),
    Column("end", Micros, nullable=False),
    Column("value", Double, nullable=True),
    Column("belief", Micros, nullable=False),
    Column("status", String(20), nullable=True),
    sqlite_with_rowid=False,
)

peers = Table(
    "peers",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("protocol", String(20), nullable=False),
    Column("name", String(200), nullable=False),
    Column("base_url", String(1000), nullable=True),
    # How we authenticate toward the peer: none, basic, token (OSCP "Token x"), bearer.
    Column("auth_kind", String(20), nullable=False),
    Column("out_username", String(200), nullable=True),
    # A credential we present to the peer must be usable, so it cannot be hashed: it is
    # sealed instead (store/secret_box.py), "fernet:" and a token for a secret of at most
    # 500 characters.
    Column("out_secret", String(1000), nullable=True),
    # The account the peer authenticates with toward us.
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
    Column("state", JSON, nullable=False),
    Column("last_seen_at", Micros, nullable=True),
    Column("created_at", Micros, nullable=False),
    UniqueConstraint("tenant_id", "protocol", "name"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
    Column("peer_id", Integer, ForeignKey("peers.id", ondelete="SET NULL"), nullable=True),
    Column("protocol", String(20), nullable=False),
    Column("message_type", String(80), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("message_id", String(200), nullable=True),
    Column("correlation_id", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("detail", Text, nullable=True),
    Column("payload", LargeBinary, nullable=True),
    # Set for inbound messages that carry an id: a repeat of the same id is not applied twice.
    Column("dedup_key", String(500), nullable=True, unique=True),
    Column("created_at", Micros, nullable=False),
    Index(None, "tenant_id", "created_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("peer_id", Integer, ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
    Column("protocol", String(20), nullable=False),
    Column("message_type", String(80), nullable=False),
    Column("method", String(10), nullable=False),
    # Relative to the peer's base URL, or absolute.
    Column("path", String(1000), nullable=False),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=True),
    Column("message_id", String(200), nullable=False),
    # Messages to one peer with the same topic supersede each other (store.outbox.enqueue).
    Column("topic", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Micros, nullable=False),
    Column("deadline_at", Micros, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", Micros, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Micros, nullable=False),
    Column("sent_at", Micros, nullable=True),
    Index(None, "status", "next_attempt_at"),
    Index(None, "peer_id", "status", "id"),  # a peer's oldest pending message (claim_due)
)

# A group's plan to make for a peer (hub.plan_jobs): one row per peer, group and window,
# whatever asked for it and however often; `generation` counts the requests, so a run that
# started before the newest one leaves the row for another run (the newest inputs win).
plan_jobs = Table(
    "plan_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("peer_id", Integer, ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
    Column("group_key", String(300), nullable=False),  # the peer's name of the group
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("window_start", Micros, nullable=False),
    Column("window_end", Micros, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("requested_at", Micros, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", Micros, nullable=True),
    Column("claimed_generation", Integer, nullable=True),
    UniqueConstraint("peer_id", "group_key", "window_start", "window_end"),
    Index(None, "requested_at"),
)

app_secrets = Table(
    "app_secrets",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", String(500), nullable=False),
)

__all__ = [
    "accounts",
    "api_tokens",
    "app_secrets",
    "connectors",
    "entities",
    "entity_references",
    "messages",
    "metadata",
    "outbox",
    "peers",
    "plan_jobs",
    "series",
    "sources",
    "tenants",
    "values",
]


def _uftp_revisions(name: str) -> Table:
    """The revision of each AGR's UFTP message per entity and Period (store/uftp.py), so
    that an older revision is refused ("Subordinate sequence number"); the values themselves
    are series on the entity."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        _tenant_fk(),
        Column("peer_id", Integer, ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
        Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
        Column("period", String(10), nullable=False),  # the local date, YYYY-MM-DD
        Column("revision", BigInteger, nullable=False),
        Column("message_id", String(200), nullable=False),
        Column("received_at", Micros, nullable=False),
        UniqueConstraint("peer_id", "entity_id", "period"),
    )


uftp_prognoses = _uftp_revisions("uftp_prognoses")  # D-Prognoses, per congestion point
uftp_meterings = _uftp_revisions("uftp_meterings")  # Meterings, per connection (its Meter)


def _uftp_trade(name: str, *columns: Column[Any] | Index) -> Table:
    """A UFTP flex message of a trade (store/uftp.py): whose, where, for which Period, its
    conversation and its state; the message's own parts in `columns`."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        _tenant_fk(),
        Column("peer_id", Integer, ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
        Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
        Column("period", String(10), nullable=False),
        Column("message_id", String(200), nullable=False),
        Column("conversation_id", String(200), nullable=False),
        Column("status", String(20), nullable=False),
        Column("created_at", Micros, nullable=False),
        *columns,
        UniqueConstraint("peer_id", "message_id"),
    )


uftp_flex_requests = _uftp_trade(
    "uftp_flex_requests",
    Column("revision", BigInteger, nullable=False),
    Column("expires_at", Micros, nullable=False),
    Column("isps", JSON, nullable=False),  # [{start, duration, disposition, min_w, max_w}]
    Column("contract_id", String(200), nullable=True),  # the ContractID it carried (0010)
    Index(None, "entity_id", "period"),
)
uftp_flex_offers = _uftp_trade(
    "uftp_flex_offers",
    Column("flex_request_message_id", String(200), nullable=True),
    Column("expires_at", Micros, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("version", String(20), nullable=False),
    # [{reference, price, min_activation_factor, isps: [{start, duration, power_w}]}]
    Column("options", JSON, nullable=False),
    Column("contract_id", String(200), nullable=True),  # the ContractID it named (0010)
    Index(None, "entity_id", "period"),
)
uftp_flex_orders = _uftp_trade(
    "uftp_flex_orders",
    Column("flex_offer_message_id", String(200), nullable=False),
    Column("option_reference", String(200), nullable=False),
    Column("activation_factor", String(10), nullable=False),  # decimal text, as on the wire
    Column("price", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("order_reference", String(200), nullable=False),
    Column("isps", JSON, nullable=False),  # [{start, duration, power_w}], copied from the offer
    # The AGR's D-Prognosis when the order was placed, {ISP number: W} for the order's ISPs
    # (later revisions replace it in the series), and its MessageID; null before 0011.
    Column("baseline", JSON, nullable=True),
    Column("d_prognosis_message_id", String(200), nullable=True),
)

# A FlexSettlement we sent an AGR for a month (store/uftp_settlements.py): sent, then
# accepted or rejected by its FlexSettlementResponse.
uftp_settlements = Table(
    "uftp_settlements",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("peer_id", Integer, ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM, in the market's zone
    Column("message_id", String(200), nullable=False),
    Column("conversation_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("rejection_reason", Text, nullable=True),
    Column("created_at", Micros, nullable=False),
    Column("answered_at", Micros, nullable=True),
    UniqueConstraint("peer_id", "message_id"),
    Index(None, "tenant_id", "month"),
)
# One FlexOrder's settlement in a FlexSettlement; unique per order, so that no order is
# settled twice whatever runs at once. Amounts are decimal text, as on the wire.
uftp_order_settlements = Table(
    "uftp_order_settlements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "settlement_id",
        Integer,
        ForeignKey("uftp_settlements.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "order_id", Integer, ForeignKey("uftp_flex_orders.id", ondelete="CASCADE"), nullable=False
    ),
    Column("order_reference", String(200), nullable=False),
    Column("price", String(40), nullable=False),
    Column("penalty", String(40), nullable=False),
    Column("net_settlement", String(40), nullable=False),
    # [{start, baseline_w, ordered_w, actual_w, delivered_w, deficiency_w}]
    Column("isps", JSON, nullable=False),
    Column("disposition", String(20), nullable=True),  # Accepted | Disputed, once answered
    Column("dispute_reason", Text, nullable=True),
    UniqueConstraint("order_id"),
)

# A bilateral contract between the DSO and an AGR (store/uftp_contracts.py): flex the AGR
# reserves at a congestion point for every Period from valid_from to valid_to (inclusive),
# either a constant power on every ISP or a pattern of ISPs repeated each day, in signed watts
# as UFTP writes them (negative: consumption reduced).
uftp_contracts = Table(
    "uftp_contracts",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("peer_id", Integer, ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("contract_id", String(200), nullable=False),  # ContractID on the wire
    Column("valid_from", String(10), nullable=False),  # the first Period, YYYY-MM-DD
    Column("valid_to", String(10), nullable=False),  # the last Period
    Column("reserved_w", BigInteger, nullable=True),  # constant: every ISP of every Period
    Column("reserved_isps", JSON, nullable=True),  # [{start, duration, power_w}]; others 0
    Column("status", String(20), nullable=False),  # active | removed
    Column("created_at", Micros, nullable=False),
    Column("removed_at", Micros, nullable=True),
    UniqueConstraint("tenant_id", "contract_id"),
    Index(None, "entity_id"),
)
# The FlexReservationUpdates we send under a contract, one Period each (store/uftp.py).
uftp_reservation_updates = _uftp_trade(
    "uftp_reservation_updates",
    Column(
        "uftp_contract_id",
        Integer,
        ForeignKey("uftp_contracts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("reference", String(200), nullable=False),
    Column("isps", JSON, nullable=False),  # [{start, duration, power_w}], still reserved
    Column("rejection_reason", String(2000), nullable=True),  # the AGR's, when Rejected
    Index(None, "uftp_contract_id", "period"),
)
# What we send a peer outside a trade and the answer it gave (store/uftp_exchanges.py):
# DSOPortfolioUpdate and DSOPortfolioQuery to a CRO, TestMessage to any UFTP peer.
uftp_exchanges = Table(
    "uftp_exchanges",
    metadata,
    Column("id", Integer, primary_key=True),
    _tenant_fk(),
    Column("peer_id", Integer, ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(40), nullable=False),  # the message type we sent
    Column("message_id", String(200), nullable=False),
    Column("conversation_id", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # sent | accepted | rejected | answered
    Column("request", JSON, nullable=False),  # what we asked (congestion points, Period)
    Column("answer", JSON, nullable=True),  # what the answer said
    Column("rejection_reason", String(2000), nullable=True),
    Column("created_at", Micros, nullable=False),
    Column("answered_at", Micros, nullable=True),
    UniqueConstraint("peer_id", "message_id"),
    Index(None, "peer_id", "conversation_id"),
)
