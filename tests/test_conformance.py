"""Issue 6: the conformance suite, run by its runner against a real `flexbridge serve` process
on a free port with a fresh, provisioned SQLite database - and against a deliberately wrong
server, to show that it fails with a readable difference when the server is wrong.

The runner is called in-process through its command line (`conformance.cli.main`), which is
what `flexbridge conformance` runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from conformance import cli
from conformance.provision import Running, free_port, running_flexbridge
from conformance.vectors import PROTOCOLS, ROOT, load
from protocols.uftp.v3_1.sealing import SigningKey

ALL = load(PROTOCOLS)
COUNTS = {p: sum(len(f.vectors) for f in ALL if f.protocol == p) for p in PROTOCOLS}
# The protocols the deliberately wrong server is tried with (its cheerful 200 to every UFTP
# message would make each vector wait out its reply's time bound).
JSON_PROTOCOLS = ("cpapi", "ocmp", "oscp")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["conformance", *args])
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def flexbridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_flexbridge(tmp_path_factory.mktemp("flexbridge")) as server:
        yield server


def _diff_lines(text: str, removed: str, added: str) -> bool:
    """A unified diff in `text` (indented as printed) that removes `removed` and adds `added`
    on the next line."""
    lines = [line.strip() for line in text.splitlines()]
    return any(
        a == f"-{removed}".strip() and b == f"+{added}".strip()
        for a, b in itertools.pairwise(lines)
    )


def _junit(folder: Path) -> ET.Element:
    return ET.parse(folder / "conformance-junit.xml").getroot()


# ---------------------------------------------------------------------------------------------
# flexbridge passes the whole suite


def test_flexbridge_passes_every_vector(flexbridge: Running, tmp_path: Path, capsys) -> None:
    """Done when: "the suite passes against flexbridge in CI"."""
    report = tmp_path / "report"
    code, out = _run(
        capsys,
        "--target",
        flexbridge.url,
        "--credentials",
        str(flexbridge.credentials),
        "--peer-port",
        str(flexbridge.peer_port),
        "--report",
        str(report),
    )
    root = _junit(report)
    failed = {
        case.get("name"): case.find("failure").get("message")  # type: ignore[union-attr]
        for case in root.iter("testcase")
        if case.find("failure") is not None
    }
    assert not failed, f"{out}\n--- server log ---\n{flexbridge.output()[-5000:]}"
    assert code == 0
    total = sum(COUNTS.values())
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == (str(total), "0", "0")
    suites = {s.get("name"): int(s.get("tests")) for s in root.iter("testsuite")}
    assert suites == {
        "cpapi v1": COUNTS["cpapi"],
        "ocmp 1.0": COUNTS["ocmp"],
        "oscp 2.0": COUNTS["oscp"],
        "uftp 3.1": COUNTS["uftp"],
        "usef v1_v2_0": COUNTS["usef"],
    }
    assert out.count(" PASS ") == total
    assert f"all                  {total:4d}       0        0   {total:4d}" in out
    markdown = (report / "conformance-report.md").read_text()
    assert f"({total} passed, 0 failed, 0 skipped of {total})" in markdown
    # OSCP's registration replaced the out-of-band token: the runner says by which.
    fresh = json.loads((report / "next-credentials.json").read_text())
    original = json.loads(flexbridge.credentials.read_text())
    assert fresh["oscp"]["token"] != original["oscp"]["token"]


# ---------------------------------------------------------------------------------------------
# ... and fails readably when a vector is broken on purpose


def _broken_vectors(folder: Path) -> Path:
    """A copy of the vectors with one expectation of one OCMP vector made wrong: the error
    must name the field `forecasted_blocks[0].capacity`, which flexbridge rightly names
    `forecasted_blocks[0].unit`."""
    copy = folder / "vectors"
    shutil.copytree(ROOT, copy)
    path = copy / "ocmp" / "1.0" / "40-capacity.json"
    data = json.loads(path.read_text())
    [vector] = [v for v in data["vectors"] if v["id"] == "ocmp-7-capacity-unit-fixed-at-amps"]
    vector["expect"]["body_subset"]["errors"][0]["path"] = "forecasted_blocks[0].capacity"
    path.write_text(json.dumps(data))
    return copy


def test_a_vector_broken_on_purpose_fails_with_a_readable_difference(
    flexbridge: Running, tmp_path: Path, capsys
) -> None:
    """Done when: the suite "fails with a readable difference when a vector is broken on
    purpose"."""
    report = tmp_path / "report"
    code, out = _run(
        capsys,
        "--target",
        flexbridge.url,
        "--credentials",
        str(flexbridge.credentials),
        "--protocol",
        "ocmp",
        "--vectors",
        str(_broken_vectors(tmp_path)),
        "--only",
        "ocmp-7-capacity-*",
        "--report",
        str(report),
    )
    assert code == 1
    assert "FAIL  ocmp-7-capacity-unit-fixed-at-amps" in out
    assert "PASS  ocmp-7-capacity-unknown-group-is-an-error" in out
    removed, added = (
        '      "path": "forecasted_blocks[0].capacity"',
        '      "path": "forecasted_blocks[0].unit"',
    )
    assert _diff_lines(out, removed, added), out
    assert (
        '$.errors[0].path: differs (expected "forecasted_blocks[0].capacity", '
        'got "forecasted_blocks[0].unit")' in out
    )
    assert "ocmp      1.0           1       1        0      2" in out
    markdown = (report / "conformance-report.md").read_text()
    assert "### ocmp-7-capacity-unit-fixed-at-amps" in markdown
    assert _diff_lines(markdown, removed, added)
    assert "Unit for capacity constraint is fixed at Amps." in markdown  # the spec sentence
    failure = _junit(report).find(".//testcase[@name='ocmp-7-capacity-unit-fixed-at-amps']/failure")
    assert failure is not None and _diff_lines(failure.text or "", removed, added)


