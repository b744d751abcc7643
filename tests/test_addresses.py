"""store.addresses: USEF EA1 / EAN entity addresses (specs/uftp-3.1-notes.md section 7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.addresses import (
    EA1Address,
    EANAddress,
    build_ea1,
    parse_entity_address,
)
from store.errors import ValidationError

# Every address example in the UFTP notes and the FlexMeasures 0.3 USEF API docs.
EXAMPLES = [
    "ea1.2013-11.info.usef.test:001:002.090807002a&b#",
    "ea1.2009-01.nl.enexis.usef:123-TP-bundel-congestiepunt",
    "ea1.1992-01.com.example:gridpoint.4f76ff19-a53b-49f5-84e6",
    "ea1.1992-01.com.usef-example:gridpoint.11111111-1111-1111-1111",
    "ea1.2018-06.localhost:5000:7:106",
    "ea1.2018-06.localhost:5000:6:105",
    "ea1.2018-06.localhost:5000:11:66",
    "ea1.2018-06.localhost:5000:12:65",
    "ea1.2018-06.localhost:epex_da",
    "ea1.2018-06.localhost:1:3",
    "ea1.2021-02.io.flexmeasures.company:30:73",
    "ea1.2018-06.io.flexmeasures.company:30:73",
    "ea1.2018-06.io.flexmeasures.company:temperature:33.4843866:126.477859",
    "ea1.2018-06.io.flexmeasures.company:kpx_da",
    "ea1.2018-06.io.flexmeasures.company:1:1",
    "ea1.2018-06.io.flexmeasures.company:7:10:203:soc",
    "ea1.2018-06.io.flexmeasures.company:7:10:204:soc-with-targets",
    "ean.871685900012636543",
    "ean.123456789012",
    "ean.123123123123123123",
]


def reason_for(text: object, field: str = "entity_address") -> str:
    with pytest.raises(ValidationError) as info:
        parse_entity_address(text, field)  # type: ignore[arg-type]
    assert info.value.field == field
    return info.value.reason


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_spec_example_parses_and_renders_back_identically(text: str) -> None:
    assert str(parse_entity_address(text)) == text


def test_ea1_parts_of_the_uftp_example() -> None:
    """ "ea1.2013-11.info.usef.test:001:002.090807002a&b#" -- naming authority, then the
    unique identifier, which "may include colons to separate organization boundaries"."""
    address = parse_entity_address("ea1.2013-11.info.usef.test:001:002.090807002a&b#")
    assert address == EA1Address(2013, 11, "info.usef.test", "001:002.090807002a&b#")
    assert address.domain == "test.usef.info"


def test_flexmeasures_example_domain_is_forward() -> None:
    """ "ea1.2021-02.io.flexmeasures.company:30:73 where FlexMeasures runs at
    company.flexmeasures.io and the owner ID is 30 and the asset ID is 73"."""
    address = parse_entity_address("ea1.2021-02.io.flexmeasures.company:30:73")
    assert isinstance(address, EA1Address)
    assert address.domain == "company.flexmeasures.io"
    assert address.local_part == "30:73"


def test_first_colon_ends_the_domain_so_a_port_lands_in_the_local_part() -> None:
    """The FIRST colon after the date code separates domain from local part, because
    domain labels cannot contain colons."""
    address = parse_entity_address("ea1.2018-06.localhost:5000:7:106")
    assert address == EA1Address(2018, 6, "localhost", "5000:7:106")
    assert address.domain == "localhost"


def test_ean_example() -> None:
    """EAN, "commonly used to uniquely identify connection points": ean.871685900012636543."""
    address = parse_entity_address("ean.871685900012636543")
    assert address == EANAddress("871685900012636543")


def test_ean_check_digit_is_reported_not_enforced() -> None:
    """ "The protocol does not require the check digit, so at most warn on it." """
    assert EANAddress("871685900012636543").check_digit_ok is True
    assert EANAddress("123123123123123123").check_digit_ok is False
    assert str(parse_entity_address("ean.123123123123123123")) == "ean.123123123123123123"


