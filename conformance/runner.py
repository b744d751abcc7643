"""Running vectors against a server over HTTP, and judging what comes back.

The runner knows the protocols only through the vectors and the credentials file: it sends
each step's request to `<target><mount><path>`, checks the answer (status, headers, body
subset, JSON Schema), then waits for the messages the server must send to the runner's own
peer endpoint (`conformance.peer`), each within its time bound. The first step that fails
ends its vector; every failure is described with the difference between what was expected
and what came.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from conformance import uftp
from conformance.match import MISSING, pretty, subset, unified_diff
from conformance.peer import PeerEndpoint, Received
from conformance.template import PLACEHOLDER, Clock, Scope, TemplateError, render
from conformance.vectors import VectorFile

DEFAULT_MOUNTS = {
    "cpapi": "/api",
    "eventhub": "/iotexternaleh",
    "ocmp": "/ocmp/1.0",
    "oscp.co": "/oscp/co/2.0",
    "oscp.cp": "/oscp/cp/2.0",
    "uftp": "/shapeshifter/api/v3",
    "usef": "/api",
}
DEFAULT_AUTH = {
    "cpapi": "cpapi",
    "eventhub": "eventhub",
    "ocmp": "ocmp",
    "oscp.co": "oscp",
    "oscp.cp": "oscp",
    "uftp": "uftp",
    "usef": "usef",
}
# What each authentication profile needs from the credentials file.
AUTH_NEEDS = {
    "cpapi": ("cpapi.username", "cpapi.password", "cpapi.tenant_key"),
    "cpapi_other": ("cpapi_other.username", "cpapi_other.password", "cpapi_other.tenant_key"),
    "ocmp": ("ocmp.username", "ocmp.password", "ocmp.tenant_key"),
    "oscp": ("oscp.token",),
    "eventhub": ("eventhub.sas_token",),
    "uftp": uftp.NEEDS,  # no login: the message's signature is its authentication
    # A token the runner asks requestAuthToken for once, sent alone in Authorization.
    "usef": ("usef.email", "usef.password"),
    "none": (),
}
PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"


class Failure(Exception):
    """A step whose answer or messages are not what the vector expects."""

    def __init__(self, summary: str, details: str = "") -> None:
        super().__init__(summary)
        self.summary = summary
        self.details = details


@dataclass
class Result:
    vector_id: str
    protocol: str
    version: str
    file: str
    spec: str
    sentence: str
    outcome: str = PASSED
    summary: str = ""
    details: str = ""
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.outcome in (FAILED, ERROR)


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    raw: bytes
    body: Any = MISSING
    json_error: str | None = None


def credential(credentials: Mapping[str, Any], path: str) -> Any:
    value: Any = credentials
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value or value[part] in (None, ""):
            return None
        value = value[part]
    return value


def _status_ok(expected: Any, got: int) -> bool:
    if isinstance(expected, int):
        return got == expected
    if isinstance(expected, list):
        return got in expected
    return str(got)[0] == str(expected)[0]


def _dig(source: Any, path: str) -> Any:
    """`body.a.b[0]` / `headers.X-Name` in an answer or a received message."""
    head, _, rest = path.partition(".")
    if head == "headers":
        headers = {k.lower(): v for k, v in source.headers.items()}
        return headers.get(rest.lower(), MISSING)
    value = source.body
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", rest) if rest else []:
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(value, list) or index >= len(value):
                return MISSING
            value = value[index]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 date-time (jsonschema checks it only with an optional package installed)."""
    if not isinstance(value, str):
        return True
    match = _RFC3339.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    day, clock, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]
    zone = "+00:00" if zone in ("Z", "z") else zone
    datetime.fromisoformat(f"{day}T{clock}{fraction}{zone}")
    return True


def _schema_problems(schema: dict, body: Any) -> list[str]:
    try:
        validator = Draft202012Validator(schema, format_checker=FORMATS)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    except SchemaError as exc:
        return [f"schema in the vector is not a valid JSON Schema: {exc.message}"]
    problems = []
    for error in errors[:10]:
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        problems.append(f"schema: {where}: {error.message}")
    if len(errors) > 10:
        problems.append(f"schema: ... and {len(errors) - 10} more")
    return problems


