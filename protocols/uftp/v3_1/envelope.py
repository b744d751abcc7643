"""The SignedMessage envelope (UFTP message-transport-mechanism):

    <SignedMessage SenderDomain="agr.example.com" SenderRole="AGR" Body="base64"/>

Body is base64 of the sealed inner message (sealing.py). The envelope is read with the safe
parser and checked against our schema before any key is looked up; nothing inside Body is
parsed until its signature has been verified over the exact bytes received.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from xml.sax.saxutils import quoteattr

from protocols.common.xmlschemas import XmlInvalid, check, parse
from protocols.uftp.v3_1.schemas import ENVELOPE, PACKAGE


class Role(StrEnum):
    """USEF-RoleType."""

    AGR = "AGR"
    CRO = "CRO"
    DSO = "DSO"


@dataclass(frozen=True, slots=True)
class Envelope:
    sender_domain: str
    sender_role: Role
    sealed: bytes  # Body, base64-decoded: signature || inner XML


def read_envelope(data: bytes) -> Envelope:
    """The envelope of a received body; XmlInvalid (HTTP 400) when it is not one."""
    root = parse(data)
    if root.tag != "SignedMessage":
        raise XmlInvalid(f"the root element is {root.tag!r}, not 'SignedMessage'")
    check(root, PACKAGE, ENVELOPE)
    try:
        sealed = base64.b64decode("".join(root.attrib["Body"].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise XmlInvalid("SignedMessage/@Body: not base64") from exc
    return Envelope(root.attrib["SenderDomain"].strip(), Role(root.attrib["SenderRole"]), sealed)


def write_envelope(domain: str, role: Role, sealed: bytes) -> bytes:
    """The SignedMessage that carries `sealed` from us (standard base64, no line breaks)."""
    body = base64.b64encode(sealed).decode()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<SignedMessage SenderDomain={quoteattr(domain)} SenderRole={quoteattr(str(role))}"
        f' Body="{body}"/>'
    ).encode()