def test_month_must_be_01_to_12() -> None:
    """ "All 4 year digits and 2 month digits are required (01-12)"; the XSD alone lets
    ea1.2013-13.x:y through."""
    assert reason_for("ea1.2013-13.x:y") == "month 13 is outside 01-12"
    assert reason_for("ea1.2013-00.x:y") == "month 00 is outside 01-12"


@pytest.mark.parametrize(
    "text", ["ea1.2013-1.x:y", "ea1.13-11.x:y", "ea1.2013/11.x:y", "ea1.201311.x:y", "ea1.:y"]
)
def test_date_code_must_be_yyyy_mm(text: str) -> None:
    """ "All 4 year digits and 2 month digits are required ... and the dash is required." """
    assert reason_for(text).startswith("date code ")
    assert "is not yyyy-mm" in reason_for(text)


def test_no_colon_is_refused() -> None:
    """ea1.2013-11.info.usef.test fails: no colon, no locally unique string."""
    assert reason_for("ea1.2013-11.info.usef.test") == (
        "no ':' separates the reversed domain from the local part"
    )


def test_local_part_is_empty() -> None:
    assert reason_for("ea1.2013-11.info.usef.test:") == "local part is empty"


def test_reversed_domain_is_missing() -> None:
    assert reason_for("ea1.2013-11:abc") == "reversed domain is missing after the date code"
    assert reason_for("ea1.2013-11.:abc") == "reversed domain is missing after the date code"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "ea1.2013-11.info..test:x",
            "domain has an empty label (two dots in a row, or a dot at either end)",
        ),
        (
            "ea1.2013-11.info.test.:x",
            "domain has an empty label (two dots in a row, or a dot at either end)",
        ),
        (
            "ea1.2013-11.info.us_ef:x",
            "domain label 'us_ef' contains '_' (U+005F); "
            "only letters, digits and hyphens are allowed",
        ),
        ("ea1.2013-11.info.-usef:x", "domain label '-usef' starts or ends with a hyphen"),
        ("ea1.2013-11.info.usef-:x", "domain label 'usef-' starts or ends with a hyphen"),
        (
            "ea1.2013-11.info." + "a" * 64 + ":x",
            "domain label '" + "a" * 64 + "' is 64 characters, at most 63",
        ),
    ],
)
def test_domain_label_rules(text: str, reason: str) -> None:
    """Reversed domain = DNS labels: letters, digits, hyphens, 1-63 chars, no edge hyphen."""
    assert reason_for(text) == reason


def test_63_character_label_is_fine() -> None:
    text = "ea1.2013-11.info." + "a" * 63 + ":x"
    assert str(parse_entity_address(text)) == text


def test_address_longer_than_255_is_refused() -> None:
    """ "an EA is a variable-length, 7-bit printable ASCII text string containing up to
    255 characters." """
    head = "ea1.2013-11.info.usef.test:"
    assert str(parse_entity_address(head + "x" * (255 - len(head)))).endswith("x")
    too_long = head + "x" * (300 - len(head))
    assert reason_for(too_long) == "address is 300 characters, at most 255"


@pytest.mark.parametrize(
    ("text", "position", "char"),
    [
        ("ea1.2013-11.info.usef.test:caf\u00e9", 30, "\u00e9"),
        ("ea1.2013-11.info.usef.test:a b", 28, " "),
        ("ea1.2013-11.info.usef.test:a\tb", 28, "\t"),
        ("ean.871685900012636543\n", 22, "\n"),
    ],
)
def test_only_printable_7bit_ascii(text: str, position: int, char: str) -> None:
    """ "Syntactically, an EA is a variable-length, 7-bit printable ASCII text string"."""
    reason = reason_for(text)
    assert f"U+{ord(char):04X}" in reason
    assert f"at position {position}" in reason


def test_uppercase_prefix_is_refused() -> None:
    """ "Lowercase prefixes only: EAN./EA1. fail." """
    assert reason_for("EAN.871685900012636543") == "prefix 'EAN.' must be lowercase 'ean.'"
    assert reason_for("EA1.2013-11.info.usef.test:x") == "prefix 'EA1.' must be lowercase 'ea1.'"