# ---------------------------------------------------------------------------------------------
# UFTP: the runner signs as the AGR and judges flexbridge's signed replies


def _uftp_vectors(folder: Path, change: dict[str, Any]) -> Path:
    """A copy of the vectors with each UFTP vector named in `change` given a shorter reply
    bound (it will not arrive as expected; waiting 10 s for it proves nothing more) and the
    change applied to its first expected message's body."""
    copy = folder / "vectors"
    shutil.copytree(ROOT, copy)
    for path in (copy / "uftp" / "3.1").glob("*.json"):
        data = json.loads(path.read_text())
        for vector in data["vectors"]:
            if vector["id"] in change:
                message = vector["expect"]["messages"][0]
                message["within_s"] = 2
                change[vector["id"]](message["body_subset"])
        path.write_text(json.dumps(data))
    return copy


def _uftp_run(
    capsys: pytest.CaptureFixture[str],
    server: Running,
    credentials: Path,
    vectors: Path | None,
    *only: str,
) -> tuple[int, str]:
    args = ["--target", server.url, "--credentials", str(credentials), "--protocol", "uftp"]
    args += ["--peer-port", str(server.peer_port)]
    if vectors is not None:
        args += ["--vectors", str(vectors)]
    for pattern in only:
        args += ["--only", pattern]
    return _run(capsys, *args)


def test_a_uftp_vector_expecting_the_wrong_rejection_reason_fails_with_the_difference(
    flexbridge: Running, tmp_path: Path, capsys
) -> None:
    """A D-Prognosis of 95 ISPs is "Lacking ISPs"; a vector that expects "ISP conflict" must
    fail, showing the reason flexbridge's signed D-PrognosisResponse gave."""

    def wrong(body: dict[str, Any]) -> None:
        body["attributes"]["RejectionReason"] = "ISP conflict"

    vectors = _uftp_vectors(tmp_path, {"uftp-d-prognosis-lacking-isps": wrong})
    code, out = _uftp_run(
        capsys,
        flexbridge,
        flexbridge.credentials,
        vectors,
        "uftp-d-prognosis-lacking-isps",
        "uftp-d-prognosis-isp-conflict",
    )
    assert code == 1, out
    assert "FAIL  uftp-d-prognosis-lacking-isps" in out
    assert "PASS  uftp-d-prognosis-isp-conflict " in out
    assert (
        '$.attributes.RejectionReason: differs (expected "ISP conflict", got "Lacking ISPs")' in out
    )
    removed, added = (
        '    "RejectionReason": "ISP conflict"',
        '    "RejectionReason": "Lacking ISPs"',
    )
    assert _diff_lines(out, removed, added), out


