"""Prometheus metrics, one registry per app (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flexbridge_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flexbridge_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.messages = Counter(
            "flexbridge_messages",
            "Protocol messages by protocol, type, direction and result",
            ["protocol", "type", "direction", "result"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "flexbridge_outbox_messages",
            "Outbox rows by status",
            ["status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "flexbridge_outbox_deliveries",
            "Outbox delivery attempts by result",
            ["protocol", "result"],
            registry=self.registry,
        )
        # Plan jobs (adapter/planner.py): made, abandoned (taken over by another process, or
        # its peer or group gone) or failed, and how long each waited for a
        # worker after the request that asked for it.
        self.plans = Counter(
            "flexbridge_plans",
            "Plan jobs made, by result",
            ["result"],
            registry=self.registry,
        )
        self.plan_wait = Histogram(
            "flexbridge_plan_wait_seconds",
            "Time from a plan's request to a worker starting it",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.peers = Gauge(
            "flexbridge_peers",
            "Peers by protocol and whether their last heartbeat still vouches for them",
            ["protocol", "state"],
            registry=self.registry,
        )
        # The brake on guessing (adapter/throttle.py): every refused credential by scheme
        # (basic, tenant_key, token, sas) and reason, the locks imposed, and what is locked
        # now (accounts as the database has them, addresses and unknown usernames as this
        # process has them).
        self.auth_failures = Counter(
            "flexbridge_auth_failures",
            "Refused authentication attempts by scheme and reason",
            ["scheme", "reason"],
            registry=self.registry,
        )
        self.auth_locks = Counter(
            "flexbridge_auth_locks",
            "Locks imposed after repeated failed authentication, by what was locked",
            ["kind"],
            registry=self.registry,
        )
        self.auth_locked = Gauge(
            "flexbridge_auth_locked",
            "Accounts, unknown usernames and client addresses locked now",
            ["kind"],
            registry=self.registry,
        )

        # Connections (adapter/connections.py): open now, refused over the cap, and cut off
        # because a request's headers or body did not arrive in time.
        self.connections_open = Gauge(
            "flexbridge_connections_open",
            "HTTP connections open now",
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "flexbridge_connections_refused",
            "HTTP connections refused at accept because max_connections were open",
            registry=self.registry,
        )
        self.connections_cut = Counter(
            "flexbridge_connections_cut",
            "HTTP connections closed because a request's headers or body came too slowly",
            ["phase"],
            registry=self.registry,
        )

    def message(self, protocol: str, message_type: str, direction: str, result: str) -> None:
        self.messages.labels(protocol, message_type, direction, result).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