def _header_problems(expected: Mapping[str, Any], got: Mapping[str, str]) -> list[str]:
    lowered = {k.lower(): v for k, v in got.items()}
    problems = []
    for name, want in expected.items():
        have = lowered.get(name.lower(), MISSING)
        if want is None:
            if have is not MISSING:
                problems.append(f"header {name}: expected absent, got {have!r}")
            continue
        for mismatch in subset(want, have, f"header {name}"):
            problems.append(str(mismatch))
    return problems


def _body_text(raw: bytes, limit: int = 1500) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "... (cut)"


def check_body(expect: Mapping[str, Any], source: Any, keys: str, label: str) -> tuple[list, str]:
    """Problems of a body (an Answer or a Received) against `expect`, and a diff to show."""
    problems: list[str] = []
    diffs: list[str] = []
    if expect.get("body_empty") and source.raw.strip():
        problems.append(f"{label}: expected no body, got {_body_text(source.raw, 300)!r}")
    wants_json = "body_subset" in expect or "body_schema" in expect
    if wants_json and (source.body is MISSING or source.body is None) and source.raw.strip():
        problems.append(
            f"{label}: expected JSON, got {_body_text(source.raw, 300)!r} ({source.json_error})"
        )
        return problems, ""
    if wants_json and not source.raw.strip():
        problems.append(f"{label}: expected a JSON body, got none")
        return problems, ""
    if "body_subset" in expect:
        mismatches = subset(expect["body_subset"], source.body, keys=keys)
        if mismatches:
            problems.extend(f"{label} {m}" for m in mismatches[:20])
            if len(mismatches) > 20:
                problems.append(f"... and {len(mismatches) - 20} more differences")
            diffs.append(unified_diff(expect["body_subset"], source.body, keys, label))
    if "body_schema" in expect:
        problems.extend(
            f"{label} {p}" for p in _schema_problems(expect["body_schema"], source.body)
        )
    return problems, "\n".join(diffs)


