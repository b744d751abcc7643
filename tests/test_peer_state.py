"""hub.peer_state: the typed peer state, its JSON and the untyped bag it replaced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.capacity import Block
from hub.peer_state import (
    SCHEMA_VERSION,
    CapacityRequest,
    Complaint,
    Fallback,
    GroupLink,
    PeerState,
    UnknownIds,
    decode,
    encode,
)

T0 = datetime(2026, 12, 7, 10, tzinfo=UTC)
Q = timedelta(minutes=15)


def _full() -> PeerState:
    return PeerState(
        unknown_ids=UnknownIds.LENIENT,
        version="2.0",
        registered_at=T0,
        handshaken_at=T0 + Q,
        heartbeat_interval=60.0,
        next_heartbeat_at=T0 + 2 * Q,
        last_heartbeat_at=T0,
        offline_mode_at=T0 + 3 * Q,
        online=False,
        offline_since=T0 + 3 * Q,
        measurement_configuration=["CONTINUOUS"],
        groups={"site-1": GroupLink(T0, True, "A", "ALL")},
        fallbacks={"site-1": {"CONSUMPTION": Fallback([Block(T0, T0 + Q, 8.0)], "KW", "ALL", T0)}},
        capacity_requests={"site-1": CapacityRequest("CONSUMPTION", "r-1", T0, T0, T0 + Q)},
        complaint=Complaint("exceeded", "r-2", T0),
        system="System xyz",
        messages=["FlexibilityOfferMessage"],
    )


def test_a_state_survives_its_json_field_for_field():
    state = _full()
    assert decode(encode(state)) == state
    assert encode(state)["schema_version"] == SCHEMA_VERSION


def test_a_new_peer_has_the_defaults():
    state = decode({})
    assert state == PeerState()
    assert state.unknown_ids is UnknownIds.STRICT and state.online is None


def test_the_untyped_bag_of_before_reads_as_version_1():
    """Version 0 had the same keys as strings, but for two renamed ones and fallbacks keyed by
    their OSCP type."""
    bag = {
        "unknown_ids": "lenient",
        "handshaken_at": "2026-12-07T10:15:00Z",
        "heartbeat_interval": 60,
        "online": True,
        "groups": {"site-1": {"dirty": True, "sent_at": "2026-12-07T10:00:00+00:00"}},
        "fallbacks": {
            "site-1": {
                "FALLBACK_CONSUMPTION": {
                    "blocks": [["2026-12-07T10:00:00+00:00", "2026-12-07T10:15:00+00:00", 8]],
                    "unit": "A",
                    "phase": "ALL",
                    "received_at": "2026-12-07T10:00:00+00:00",
                    "applied": True,
                }
            }
        },
        "adjust_requests": {
            "site-1": {
                "type": "CONSUMPTION",
                "request_id": "adj-1",
                "received_at": "2026-12-07T10:00:00+00:00",
                "start": "2026-12-07T10:00:00+00:00",
                "end": "2026-12-07T10:15:00+00:00",
            }
        },
        "compliance_error": {
            "message": "exceeded",
            "request_id": "err-1",
            "received_at": "2026-12-07T10:00:00+00:00",
        },
        "system": "System xyz",
        "messages": [],
    }
    state = decode(bag)
    assert state.unknown_ids is UnknownIds.LENIENT
    assert state.handshaken_at == T0 + Q and state.heartbeat_interval == 60.0
    assert state.groups["site-1"] == GroupLink(T0, True, None, None)
    fallback = state.fallbacks["site-1"]["CONSUMPTION"]
    assert fallback.blocks == [Block(T0, T0 + Q, 8.0)] and fallback.applied
    assert state.capacity_requests["site-1"].kind == "CONSUMPTION"
    assert state.complaint == Complaint("exceeded", "err-1", T0)
    assert decode(encode(state)) == state
