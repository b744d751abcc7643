"""flexbridge's UFTP 3.1 schemas (schemas/uftp/3.1/) against the fixtures in tests/data/uftp/,
and against the specification's reference XSDs where those can be found.

tests/data/uftp/valid/ holds messages valid by the specification, invalid/ messages that
break one rule each (the file's comment says which), tolerated/ the two shapes the
specification refuses and flexbridge accepts from shapeshifter-uftp 2.4.0. Each fixture is
checked against our schema for its direction: signed_message.xsd for the envelope,
dso_inbound.xsd for what a DSO receives, dso_outbound.xsd for what it sends (both for
TestMessage and TestMessageResponse). docs/protocols/uftp-3.1.md, "Schemas", has the layout.

The own-schema tests never skip. The comparison with the reference skips, with the reason,
when neither the specification's copy beside the repository nor an installed
shapeshifter_uftp package holds the reference XSDs.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from importlib.resources import as_file, files
from pathlib import Path
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import pytest
import xmlschema
from xmlschema import XMLResource
from xmlschema.validators import XMLSchemaBase

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "uftp"
PACKAGE = "schemas.uftp"
ENVELOPE, INBOUND, OUTBOUND = "signed_message.xsd", "dso_inbound.xsd", "dso_outbound.xsd"

# What a DSO receives and sends (wave-2 requirements B.3, the lists).
RECEIVED = frozenset(
    {
        "D-Prognosis",
        "FlexOffer",
        "FlexOfferRevocation",
        "FlexRequestResponse",
        "FlexOrderResponse",
        "FlexReservationUpdateResponse",
        "FlexSettlementResponse",
        "Metering",
        "TestMessage",
        "TestMessageResponse",
        "DSOPortfolioUpdateResponse",
        "DSOPortfolioQueryResponse",
    }
)
SENT = frozenset(
    {
        "FlexRequest",
        "FlexOrder",
        "FlexReservationUpdate",
        "FlexSettlement",
        "D-PrognosisResponse",
        "FlexOfferResponse",
        "FlexOfferRevocationResponse",
        "MeteringResponse",
        "TestMessage",
        "TestMessageResponse",
        "DSOPortfolioUpdate",
        "DSOPortfolioQuery",
    }
)
OUR_FILES = frozenset(
    {
        "common.xsd",
        "signed_message.xsd",
        "flex.xsd",
        "settlement.xsd",
        "metering.xsd",
        "portfolio.xsd",
        "test_message.xsd",
        "dso_inbound.xsd",
        "dso_outbound.xsd",
    }
)


# --- the reference XSDs --------------------------------------------------------------------


def _shapeshifter_package_dirs() -> Iterator[Path]:
    """Where a shapeshifter_uftp package is installed: importable here, or in the peers'
    virtual environment."""
    spec = importlib.util.find_spec("shapeshifter_uftp")
    if spec is not None and spec.submodule_search_locations:
        yield from (Path(p) for p in spec.submodule_search_locations)
    yield from sorted(REPO.glob(".venv-peers/lib/python*/site-packages/shapeshifter_uftp"))


def _reference_candidates() -> Iterator[Path]:
    yield REPO.parent / "shared" / "specs" / "uftp-3.1.0-xsd"
    # shapeshifter-uftp 2.4.0 ships no XSD (its messages are xsdata classes); a release
    # that ships the specification's files is used when installed.
    for package in _shapeshifter_package_dirs():
        yield from (found.parent for found in sorted(package.rglob("UFTP-dso.xsd")))


def reference_xsd_dir() -> Path | None:
    """The folder holding the reference UFTP-dso.xsd, or None when there is none."""
    return next((d for d in _reference_candidates() if (d / "UFTP-dso.xsd").is_file()), None)


# --- loading and reading -------------------------------------------------------------------


def _load(path: Path) -> XMLSchemaBase:
    return xmlschema.XMLSchema10(str(path), allow="sandbox")


def _ours(name: str) -> XMLSchemaBase:
    """Our schema as the codec loads it: package data of `schemas.uftp`."""
    with as_file(files(PACKAGE).joinpath("3.1").joinpath(name)) as path:
        return _load(Path(path).resolve())


@pytest.fixture(scope="session")
def ours() -> dict[str, XMLSchemaBase]:
    return {name: _ours(name) for name in (ENVELOPE, INBOUND, OUTBOUND)}


@pytest.fixture(scope="session")
def reference() -> XMLSchemaBase:
    folder = reference_xsd_dir()
    if folder is None:
        pytest.skip(
            "reference UFTP 3.1.0 XSDs not found: neither ../shared/specs/uftp-3.1.0-xsd beside "
            "the repository nor an installed shapeshifter_uftp package holds UFTP-dso.xsd"
        )
    return _load(folder / "UFTP-dso.xsd")


def document(path: Path) -> XMLResource:
    """A fixture read the safe way: no entities, DTDs or external references."""
    return XMLResource(path.read_bytes(), defuse="always", allow="none")


def text_document(text: str) -> XMLResource:
    return XMLResource(text.encode(), defuse="always", allow="none")


def root_of(resource: XMLResource) -> Element:
    root = resource.root
    assert isinstance(root, Element)
    return root


def local_name(resource: XMLResource) -> str:
    return root_of(resource).tag.rpartition("}")[2]


def schemas_for(kind: str) -> tuple[str, ...]:
    """Our schemas a message of this root element is checked against: its direction(s)."""
    if kind == "SignedMessage":
        return (ENVELOPE,)
    return tuple(name for name, kinds in ((INBOUND, RECEIVED), (OUTBOUND, SENT)) if kind in kinds)


def our_verdicts(ours: dict[str, XMLSchemaBase], path: Path) -> dict[str, bool]:
    kind = local_name(document(path))
    names = schemas_for(kind)
    assert names, f"{path.name}: {kind} is neither sent nor received by a DSO"
    return {name: ours[name].is_valid(document(path)) for name in names}


def fixtures(folder: str) -> list[Path]:
    return sorted((DATA / folder).glob("*.xml"))


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


VALID, INVALID, TOLERATED = fixtures("valid"), fixtures("invalid"), fixtures("tolerated")


# --- our schemas: which messages ---------------------------------------------------------


def test_a_dso_endpoint_receives_exactly_the_twelve_messages_a_dso_receives(ours):
    """Requirements B.3: "The DSO accepts: D-Prognosis, DSOPortfolioQueryResponse,
    DSOPortfolioUpdateResponse, FlexOffer, FlexOfferRevocation, FlexOrderResponse,
    FlexRequestResponse, FlexReservationUpdateResponse, FlexSettlementResponse, Metering,
    TestMessage, TestMessageResponse"."""
    assert set(ours[INBOUND].elements) == RECEIVED


