"""UFTP 3.1 from the AGR's side, for the runner and `simulate agr`: the messages it signs and
sends, and the signed messages a DSO sends back, verified and read into plain data.

The AGR's identity is the `uftp` section of the credentials file (docs/conformance.md):
its domain and libsodium secret key, the DSO's domain and public key, the congestion points
and connection the vectors name and the market's time zone. Signing, the envelope and the
safe XML reader are the protocol package's own (`protocols.uftp.v3_1` sealing, envelope and
codec), so the kit and the server agree on the wire by construction and nothing is written
twice; what the kit checks is the server's behaviour, not its codec.

A vector's `request.uftp` names the inner message (`message`, `attributes`, `children`) and
how to send it (`sender_domain`, `sender_role`, `signer`, `transfer`); the default metadata
(Version 3.1.0, the two domains, TimeStamp now, a fresh MessageID and ConversationID) is
filled in first, so a vector gives only what its rule is about, and an attribute given as
null is left out. A received message becomes

    {"envelope": {"SenderDomain": .., "SenderRole": ..}, "verified": true,
     "schema": "valid", "type": "D-PrognosisResponse", "attributes": {..},
     "children": [{"type": "ISP", "attributes": {..}, "children": []}, ..]}

with `verified` false (and no inner message) when the DSO's key does not open its Body, and
`schema` the first violation when the message breaks the DSO's outbound schema.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

from protocols.common.xmlschemas import XmlInvalid, check, parse
from protocols.uftp.v3_1.codec import Node, document, timestamp
from protocols.uftp.v3_1.envelope import Role, read_envelope, write_envelope
from protocols.uftp.v3_1.schemas import OUTBOUND, PACKAGE
from protocols.uftp.v3_1.sealing import BadKey, BadSignature, SigningKey, open_sealed, public_key

# Where the DSO sends the AGR's messages: the path on the runner's peer endpoint that the
# AGR peer's --base-url names.
RECEIVER_PATH = "/uftp/message"
MESSAGE_PATH = "/message"  # on the UFTP mount (/shapeshifter/api/v3)
CONTENT_TYPE = "text/xml; charset=utf-8"
VERSION = "3.1.0"
NEEDS = ("uftp.agr_domain", "uftp.agr_secret_key", "uftp.dso_domain", "uftp.dso_public_key")
DAYS_AHEAD = 7  # uftp_day0 (today) .. uftp_day7 in the vectors' variables
ISP = timedelta(minutes=15)


class UftpVectorError(ValueError):
    """A `request.uftp` that cannot be built (an unknown signer or role, a bad child)."""


@dataclass(frozen=True, slots=True)
class Agr:
    """The AGR the runner or the simulator is, and the DSO it talks to."""

    domain: str
    key: SigningKey
    dso_domain: str
    dso_key: str  # raw base64 public key
    time_zone: ZoneInfo

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> Agr:
        """From the credentials' `uftp` section; BadKey or KeyError when it is incomplete."""
        public_key(section["dso_public_key"])  # refuse a bad key before anything is sent
        return cls(
            section["agr_domain"],
            SigningKey.from_secret(section["agr_secret_key"]),
            section["dso_domain"],
            section["dso_public_key"],
            ZoneInfo(section.get("time_zone") or "Europe/Amsterdam"),
        )

    def metadata(self, **given: str | None) -> dict[str, str]:
        """The attributes every message carries, with `given` over them (None: left out)."""
        attributes: dict[str, str | None] = {
            "Version": VERSION,
            "SenderDomain": self.domain,
            "RecipientDomain": self.dso_domain,
            "TimeStamp": timestamp(datetime.now(UTC)),
            "MessageID": str(uuid.uuid4()),
            "ConversationID": str(uuid.uuid4()),
            **given,
        }
        return {k: str(v) for k, v in attributes.items() if v is not None}

    def envelope(
        self,
        inner: bytes,
        *,
        signer: SigningKey | None = None,
        sender_domain: str | None = None,
        sender_role: Role = Role.AGR,
    ) -> bytes:
        sealed = (signer or self.key).seal(inner)
        return write_envelope(sender_domain or self.domain, sender_role, sealed)


# --- building what a vector sends -------------------------------------------------------


def _node(spec: Any) -> Node:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
        raise UftpVectorError(f"a child must be {{'type': NAME, 'attributes': {{..}}}}: {spec!r}")
    attributes = {k: str(v) for k, v in (spec.get("attributes") or {}).items() if v is not None}
    return Node(spec["type"], attributes, [_node(c) for c in spec.get("children") or []])