@pytest.mark.parametrize("text", ["30:73", "73"])
def test_flexmeasures_simulation_shorthand_is_refused(text: str) -> None:
    """FlexMeasures "Notation for simulation": "<owner-id>:<asset-id>" or "<asset-id>"."""
    reason = reason_for(text)
    assert reason.startswith("an 'ea1.' or 'ean.' prefix is required")
    assert "simulation shorthand" in reason


@pytest.mark.parametrize("text", ["urn:ea1.2013-11.x:y", "ea2.2013-11.x:y", "ean"])
def test_other_prefixes_are_refused(text: str) -> None:
    assert reason_for(text) == "an 'ea1.' or 'ean.' prefix is required"


def test_ean_needs_12_to_34_digits() -> None:
    """ean-address = "ean." 12*34DIGIT; ean.12345 fails (<12 digits)."""
    assert reason_for("ean.12345") == "ean has 5 digits, needs 12 to 34"
    assert reason_for("ean." + "1" * 35) == "ean has 35 digits, needs 12 to 34"
    assert reason_for("ean.") == "ean has 0 digits, needs 12 to 34"
    assert str(parse_entity_address("ean." + "1" * 34)) == "ean." + "1" * 34


def test_ean_digits_only() -> None:
    assert reason_for("ean.8716859000126365x3") == (
        "ean part has 'x' (U+0078) at position 16; only digits 0-9 are allowed"
    )


def test_empty_and_non_string_are_refused() -> None:
    assert reason_for("") == "address is empty"
    assert reason_for(None) == "expected a string, got NoneType"


def test_refusal_names_the_callers_field() -> None:
    assert reason_for("ea1.2013-13.x:y", "connection") == "month 13 is outside 01-12"


def test_build_ea1_reverses_the_forward_domain() -> None:
    address = build_ea1("company.flexmeasures.io", "30:73", year=2021, month=2)
    assert address.reversed_domain == "io.flexmeasures.company"
    assert str(address) == "ea1.2021-02.io.flexmeasures.company:30:73"
    assert address.domain == "company.flexmeasures.io"


def test_build_ea1_lowercases_and_zero_pads() -> None:
    assert str(build_ea1("Usef.INFO", "x", year=995, month=1)) == "ea1.0995-01.info.usef:x"


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        (
            {"domain": "a..b"},
            "domain",
            "domain has an empty label (two dots in a row, or a dot at either end)",
        ),
        ({"domain": ""}, "domain", "domain is empty"),
        ({"local_part": ""}, "local_part", "local part is empty"),
        ({"month": 13}, "month", "month 13 is outside 01-12"),
        ({"year": 10000}, "year", "year 10000 is not 4 digits (0000-9999)"),
        ({"local_part": "x" * 250}, "entity_address", "address is 272 characters, at most 255"),
    ],
)
def test_build_ea1_refusals(kwargs: dict[str, object], field: str, reason: str) -> None:
    args: dict[str, object] = {
        "domain": "usef.info",
        "local_part": "x",
        "year": 2020,
        "month": 1,
        **kwargs,
    }
    with pytest.raises(ValidationError) as info:
        build_ea1(args.pop("domain"), args.pop("local_part"), **args)  # type: ignore[arg-type]
    assert (info.value.field, info.value.reason) == (field, reason)


def test_dataclasses_are_frozen_and_validated() -> None:
    address = EA1Address(2020, 1, "info.usef", "x")
    with pytest.raises(AttributeError):
        address.month = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        EA1Address(2020, 1, "info.usef", "a b")
    with pytest.raises(ValidationError):
        EANAddress("1234")


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_DOMAIN = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_LOCAL = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60
)


@given(domain=_DOMAIN, local=_LOCAL, year=st.integers(0, 9999), month=st.integers(1, 12))
def test_parse_of_built_address_round_trips(domain: str, local: str, year: int, month: int) -> None:
    address = build_ea1(domain, local, year=year, month=month)
    assert address.domain == domain
    assert parse_entity_address(str(address)) == address


@given(digits=st.text(alphabet="0123456789", min_size=12, max_size=34))
def test_ean_round_trips(digits: str) -> None:
    text = "ean." + digits
    assert str(parse_entity_address(text)) == text