def test_a_dso_sends_exactly_the_twelve_messages_a_dso_sends(ours):
    """Requirements B.3: DSO -> AGR FlexRequest, FlexOrder, FlexReservationUpdate,
    FlexSettlement and the responses to D-Prognosis, FlexOffer, FlexOfferRevocation and
    Metering; DSO -> CRO DSOPortfolioUpdate and DSOPortfolioQuery; TestMessage and
    TestMessageResponse "both ways"."""
    assert set(ours[OUTBOUND].elements) == SENT


def test_the_envelope_schema_declares_signed_message_alone(ours):
    """Requirements B.1: "Request: Body = <SignedMessage SenderDomain=".."
    SenderRole="AGR|CRO|DSO" Body="base64"/>, no namespace"."""
    assert set(ours[ENVELOPE].elements) == {"SignedMessage"}
    assert ours[ENVELOPE].target_namespace == ""


def test_no_schema_of_ours_has_a_namespace_or_an_extension_point():
    """Notes §0: "the schema has no namespace (no targetNamespace, no xs:any)"."""
    folder = files(PACKAGE).joinpath("3.1")
    names = {entry.name for entry in folder.iterdir() if entry.name.endswith(".xsd")}
    assert names == OUR_FILES
    for name in sorted(names):
        text = folder.joinpath(name).read_text(encoding="utf-8")
        assert "targetNamespace" not in text, name
        assert not re.search(r"<xs:any(Attribute)?\b", text), name


def test_a_message_a_dso_only_sends_is_not_valid_at_its_endpoint(ours):
    """Notes §2: "What the DSO receives: ... D-Prognosis, ..., TestMessageResponse": a
    FlexRequest, which only a DSO sends, has no element in the inbound schema, and a
    D-Prognosis none in the outbound one."""
    assert not ours[INBOUND].is_valid(document(DATA / "valid" / "FlexRequest.xml"))
    assert not ours[OUTBOUND].is_valid(document(DATA / "valid" / "D-Prognosis.xml"))