def test_a_uftp_reply_that_the_dso_key_does_not_verify_fails(
    flexbridge: Running, tmp_path: Path, capsys
) -> None:
    """The runner checks each reply's signature with the DSO's public key from the
    credentials: with another key there, flexbridge's TestMessageResponse does not verify."""
    credentials = json.loads(flexbridge.credentials.read_text())
    credentials["uftp"]["dso_public_key"] = SigningKey.generate().public
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(credentials))
    vector = "uftp-transport-200-and-the-answer-as-a-signed-message"
    vectors = _uftp_vectors(tmp_path, {vector: lambda body: None})
    code, out = _uftp_run(capsys, flexbridge, path, vectors, vector)
    assert code == 1, out
    assert f"FAIL  {vector}" in out
    assert "$.verified: differs (expected true, got false)" in out


def test_uftp_vectors_are_skipped_without_the_agr_identity(
    flexbridge: Running, tmp_path: Path, capsys
) -> None:
    credentials = json.loads(flexbridge.credentials.read_text())
    del credentials["uftp"]
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(credentials))
    code, out = _uftp_run(capsys, flexbridge, path, None, "uftp-validation-*")
    validation = [v for f in ALL if f.name == "20-message-validation" for v in f.vectors]
    assert code == 0
    assert out.count(" SKIP ") == len(validation) > 0
    assert (
        "the credentials file lacks uftp.agr_domain, uftp.agr_secret_key, uftp.dso_domain, "
        "uftp.dso_public_key" in out
    )


# The rules issue 14 names, each with its vector and what flexbridge must answer: the HTTP
# status, or (after a 200) the RejectionReason of its signed response (None: Accepted).
UFTP_RULES: dict[str, tuple[int, str | None]] = {
    "uftp-transport-411-no-content-length": (411, None),
    "uftp-transport-400-content-type-not-xml": (400, None),
    "uftp-transport-400-envelope-not-well-formed": (400, None),
    "uftp-transport-419-unknown-sender": (419, None),
    "uftp-transport-401-bad-signature": (401, None),
    "uftp-validation-mismatch-sender-domain": (200, "Mismatch SenderDomain"),
    "uftp-validation-invalid-sender-role": (200, "Invalid SenderRole"),
    "uftp-validation-unknown-recipient-domain": (200, "Unknown RecipientDomain"),
    "uftp-validation-already-submitted": (200, "Already Submitted"),
    "uftp-validation-duplicate-identifier": (200, "Duplicate Identifier"),
    "uftp-validation-unsupported-version": (200, "Invalid Message"),
    "uftp-d-prognosis-isp-duration-rejected": (200, "ISP duration rejected"),
    "uftp-d-prognosis-time-zone-rejected": (200, "TimeZone rejected"),
    "uftp-d-prognosis-lacking-isps": (200, "Lacking ISPs"),
    "uftp-d-prognosis-96-isps-on-the-spring-forward-day-out-of-bounds": (200, "ISPs out of bounds"),
    "uftp-d-prognosis-96-isps-on-the-fall-back-day-lacking": (200, "Lacking ISPs"),
    "uftp-d-prognosis-isp-conflict-on-the-fall-back-day": (200, "ISP conflict"),
    "uftp-d-prognosis-period-out-of-bounds": (200, "Period out of bounds"),
    "uftp-d-prognosis-invalid-congestion-point-unknown": (200, "Invalid CongestionPoint"),
    "uftp-d-prognosis-subordinate-sequence-number": (200, "Subordinate sequence number"),
    "uftp-flex-offer-unknown-flex-request-reference": (
        200,
        "Unknown FlexRequestMessageID reference",
    ),
    "uftp-flex-offer-reference-message-expired-when-the-request-is-superseded": (
        200,
        "Reference message expired",
    ),
    "uftp-d-prognosis-accepted": (200, None),
    "uftp-validation-test-message-answered-without-result": (200, None),
    "uftp-flex-offer-unsolicited-accepted": (200, None),
    "uftp-flex-offer-accepted-and-ordered": (200, None),
    "uftp-flex-offer-revocation-accepted": (200, None),
    "uftp-metering-accepted": (200, None),
}