def inner_of(spec: Mapping[str, Any], agr: Agr) -> bytes:
    """The inner XML of a rendered `request.uftp`."""
    if "inner_raw" in spec:
        return str(spec["inner_raw"]).encode()
    attributes = agr.metadata(**(spec.get("attributes") or {}))
    children = [_node(c) for c in spec.get("children") or []]
    return document(Node(spec["message"], attributes, children))


def signed_body(spec: Mapping[str, Any], agr: Agr) -> bytes:
    """The SignedMessage a rendered `request.uftp` stands for. `signer`: "agr" (the AGR's
    key, the default) or "stranger" (a key the DSO never saw)."""
    if "envelope_raw" in spec:
        return str(spec["envelope_raw"]).encode()
    signer = spec.get("signer", "agr")
    if signer not in ("agr", "stranger"):
        raise UftpVectorError(f"signer {signer!r} is not 'agr' or 'stranger'")
    try:
        role = Role(spec.get("sender_role", "AGR"))
    except ValueError:
        raise UftpVectorError(f"sender_role {spec.get('sender_role')!r} is not a role") from None
    return agr.envelope(
        inner_of(spec, agr),
        signer=SigningKey.generate() if signer == "stranger" else None,
        sender_domain=spec.get("sender_domain"),
        sender_role=role,
    )


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """The body without a Content-Length (HTTP chunked transfer)."""
    yield data


# --- reading what the DSO sends ---------------------------------------------------------


def _tree(element: Element) -> dict[str, Any]:
    return {
        "type": element.tag,
        "attributes": dict(element.attrib),
        "children": [_tree(child) for child in element],
    }


def read_signed(raw: bytes, dso_key: str) -> dict[str, Any]:
    """A received SignedMessage as data (the module docstring gives its shape)."""
    try:
        envelope = read_envelope(raw)
    except XmlInvalid as exc:
        return {"envelope": None, "verified": False, "error": exc.reason}
    read: dict[str, Any] = {
        "envelope": {
            "SenderDomain": envelope.sender_domain,
            "SenderRole": str(envelope.sender_role),
        },
        "verified": False,
    }
    try:
        inner = open_sealed(envelope.sealed, [public_key(dso_key)])
    except (BadKey, BadSignature) as exc:
        read["error"] = f"the DSO's public key does not verify the Body: {exc}"
        return read
    try:
        root = parse(inner)
    except XmlInvalid as exc:
        read.update(verified=True, error=f"the inner message: {exc.reason}")
        return read
    try:
        check(root, PACKAGE, OUTBOUND)
        schema = "valid"
    except XmlInvalid as exc:
        schema = exc.reason
    read.update(verified=True, schema=schema, **_tree(root))
    return read


# --- the market's calendar, for the vectors' Periods ------------------------------------


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def isps_of(day: date, zone: ZoneInfo) -> int:
    """92, 96 or 100 in a zone with daylight saving time (ISPs count elapsed time)."""
    return (_midnight(day + timedelta(days=1), zone) - _midnight(day, zone)) // ISP


def _next_day_with(count: int, after: date, zone: ZoneInfo) -> date | None:
    for n in range(1, 400):
        day = after + timedelta(days=n)
        if isps_of(day, zone) == count:
            return day
    return None


def calendar(zone: ZoneInfo, now: datetime | None = None) -> dict[str, Any]:
    """The vectors' date variables in the market's zone: `uftp_dayN` (today + N days,
    YYYY-MM-DD), `uftp_isps_dayN`, `uftp_start_dayN` (its local midnight in UTC), the same
    for `uftp_yesterday`, and `uftp_spring_day` / `uftp_autumn_day` (the next days of 92 and
    100 ISPs, when the zone has them) and `uftp_trade_day` (the first day from today + 2 with
    96 ISPs, so that a vector can name its ISPs by number)."""
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    days = {f"day{n}": today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
    days["yesterday"] = today - timedelta(days=1)
    for name, count, after in (
        ("spring_day", 92, today),
        ("autumn_day", 100, today),
        ("trade_day", 96, today + timedelta(days=1)),
    ):
        found = _next_day_with(count, after, zone)
        if found is not None:
            days[name] = found
    variables: dict[str, Any] = {}
    for name, day in days.items():
        variables[f"uftp_{name}"] = day.isoformat()
        variables[f"uftp_isps_{name}"] = isps_of(day, zone)
        variables[f"uftp_start_{name}"] = _midnight(day, zone).isoformat().replace("+00:00", "Z")
    return variables