def test_every_message_type_has_a_valid_and_an_invalid_fixture():
    """Every message a DSO sends or receives, and the envelope, is tested both ways."""
    every = RECEIVED | SENT | {"SignedMessage"}
    assert {local_name(document(p)) for p in VALID} == every
    assert {local_name(document(p)) for p in INVALID} == every


# --- our schemas: the fixtures -----------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=ids(VALID))
def test_a_message_valid_by_the_specification_is_valid_against_our_schema(ours, path):
    """Requirements B.1: "Validate what a DSO receives against UFTP-dso.xsd": ours accepts
    every message the specification's schema accepts, in the direction it travels."""
    verdicts = our_verdicts(ours, path)
    assert all(verdicts.values()), verdicts


@pytest.mark.parametrize("path", INVALID, ids=ids(INVALID))
def test_a_message_breaking_a_schema_rule_is_invalid_against_our_schema(ours, path):
    """Requirements B.2: "Unsealed XML unparseable or not XSD-valid: 400": each fixture
    breaks the one rule its comment names."""
    verdicts = our_verdicts(ours, path)
    assert not any(verdicts.values()), verdicts


@pytest.mark.parametrize(
    ("name", "day", "isps"),
    [
        ("D-Prognosis", date(2025, 6, 2), 96),
        ("D-Prognosis-92-isps-spring-forward", date(2025, 3, 30), 92),
        ("D-Prognosis-100-isps-fall-back", date(2025, 10, 26), 100),
    ],
)
def test_a_d_prognosis_has_every_isp_of_its_day_including_the_92_and_100_isp_dst_days(
    ours, name, day, isps
):
    """Requirements B.6: "ISPs per day (PT15M, Europe/Amsterdam): 96 normally, 92 on
    spring-forward, 100 on fall-back", and notes §6.2: a D-Prognosis "must contain all ISPs
    of the Period"."""
    zone = ZoneInfo("Europe/Amsterdam")
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    next_midnight = datetime(following.year, following.month, following.day, tzinfo=zone)
    elapsed = next_midnight.astimezone(UTC) - midnight.astimezone(UTC)
    assert elapsed // timedelta(minutes=15) == isps

    resource = document(DATA / "valid" / f"{name}.xml")
    root = root_of(resource)
    assert root.attrib["Period"] == day.isoformat()
    assert [int(isp.attrib["Start"]) for isp in root.iter("ISP")] == list(range(1, isps + 1))
    assert ours[INBOUND].is_valid(document(DATA / "valid" / f"{name}.xml"))


def test_flex_settlement_requires_result_in_3x(ours):
    """Notes §11.4: "FlexSettlement in 3.0/3.1 requires Result (a leftover: it extends the
    response type) and >= 1 FlexOrderSettlement and >= 1 ContractSettlement"."""
    text = (DATA / "valid" / "FlexSettlement.xml").read_text()
    assert ours[OUTBOUND].is_valid(text_document(text))
    assert not ours[OUTBOUND].is_valid(text_document(text.replace(' Result="Accepted"', "")))


def test_dso_portfolio_update_response_names_its_reference_with_response_in_it(ours):
    """Notes §11.5: "The DSOPortfolioUpdateResponse reference attribute is named
    DSOPortfolioUpdateResponseMessageID (sic) in 3.x"."""
    text = (DATA / "valid" / "DSOPortfolioUpdateResponse.xml").read_text()
    assert ours[INBOUND].is_valid(text_document(text))
    plain = text.replace("DSOPortfolioUpdateResponseMessageID", "DSOPortfolioUpdateMessageID")
    assert not ours[INBOUND].is_valid(text_document(plain))


# --- our schemas: the two tolerances -----------------------------------------------------


def test_a_received_test_message_response_may_carry_result_but_ours_never_does(ours):
    """Requirements B.7.5: "Its TestMessage handler auto-replies with a TestMessageResponse
    that carries Result="Accepted". The 3.1 XSD forbids that attribute, so flexbridge must
    tolerate it." What flexbridge sends stays in the strict 3.1 form."""
    path = DATA / "tolerated" / "TestMessageResponse-with-Result.xml"
    assert root_of(document(path)).attrib["Result"] == "Accepted"
    assert ours[INBOUND].is_valid(document(path))
    assert not ours[OUTBOUND].is_valid(document(path))


