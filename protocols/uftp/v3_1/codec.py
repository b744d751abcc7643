"""Inner UFTP messages in and out: the XML checked against our schema (schemas.py), read
into typed records, and ours written (attributes only, no namespace, as the specification's
XSDs have them).

A message's type is its root element's name. Every one carries the metadata of `Header`;
messages with ISPs add ISP-Duration, TimeZone and Period (read by days.py); responses carry
Result, RejectionReason and the id of the message they answer in `<Type>MessageID`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from protocols.common.xmlschemas import XmlInvalid, check, parse
from protocols.uftp.v3_1.errors import Rejected
from protocols.uftp.v3_1.isp import Span
from protocols.uftp.v3_1.schemas import INBOUND, OUTBOUND, PACKAGE

RESPONSE = "Response"


@dataclass(frozen=True, slots=True)
class Header:
    """PayloadMessageType: what every message carries."""

    kind: str  # the root element's name, e.g. "D-Prognosis"
    version: str
    sender_domain: str
    recipient_domain: str
    timestamp: datetime
    message_id: str
    conversation_id: str


@dataclass(frozen=True, slots=True)
class Inner:
    """A received message: its header, and its element for the handler of its type."""

    header: Header
    root: Element

    def attr(self, name: str) -> str | None:
        value = self.root.attrib.get(name)
        return None if value is None else value.strip()


def moment(text: str, field: str) -> datetime:
    """An xs:dateTime with the offset the prose requires (the 3.x XSD does not), in UTC;
    one datetime cannot hold (24:00:00, years beyond 1-9999 in UTC) is refused."""
    try:
        parsed = datetime.fromisoformat(text.strip())
        if parsed.tzinfo is None:
            raise Rejected(f"Invalid Message: {field} has no UTC offset")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise Rejected(
            f"Invalid Message: {field} {text!r} is not a time this server can hold"
        ) from exc


def _header(root: Element) -> Header:
    a = {k: v.strip() for k, v in root.attrib.items()}
    return Header(
        root.tag,
        a["Version"],
        a["SenderDomain"],
        a["RecipientDomain"],
        moment(a["TimeStamp"], "TimeStamp"),
        a["MessageID"],
        a["ConversationID"],
    )


# What only a DSO sends: read against the outbound schema when it arrives, so that its
# sender hears "Invalid SenderRole" (a business rejection) rather than a 400.
_SENT_BY_DSO = frozenset(
    {"FlexRequest", "FlexOrder", "FlexReservationUpdate", "FlexSettlement"}
    | {"D-PrognosisResponse", "FlexOfferResponse", "FlexOfferRevocationResponse"}
    | {"MeteringResponse", "DSOPortfolioUpdate", "DSOPortfolioQuery"}
)


def read_inner(data: bytes) -> Inner:
    """The inner message; XmlInvalid when it is not well-formed or breaks the schema,
    Rejected when its TimeStamp lacks an offset."""
    root = parse(data)
    check(root, PACKAGE, OUTBOUND if root.tag in _SENT_BY_DSO else INBOUND)
    return Inner(_header(root), root)


def spans_of(elements: Iterable[Element]) -> list[tuple[Span, Element]]:
    return [(Span(int(e.attrib["Start"]), int(e.attrib.get("Duration", "1"))), e) for e in elements]


def reference_attribute(kind: str) -> str:
    """The attribute of kind's response that names the message answered."""
    return f"{kind}MessageID"


# --- writing ---------------------------------------------------------------------------


def timestamp(moment: datetime) -> str:
    """xs:dateTime with its offset, as the prose requires (milliseconds, +00:00)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Node:
    tag: str
    attributes: Mapping[str, str]
    children: Sequence[Node] = ()

    def xml(self, indent: str = "") -> str:
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in self.attributes.items())
        if not self.children:
            return f"{indent}<{self.tag}{attrs}/>"
        inner = "\n".join(child.xml(indent + "  ") for child in self.children)
        return f"{indent}<{self.tag}{attrs}>\n{inner}\n{indent}</{self.tag}>"


def document(node: Node) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + node.xml() + "\n").encode()


__all__ = [
    "RESPONSE",
    "Header",
    "Inner",
    "Node",
    "XmlInvalid",
    "document",
    "read_inner",
    "reference_attribute",
    "spans_of",
    "timestamp",
]