def test_each_uftp_rule_of_the_issue_has_its_vector() -> None:
    uftp = {v["id"]: v for f in ALL if f.protocol == "uftp" for v in f.vectors}
    for name, (status, reason) in UFTP_RULES.items():
        expect = uftp[name]["expect"]
        assert expect["status"] == status, name
        if status != 200:
            assert "messages" not in expect, name
            continue
        attributes = expect["messages"][0]["body_subset"]["attributes"]
        got = attributes.get("RejectionReason")
        if reason is None:
            assert got in ({"$absent": True}, None), name
        elif isinstance(got, dict):
            assert got == {"$regex": f"^{reason}"}, name
        else:
            assert got == reason, name


# ---------------------------------------------------------------------------------------------
# ... and against a server that is wrong everywhere

SELECTION_VALUES = [
    {"Id": 0, "Name": "All", "SelectionValueType": "AssetType", "IsPersistable": True},
    {"Id": 1, "Name": "Resource", "SelectionValueType": "AssetType", "IsPersistable": True},
    {"Id": 2, "Name": "Area", "SelectionValueType": "AssetType", "IsPersistable": True},
]


async def _wrong(request: web.Request) -> web.Response:
    """200 and a cheerful body for everything; the selection values of 4.2.3 with one value
    wrong ("All" is persistable)."""
    await request.read()
    if request.path.endswith("/GetAssetSelectionValueList"):
        return web.json_response(SELECTION_VALUES)
    return web.json_response({"Success": True, "message": "fine", "errors": []})


class WrongServer:
    """The wrong server, in a thread of its own (the runner runs its own event loop)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", _wrong)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def __enter__(self) -> WrongServer:
        self._thread.start()
        assert self._ready.wait(10), "the wrong server did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


FAKE_CREDENTIALS = {
    "cpapi": {"username": "u", "password": "p", "tenant_key": "k"},
    "cpapi_other": {"username": "u2", "password": "p2", "tenant_key": "k2"},
    "ocmp": {"username": "u", "password": "p", "tenant_key": "k"},
    "oscp": {"token": "t"},
    "eventhub": {"gateway_id": "gw", "sas_token": "SharedAccessSignature sr=x&sig=y&se=1&skn=gw"},
}


def test_a_wrong_server_fails_and_each_failure_shows_the_difference(tmp_path: Path, capsys) -> None:
    """Done when: proven "with a test that runs the runner against a deliberately wrong
    server"."""
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps(FAKE_CREDENTIALS))
    report = tmp_path / "report"
    with WrongServer() as wrong:
        code, out = _run(
            capsys,
            "--target",
            wrong.url,
            "--credentials",
            str(credentials),
            "--protocol",
            ",".join(JSON_PROTOCOLS),
            "--report",
            str(report),
        )
    assert code == 1
    root = _junit(report)
    failed, skipped = int(root.get("failures")), int(root.get("skipped"))
    total = sum(COUNTS[p] for p in JSON_PROTOCOLS)
    # Without cpapi_outbound in the credentials the section 6 vectors are skipped, saying why.
    outbound = sum(
        len(f.vectors) for f in ALL if f.protocol == "cpapi" and f.name.startswith("90-")
    )
    assert skipped == outbound == out.count(" SKIP ")
    assert "the credentials file lacks cpapi_outbound.path" in out
    # Everything else fails, but the one thing the wrong server gets right: JSON selection
    # values (only the values are wrong, which cpapi-4.2.3-example-call catches).
    passed = [line.split()[-3] for line in out.splitlines() if " PASS " in line]
    assert passed == ["cpapi-3.3.2-content-type-is-json"]
    assert failed == out.count(" FAIL ") == total - skipped - 1
    # Every OCMP and OSCP vector fails: they answer 204, 4xx or 501, never 200.
    assert f"ocmp      1.0           0      {COUNTS['ocmp']}        0" in out
    assert f"oscp      2.0           0      {COUNTS['oscp']}        0" in out
    # A status difference, with the body that came ...
    assert "FAILED ocmp-7-handshake-cpo-to-cmo-and-back" in out
    assert "request: status: expected 204, got 200" in out
    # ... and a body difference, as a unified diff of the part that differs.
    assert "FAILED cpapi-4.2.3-example-call" in out
    assert "$[0].IsPersistable: differs (expected false, got true)" in out
    assert _diff_lines(out, '    "IsPersistable": false', '    "IsPersistable": true'), out
    markdown = (report / "conformance-report.md").read_text()
    assert "**FAILED**" in markdown and "### cpapi-4.2.3-example-call" in markdown