class Runner:
    """Runs vector files against `target`, one vector after the other."""

    def __init__(
        self,
        target: str,
        credentials: Mapping[str, Any],
        peer: PeerEndpoint,
        *,
        timeout: float = 15.0,
        progress: Callable[[str], None] | None = None,
        only: Sequence[str] = (),
    ) -> None:
        self.target = target.rstrip("/")
        self.credentials = credentials
        self.peer = peer
        self.timeout = timeout
        self.progress = progress or (lambda line: None)
        self.only = list(only)
        self.clock = Clock()
        self.run_id = secrets.token_hex(4)
        self.mounts = {**DEFAULT_MOUNTS, **(credentials.get("mounts") or {})}
        self.variables: dict[str, Any] = {
            "run_id": self.run_id,
            "peer_url": peer.url,
            "peer_username": f"cf-peer-{self.run_id}",
            "peer_password": secrets.token_urlsafe(12),
            "token_b": f"cf-token-B-{self.run_id}",
        }
        if credential(credentials, "oscp.token"):
            self.variables["oscp_token"] = credentials["oscp"]["token"]
        self._usef_token: str | None = None
        self.agr = self._uftp_agr()
        self._counter = 0
        self._session: aiohttp.ClientSession | None = None

    def _uftp_agr(self) -> uftp.Agr | None:
        """The AGR this runner is to a UFTP DSO, when the credentials say who (else the UFTP
        vectors are skipped for want of them); its replies are read off the peer endpoint."""
        if any(credential(self.credentials, need) is None for need in uftp.NEEDS):
            return None
        agr = uftp.Agr.from_section(self.credentials["uftp"])
        self.peer.readers[uftp.RECEIVER_PATH] = lambda raw: uftp.read_signed(raw, agr.dso_key)
        self.peer.statuses[uftp.RECEIVER_PATH] = 200  # what a UFTP receiver answers
        self.variables.update(uftp.calendar(agr.time_zone, self.clock.started))
        # Per run, so that a second run's overload differs and the DSO asks again, and its
        # revisions are higher than any earlier run's or `simulate agr`'s (both count from
        # their start in milliseconds).
        self.variables["uftp_overload_w"] = 1000 + secrets.randbelow(9000)
        self.variables["uftp_revision"] = int(self.clock.started.timestamp() * 1000)
        return agr

    # ------------------------------------------------------------------ selection

    def selected(self, vector: Mapping[str, Any]) -> bool:
        return not self.only or any(fnmatchcase(vector["id"], p) for p in self.only)

    def missing_credentials(self, vector: Mapping[str, Any], default_mount: str) -> list[str]:
        needs: list[str] = list(vector.get("requires", []))
        for step in [*vector.get("setup", []), vector, *vector.get("after", [])]:
            request = step["request"]
            mount = request.get("mount", default_mount)
            needs.extend(AUTH_NEEDS[request.get("auth", DEFAULT_AUTH[mount])])
        text = json.dumps(vector)
        needs.extend(
            m.group(1).strip()[5:]
            for m in PLACEHOLDER.finditer(text)
            if m.group(1).strip().startswith("cred.")
        )
        return sorted({n for n in needs if credential(self.credentials, n) is None})

    # ------------------------------------------------------------------ running

    async def run(self, files: Sequence[VectorFile]) -> list[Result]:
        results: list[Result] = []
        chosen = [(f, v) for f in files for v in f.vectors if self.selected(v)]
        width = max((len(f.protocol) for f, _ in chosen), default=5)
        connector = aiohttp.TCPConnector(limit=4, force_close=False)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
        ) as self._session:
            for n, (vector_file, vector) in enumerate(chosen, 1):
                result = await self.run_vector(vector_file, vector)
                results.append(result)
                label = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP", ERROR: "ERROR"}
                tail = f" - {result.summary}" if result.outcome != PASSED else ""
                self.progress(
                    f"[{vector_file.protocol:<{width}} {n:>3}/{len(chosen)}] "
                    f"{label[result.outcome]:<5} {result.vector_id} ({result.seconds:.2f} s){tail}"
                )
        self._session = None
        return results

    async def run_vector(self, vector_file: VectorFile, vector: Mapping[str, Any]) -> Result:
        result = Result(
            vector["id"],
            vector_file.protocol,
            vector_file.version,
            vector_file.name,
            vector["spec"],
            vector["sentence"],
        )
        started = time.monotonic()
        missing = self.missing_credentials(vector, vector_file.mount)
        if missing:
            result.outcome = SKIPPED
            result.summary = f"the credentials file lacks {', '.join(missing)}"
            return result
        scope = Scope(self.clock, self.variables, self.credentials)
        steps = [
            *((f"setup[{n}]", s) for n, s in enumerate(vector.get("setup", []))),
            ("request", {"request": vector["request"], "expect": vector["expect"]}),
            *((f"after[{n}]", s) for n, s in enumerate(vector.get("after", []))),
        ]
        try:
            for name, value in (vector.get("let") or {}).items():
                scope.variables[name] = render(value, scope)
            for label, step in steps:
                await self.run_step(label, step, scope, vector_file, result)
        except Failure as failure:
            result.outcome = FAILED
            result.summary = failure.summary
            result.details = failure.details
        except TemplateError as exc:
            result.outcome = ERROR
            result.summary = f"the vector is broken: {exc}"
        result.seconds = time.monotonic() - started
        return result

    def _request_id(self) -> str:
        self._counter += 1
        return f"cf-{self.run_id}-{self._counter}"

    def _auth_headers(self, profile: str, scope: Scope) -> dict[str, str]:
        creds = self.credentials
        if profile in ("cpapi", "cpapi_other", "ocmp"):
            section = creds[profile]
            pair = f"{section['username']}:{section['password']}".encode()
            header = section.get("tenant_key_header") or "X-Tenant-Key"
            return {
                "Authorization": "Basic " + base64.b64encode(pair).decode(),
                header: section["tenant_key"],
            }
        if profile == "oscp":
            return {"Authorization": f"Token {scope.lookup('oscp_token')}"}
        if profile == "eventhub":
            return {"Authorization": creds["eventhub"]["sas_token"]}
        if profile == "usef" and self._usef_token is not None:
            return {"Authorization": self._usef_token}
        return {}

    async def _usef_login(self, label: str) -> str:
        """The token requestAuthToken gives the credentials' USEF account (once a run)."""
        assert self._session is not None
        section = self.credentials["usef"]
        url = f"{self.target}{self.mounts['usef']}/requestAuthToken"
        login = {"email": section["email"], "password": section["password"]}
        async with self._session.post(url, json=login) as answer:
            body = await answer.json(content_type=None)
        if answer.status != 200 or not isinstance(body, dict) or "auth_token" not in body:
            raise Failure(f"{label}: requestAuthToken answered {answer.status}", str(body)[:500])
        token: str = body["auth_token"]
        return token

    async def run_step(
        self,
        label: str,
        step: Mapping[str, Any],
        scope: Scope,
        vector_file: VectorFile,
        result: Result,
    ) -> None:
        request = step["request"]
        mount = request.get("mount", vector_file.mount)
        step_scope = scope.child(request_id=self._request_id())
        profile = request.get("auth", DEFAULT_AUTH[mount])
        if profile == "usef" and self._usef_token is None:
            self._usef_token = await self._usef_login(label)
        headers: dict[str, str | None] = {
            **self._auth_headers(profile, step_scope),
            "X-Request-ID": step_scope.variables["request_id"],
        }
        given = render(request.get("headers") or {}, step_scope)
        for name, value in given.items():
            for existing in [k for k in headers if k.lower() == name.lower()]:
                del headers[existing]
            headers[name] = value
        request_id = next(
            (v for k, v in headers.items() if k.lower() == "x-request-id" and v), None
        )
        if request_id is not None:
            step_scope.variables["request_id"] = request_id
        data: Any = None
        if "uftp" in request:
            data = self._uftp_body(request["uftp"], step_scope, headers)
        elif "body" in request:
            data = json.dumps(render(request["body"], step_scope)).encode()
        elif "raw" in request:
            raw = render(request["raw"], step_scope)
            data = ("\n".join(raw) + "\n" if isinstance(raw, list) else raw).encode()
        elif "raw_base64" in request:
            data = base64.b64decode(request["raw_base64"])
        if data is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        sent_headers = {k: v for k, v in headers.items() if v is not None}
        path = render(request["path"], step_scope)
        url = f"{self.target}{self.mounts[mount]}{path}"
        query = render(request.get("query") or {}, step_scope)
        method = request["method"]
        shown = f"{method} {self.mounts[mount]}{path}" + (
            "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
        )
        result.steps.append(f"{label}: {shown}")
        mark = self.peer.mark()
        answer = await self._send(method, url, query, sent_headers, data, label, shown)
        expect = render(step["expect"], step_scope)
        self._check_answer(expect, answer, vector_file.keys, label, shown)
        for name, where in (expect.get("capture") or {}).items():
            value = _dig(answer, where)
            if value is MISSING:
                raise Failure(f"{label}: nothing to capture at {where}", f"{label}: {shown}")
            self.variables[name] = scope.variables[name] = value
        for n, message in enumerate(expect.get("messages") or []):
            received = await self._await_message(
                message, mark, vector_file.keys, f"{label} message[{n}]"
            )
            for name, where in (message.get("capture") or {}).items():
                value = _dig(received, where)
                if value is MISSING:
                    raise Failure(f"{label} message[{n}]: nothing to capture at {where}")
                self.variables[name] = scope.variables[name] = value

    def _uftp_body(
        self, spec: Mapping[str, Any], scope: Scope, headers: dict[str, str | None]
    ) -> Any:
        """The signed UFTP message of a step; its MessageID and ConversationID become the
        step's `message_id` and `conversation_id` (for the reply it expects)."""
        assert self.agr is not None  # missing_credentials skipped the vector otherwise
        rendered = dict(render(spec, scope))
        attributes = dict(rendered.get("attributes") or {})
        attributes.setdefault("MessageID", str(uuid.uuid4()))
        attributes.setdefault("ConversationID", str(uuid.uuid4()))
        rendered["attributes"] = attributes
        scope.variables["message_id"] = attributes["MessageID"]
        scope.variables["conversation_id"] = attributes["ConversationID"]
        try:
            body = uftp.signed_body(rendered, self.agr)
        except uftp.UftpVectorError as exc:
            raise TemplateError(str(exc)) from None
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = uftp.CONTENT_TYPE
        return uftp.chunked(body) if rendered.get("transfer") == "chunked" else body

    async def _send(
        self,
        method: str,
        url: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        data: Any,
        label: str,
        shown: str,
    ) -> Answer:
        assert self._session is not None
        try:
            async with self._session.request(
                method, url, params=query or None, headers=headers, data=data
            ) as response:
                raw = await response.read()
                answer = Answer(response.status, dict(response.headers), raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Failure(
                f"{label}: no answer to {shown}: {type(exc).__name__}: {exc}",
                f"{label}: {shown}\n  the request failed: {type(exc).__name__}: {exc}",
            ) from None
        if raw.strip():
            try:
                answer.body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                answer.json_error = str(exc)
        return answer

    def _check_answer(
        self, expect: Mapping[str, Any], answer: Answer, keys: str, label: str, shown: str
    ) -> None:
        problems: list[str] = []
        diff = ""
        if not _status_ok(expect["status"], answer.status):
            problems.append(f"status: expected {expect['status']}, got {answer.status}")
        else:
            problems.extend(_header_problems(expect.get("headers") or {}, answer.headers))
            body_problems, diff = check_body(expect, answer, keys, "body")
            problems.extend(body_problems)
        if not problems:
            return
        lines = [f"{label}: {shown}", *(f"  {p}" for p in problems)]
        if answer.raw.strip():
            got = pretty(answer.body) if answer.body is not MISSING else _body_text(answer.raw)
            lines.append("  body received:")
            lines.extend("    " + line for line in got.splitlines())
        if diff:
            lines.append("  difference:")
            lines.extend("    " + line for line in diff.splitlines())
        raise Failure(f"{label}: {problems[0]}", "\n".join(lines))

    async def _await_message(
        self, expect: Mapping[str, Any], mark: int, keys: str, label: str
    ) -> Received:
        method = expect.get("method", "POST")
        path = expect["path"]
        within = float(expect["within_s"])

        def problems_of(message: Received) -> tuple[list[str], str]:
            found = _header_problems(expect.get("headers") or {}, message.headers)
            body, diff = check_body(expect, message, keys, "body")
            return found + body, diff

        def accept(message: Received) -> bool:
            if message.method != method or message.path.rstrip("/") != path.rstrip("/"):
                return False
            return not problems_of(message)[0]

        deadline = time.monotonic() + within
        found = await self.peer.wait_for(accept, mark, deadline)
        if found is not None:
            return found
        wanted = f"{method} {path}"
        arrived = [m for m in self.peer.since(mark) if not m.used]
        same = [m for m in arrived if m.method == method and m.path.rstrip("/") == path.rstrip("/")]
        if not same:
            seen = ", ".join(m.describe() for m in arrived) or "none"
            raise Failure(
                f"{label}: no {wanted} reached the peer endpoint within {within:g} s",
                f"{label}: expected {wanted} at {self.peer.url} within {within:g} s\n"
                f"  messages received meanwhile: {seen}",
            )
        closest = min(same, key=lambda m: len(problems_of(m)[0]))
        problems, diff = problems_of(closest)
        lines = [
            f"{label}: {len(same)} message(s) {wanted} arrived within {within:g} s, none as"
            f" expected; the closest, {closest.describe()}:",
            *(f"  {p}" for p in problems),
        ]
        if diff:
            lines.append("  difference:")
            lines.extend("    " + line for line in diff.splitlines())
        raise Failure(f"{label}: {wanted} arrived but {problems[0]}", "\n".join(lines))