@pytest.mark.parametrize(
    ("digits", "accepted"), [(15, False), (16, True), (17, False), (18, True), (19, False)]
)
def test_a_metering_ean_has_16_or_18_digits(ours, digits, accepted):
    """Requirements B.7.6: "Metering EAN pattern is [Ee][0-9]{18} (2.3.2+) vs {16} in the
    shipped XSD. Accept both"."""
    text = (DATA / "valid" / "Metering.xml").read_text()
    ean = "E" + "8716859000126365438"[:digits]
    changed = re.sub(r'EAN="[^"]*"', f'EAN="{ean}"', text)
    assert f'EAN="{ean}"' in changed
    assert ours[INBOUND].is_valid(text_document(changed)) is accepted


def test_each_tolerance_is_marked_where_it_is_in_our_schemas():
    """The two tolerances for shapeshifter-uftp 2.4.0 are documented in the XSD itself, at
    the type that carries each."""
    folder = files(PACKAGE).joinpath("3.1")
    tests = folder.joinpath("test_message.xsd").read_text(encoding="utf-8")
    metering = folder.joinpath("metering.xsd").read_text(encoding="utf-8")
    tolerance = r"TOLERANCE \(shapeshifter-uftp 2\.4\.0\)"
    assert re.search(tolerance + r".*Result", tests, re.S)
    assert re.search(tolerance + r".*\[Ee\]\[0-9\]\{18\}", metering, re.S)


def test_the_schemas_ship_as_package_data():
    """DESIGN §1: schemas/<proto>/<version>/ "holds the wire truth as data files ...
    Package data"."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "**/*.xsd" in project["tool"]["setuptools"]["package-data"]["schemas"]
    assert (REPO / "schemas" / "uftp" / "__init__.py").is_file()


def test_the_reference_finder_looks_beside_the_repository_then_in_a_shapeshifter_package(
    tmp_path, monkeypatch
):
    """Issue 14, Schemas: the reference XSDs are at ../shared/specs/uftp-3.1.0-xsd; where that
    folder is absent, XSD files shipped inside the shapeshifter-uftp package are used."""
    repo = tmp_path / "repo"
    monkeypatch.setattr(sys.modules[__name__], "REPO", repo)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert reference_xsd_dir() is None

    shipped = repo / ".venv-peers/lib/python3.11/site-packages/shapeshifter_uftp/xsd"
    shipped.mkdir(parents=True)
    (shipped / "UFTP-dso.xsd").write_text("<xs:schema/>")
    assert reference_xsd_dir() == shipped

    beside = tmp_path / "shared" / "specs" / "uftp-3.1.0-xsd"
    beside.mkdir(parents=True)
    (beside / "UFTP-dso.xsd").write_text("<xs:schema/>")
    assert reference_xsd_dir() == beside


# --- against the reference XSDs ----------------------------------------------------------


def test_the_reference_declares_every_message_of_ours(reference):
    """Requirements B.1: the reference UFTP-dso.xsd is "common + agr-dso + cro-dso +
    metering": every message we validate has its element there."""
    assert RECEIVED | SENT | {"SignedMessage"} <= set(reference.elements)


@pytest.mark.parametrize("path", VALID, ids=ids(VALID))
def test_a_message_valid_against_the_reference_is_valid_against_ours(reference, ours, path):
    """Issue 14, Schemas: "Reference-valid fixtures validate against ours"."""
    assert reference.is_valid(document(path)), "the fixture is not valid by the reference"
    verdicts = our_verdicts(ours, path)
    assert all(verdicts.values()), verdicts


@pytest.mark.parametrize("path", INVALID, ids=ids(INVALID))
def test_a_message_invalid_against_the_reference_is_invalid_against_ours(reference, ours, path):
    """Ours is no looser than the reference outside the two documented tolerances."""
    assert not reference.is_valid(document(path)), "the fixture is valid by the reference"
    verdicts = our_verdicts(ours, path)
    assert not any(verdicts.values()), verdicts


@pytest.mark.parametrize("path", TOLERATED, ids=ids(TOLERATED))
def test_each_tolerance_is_refused_by_the_reference_and_accepted_by_ours(reference, ours, path):
    """Issue 14, Schemas: "Two documented tolerances for the real peer:
    TestMessageResponse@Result, Metering EAN of 16 or 18 digits"."""
    assert not reference.is_valid(document(path))
    assert ours[INBOUND].is_valid(document(path))
