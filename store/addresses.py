"""USEF entity addresses (EA): the EA1 and EAN schemes of UFTP / USEF, strictly checked.

Grammar (UFTP "EA1 addressing scheme", see specs/uftp-3.1-notes.md section 7)::

    entity-address = ea1-address / ean-address   ; at most 255 printable 7-bit ASCII chars
    ea1-address    = "ea1." yyyy "-" mm "." reversed-domain ":" local-part
    ean-address    = "ean." 12*34DIGIT

Decisions, and why:

- Prefixes are lowercase only. The spec writes ``ea1`` as "a constant" and every schema
  pattern peers validate with (``ea1\\.``/``ean\\.``) is case-sensitive, so ``EA1.``/``EAN.``
  would be refused by the other side anyway; we refuse them here with the reason.
- The date code must be a real month, 01-12 (the prose requires it; the XSD pattern does not).
- The reversed domain is one or more DNS labels: FlexMeasures issues
  ``ea1.2018-06.localhost:5000:7:106`` with the single label ``localhost``. The FIRST ':' ends
  the domain (labels cannot hold ':'), so there the ``5000`` port lands in the local part.
- Labels keep the case they were written in, and so does ``str()``: addresses are compared
  as strings by peers, so an address must render back exactly as received. ``build_ea1``,
  which mints our own addresses, emits the lowercase canonical form.
- The local part is any printable US-ASCII except space (0x21-0x7E), ':' and '.' included.
- FlexMeasures' simulation shorthand (``<owner-id>:<asset-id>``) is refused: it names
  nothing outside one FlexMeasures server.
- EAN digits are 12 to 34 (the XSD bound); the GS1 check digit is NOT required by the
  protocol, so it is only reported (``EANAddress.check_digit_ok``), never enforced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from store.errors import ValidationError

MAX_LENGTH = 255
EA1_PREFIX = "ea1."
EAN_PREFIX = "ean."
MAX_LABEL_LENGTH = 63
EAN_MIN_DIGITS = 12
EAN_MAX_DIGITS = 34

_DATE_CODE = re.compile(r"([0-9]{4})-([0-9]{2})", re.ASCII)
_LABEL_CHARS = re.compile(r"[A-Za-z0-9-]+", re.ASCII)
_SIMULATION_SHORTHAND = re.compile(r"[0-9]+(?::[0-9]+)?", re.ASCII)


def _is_visible_ascii(char: str) -> bool:
    return "\x21" <= char <= "\x7e"


def _describe(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X})"


def _length_problem(text: str) -> str | None:
    if len(text) > MAX_LENGTH:
        return f"address is {len(text)} characters, at most {MAX_LENGTH}"
    return None


def _label_problem(label: str) -> str | None:
    if not label:
        return "domain has an empty label (two dots in a row, or a dot at either end)"
    if len(label) > MAX_LABEL_LENGTH:
        return f"domain label {label!r} is {len(label)} characters, at most {MAX_LABEL_LENGTH}"
    if not _LABEL_CHARS.fullmatch(label):
        bad = next(c for c in label if not _LABEL_CHARS.fullmatch(c))
        return (
            f"domain label {label!r} contains {_describe(bad)}; "
            "only letters, digits and hyphens are allowed"
        )
    if label.startswith("-") or label.endswith("-"):
        return f"domain label {label!r} starts or ends with a hyphen"
    return None


def _domain_problem(domain: str) -> str | None:
    if not isinstance(domain, str):
        return f"expected a string, got {type(domain).__name__}"
    if not domain:
        return "domain is empty"
    for label in domain.split("."):
        problem = _label_problem(label)
        if problem:
            return problem
    return None


def _local_problem(local_part: str) -> str | None:
    if not isinstance(local_part, str):
        return f"expected a string, got {type(local_part).__name__}"
    if not local_part:
        return "local part is empty"
    for position, char in enumerate(local_part):
        if not _is_visible_ascii(char):
            return (
                f"local part has {_describe(char)} at position {position}; "
                "only printable 7-bit ASCII without spaces (0x21-0x7E) is allowed"
            )
    return None


@dataclass(frozen=True, slots=True)
class EA1Address:
    """``ea1.<yyyy>-<mm>.<reversed domain>:<local part>``; validated on construction."""

    year: int
    month: int
    reversed_domain: str
    local_part: str

    def __post_init__(self) -> None:
        if type(self.year) is not int or not 0 <= self.year <= 9999:
            raise ValidationError("year", f"year {self.year!r} is not 4 digits (0000-9999)")
        if type(self.month) is not int or not 1 <= self.month <= 12:
            month = f"{self.month:02d}" if type(self.month) is int else repr(self.month)
            raise ValidationError("month", f"month {month} is outside 01-12")
        for field, problem in (
            ("reversed_domain", _domain_problem(self.reversed_domain)),
            ("local_part", _local_problem(self.local_part)),
            ("entity_address", _length_problem(str(self))),
        ):
            if problem:
                raise ValidationError(field, problem)

    def __str__(self) -> str:
        return (
            f"{EA1_PREFIX}{self.year:04d}-{self.month:02d}.{self.reversed_domain}:{self.local_part}"
        )

    @property
    def domain(self) -> str:
        """The naming authority's domain the usual way round, e.g. ``company.flexmeasures.io``."""
        return ".".join(reversed(self.reversed_domain.split(".")))


