"""Azure Service Bus / Event Hubs shared access signatures (CP-API section 5.2.1).

    SharedAccessSignature sr=<url-encoded resource URI>&sig=<url-encoded base64 HMAC-SHA256>
                          &se=<expiry, Unix seconds>&skn=<key name>

where sig = HMAC-SHA256(key, url-encoded resource URI + "\\n" + expiry). flexbridge issues one
token per gateway (a publisher) and keeps only the token's SHA-256: the signing key is thrown
away after signing, so a stolen database yields no way to make tokens. The consequence: a token
is valid because flexbridge issued it (found by hash), for the resource it names, until `se`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote, urlsplit

from protocols.common.surface import AuthError

SCHEME = "SharedAccessSignature"


@dataclass(frozen=True, slots=True)
class Signature:
    resource: str  # decoded resource URI
    signature: str
    expiry: int
    key_name: str


def make_token(resource: str, expiry: datetime, key_name: str, key: bytes | None = None) -> str:
    """A SharedAccessSignature for `resource` valid until `expiry` (signed with a fresh key
    unless one is given)."""
    encoded = quote(resource, safe="").lower()
    se = str(int(expiry.timestamp()))
    digest = hmac.new(key or secrets.token_bytes(32), f"{encoded}\n{se}".encode(), hashlib.sha256)
    sig = quote(base64.b64encode(digest.digest()).decode(), safe="")
    return f"{SCHEME} sr={encoded}&sig={sig}&se={se}&skn={quote(key_name, safe='')}"


def parse_token(header: str | None) -> Signature:
    """The parts of an `Authorization: SharedAccessSignature ...` header; AuthError if absent
    or malformed (naming what is wrong)."""
    challenge = SCHEME
    if not header or not header.strip():
        raise AuthError("SharedAccessSignature required", www_authenticate=challenge)
    scheme, _, params = header.strip().partition(" ")
    if scheme != SCHEME:
        raise AuthError(f"expected the {SCHEME} scheme", www_authenticate=challenge)
    # Split by hand: parse_qs would turn a '+' of an unencoded base64 signature into a blank.
    fields: dict[str, str] = {}
    for pair in params.strip().split("&"):
        name, _, value = pair.partition("=")
        fields[name.strip()] = unquote(value.strip())
    missing = [name for name in ("sr", "sig", "se", "skn") if not fields.get(name)]
    if missing:
        raise AuthError(
            f"SharedAccessSignature lacks {', '.join(missing)}", www_authenticate=challenge
        )
    try:
        expiry = int(fields["se"])
    except ValueError:
        raise AuthError("se is not a Unix time", www_authenticate=challenge) from None
    return Signature(fields["sr"], fields["sig"], expiry, fields["skn"])


def resource_path(resource: str) -> str:
    """The path a resource URI names, lower case, without a trailing slash
    (`https://ns.servicebus.windows.net/hub/publishers/g1` -> `/hub/publishers/g1`)."""
    parts = urlsplit(resource if "://" in resource else f"//x/{resource.lstrip('/')}")
    return "/" + parts.path.strip("/").lower()