# ---------------------------------------------------------------------------------------------
# The vectors and the command line


def test_every_vector_names_its_spec_section_and_quotes_a_sentence() -> None:
    """Issue 6: each vector "named after its spec section, with the spec sentence in it"."""
    assert COUNTS["cpapi"] >= 100 and COUNTS["ocmp"] >= 30 and COUNTS["oscp"] >= 80
    assert COUNTS["uftp"] >= 30
    for vector_file in ALL:
        for vector in vector_file.vectors:
            assert vector["id"].startswith(vector_file.protocol + "-"), vector["id"]
            assert vector["spec"].strip() and len(vector["sentence"]) >= 10, vector["id"]


def test_the_oscp_notes_negative_vectors_are_all_there() -> None:
    """The negative vectors the OSCP notes name: 401 no Authorization, 403 unknown token, 400
    missing X-Request-ID, 501 no common version, lower-case enums refused."""
    oscp = {v["id"]: v for f in ALL if f.protocol == "oscp" for v in f.vectors}
    for name, status in [
        ("oscp-transport-401-no-authorization", 401),
        ("oscp-transport-403-unknown-token", 403),
        ("oscp-transport-400-missing-x-request-id", 400),
        ("oscp-register-501-no-common-version", 501),
        ("oscp-forecast-lower-case-type-refused", 400),
        ("oscp-forecast-lower-case-unit-refused", 400),
        ("oscp-handshake-measurement-configuration-upper-case", 400),
    ]:
        assert oscp[name]["expect"]["status"] == status


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "ftp://x"], "is not an http(s) URL"),
        (["--target", "http://127.0.0.1:9", "--protocol", "s2"], "--protocol: s2"),
        (["--target", "http://127.0.0.1:9", "--credentials", "/nonexistent.json"], "cannot read"),
        (["--target", f"http://127.0.0.1:{free_port()}"], "does not answer"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, capsys) -> None:
    assert cli.main(["conformance", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_malformed_vector_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "ocmp" / "1.0"
    folder.mkdir(parents=True)
    (folder / "10-bad.json").write_text(
        json.dumps(
            {
                "protocol": "ocmp",
                "version": "1.0",
                "section": "x",
                "source": "x",
                "mount": "ocmp",
                "vectors": [{"id": "ocmp-x", "spec": "x", "sentence": "x", "request": {}}],
            }
        )
    )
    args = ["--target", "http://127.0.0.1:9", "--protocol", "ocmp", "--vectors", str(tmp_path)]
    code = cli.main(["conformance", *args, "--list"])
    assert code == 2
    assert "10-bad.json: vectors/0" in capsys.readouterr().err