@dataclass(frozen=True, slots=True)
class EANAddress:
    """``ean.<12 to 34 digits>``, a connection point EAN; validated on construction."""

    digits: str

    def __post_init__(self) -> None:
        problem = _ean_problem(self.digits)
        if problem:
            raise ValidationError("digits", problem)

    def __str__(self) -> str:
        return f"{EAN_PREFIX}{self.digits}"

    @property
    def check_digit_ok(self) -> bool:
        """GS1 mod-10 check of the last digit; informative only (UFTP does not require it)."""
        body, check = self.digits[:-1], int(self.digits[-1])
        # GS1: weights 3, 1, 3, ... from the digit left of the check digit, leftwards.
        total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
        return (10 - total % 10) % 10 == check


EntityAddress: TypeAlias = EA1Address | EANAddress


def _ean_problem(digits: str) -> str | None:
    if not isinstance(digits, str):
        return f"expected a string of digits, got {type(digits).__name__}"
    for position, char in enumerate(digits):
        if not "0" <= char <= "9":
            return (
                f"ean part has {_describe(char)} at position {position}; "
                "only digits 0-9 are allowed"
            )
    if not EAN_MIN_DIGITS <= len(digits) <= EAN_MAX_DIGITS:
        return f"ean has {len(digits)} digits, needs {EAN_MIN_DIGITS} to {EAN_MAX_DIGITS}"
    return None


def _text_problem(text: object) -> str | None:
    """Checks on the address as a whole, before any scheme-specific parsing."""
    if not isinstance(text, str):
        return f"expected a string, got {type(text).__name__}"
    if not text:
        return "address is empty"
    problem = _length_problem(text)
    if problem:
        return problem
    for position, char in enumerate(text):
        if not _is_visible_ascii(char):
            return (
                f"character {_describe(char)} at position {position} is not allowed: "
                "an entity address is printable 7-bit ASCII without spaces"
            )
    return None


def _prefix_problem(text: str) -> str:
    head = text[:4]
    if head.lower() in (EA1_PREFIX, EAN_PREFIX):
        return f"prefix {head!r} must be lowercase {head.lower()!r}"
    reason = f"an {EA1_PREFIX!r} or {EAN_PREFIX!r} prefix is required"
    if _SIMULATION_SHORTHAND.fullmatch(text):
        reason += " (the FlexMeasures '<owner-id>:<asset-id>' simulation shorthand is not one)"
    return reason


def _parse_ea1(body: str) -> EA1Address:
    """`body` is the text after ``ea1.``; raises ValidationError with attribute fields."""
    head, colon, local_part = body.partition(":")
    date_code, _, reversed_domain = head.partition(".")
    match = _DATE_CODE.fullmatch(date_code)
    if not match:
        raise ValidationError(
            "date_code",
            f"date code {date_code!r} is not yyyy-mm (4 year digits, a dash, 2 month digits)",
        )
    problem = (
        _domain_problem(reversed_domain)
        if reversed_domain
        else ("reversed domain is missing after the date code")
    )
    if problem:
        raise ValidationError("reversed_domain", problem)
    if not colon:
        raise ValidationError(
            "local_part", "no ':' separates the reversed domain from the local part"
        )
    return EA1Address(int(match[1]), int(match[2]), reversed_domain, local_part)


def parse_entity_address(text: str, field: str = "entity_address") -> EntityAddress:
    """Parse an EA1 or EAN entity address; ValidationError(field, reason) when refused."""
    problem = _text_problem(text)
    if problem:
        raise ValidationError(field, problem)
    try:
        if text.startswith(EA1_PREFIX):
            return _parse_ea1(text[len(EA1_PREFIX) :])
        if text.startswith(EAN_PREFIX):
            return EANAddress(text[len(EAN_PREFIX) :])
    except ValidationError as exc:
        # Report under the caller's field name: the peer sent one string, not our attributes.
        raise ValidationError(field, exc.reason) from None
    raise ValidationError(field, _prefix_problem(text))


def build_ea1(domain: str, local_part: str, *, year: int, month: int) -> EA1Address:
    """Mint an EA1 address for the FORWARD `domain` (``company.flexmeasures.io``).

    `year`/`month` should be the first month the domain was owned (UFTP). The domain is
    lowercased: DNS names are case-insensitive and minted addresses should be canonical.
    """
    if not isinstance(domain, str):
        raise ValidationError("domain", f"expected a string, got {type(domain).__name__}")
    reversed_domain = ".".join(reversed(domain.lower().split(".")))
    try:
        return EA1Address(year, month, reversed_domain, local_part)
    except ValidationError as exc:
        field = "domain" if exc.field == "reversed_domain" else exc.field
        raise ValidationError(field, exc.reason) from None
