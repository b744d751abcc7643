"""What the shapeshifter-uftp harness processes share (uftp_agr.py, uftp_dso_standin.py,
uftp_cro.py).

Runs ONLY under the peers venv (.venv-peers, with tests/peers/requirements-uftp.txt). Each
process runs one of the library's own services (ShapeshifterAgrService, ShapeshifterDsoService
or ShapeshifterCroService, subclassed only to record) for one peer of the other role (a
CRO's is a DSO), and adds test-only routes beside the library's message route:

    GET  /_received[?type=T]   every message the service handed to a process_* callback:
                               {"seq", "type", "attributes", "children"} (wire names; children
                               are {"type", "attributes", "children"} too)
    GET  /_requests            every HTTP request to the message path: headers, status, the
                               response body, the envelope's attributes and the inner XML
                               (signature stripped, not verified)
    GET  /_sent                every /_send/* with its outcome
    GET  /_peer, POST /_peer   the peer (domain, role, public_key, url); POST changes any of
                               {"domain", "public_key", "url"}
    POST /_send/<Type>[?any=1] build the library's message class <Type> (XML root name, e.g.
                               D-Prognosis, or class name, e.g. DPrognosis) from the JSON
                               {"attributes": {...}, "children": [...]}, and send it to the
                               peer with the library's client (send_<type>; ?any=1 allows the
                               client's generic _send_message for a type the role may not send)

/_send answers with the status the peer answered and {"status", "body", "error", "sent"}
("sent" is the message as sent, with the MessageID and ConversationID the client filled in);
502 when the peer could not be reached; 422 and {"error"} when the library would not build
or send the message. The library's client fills Version (from attributes["Version"], else
the service's), SenderDomain, RecipientDomain and, when absent, TimeStamp, MessageID and
ConversationID.

The library is imported and called, never copied: this file only wires it up and records.
Nothing here answers a business message; the library itself answers a TestMessage.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import logging
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from xml.etree import ElementTree

import requests
import shapeshifter_uftp
from nacl.bindings import crypto_sign_ed25519_sk_to_pk, crypto_sign_keypair
from shapeshifter_uftp import FlexMessage, PayloadMessage, PayloadMessageResponse, transport
from shapeshifter_uftp.exceptions import ClientTransportException
from shapeshifter_uftp.service.base_service import ShapeshifterService, snake_case
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from xsdata.exceptions import ParserError
from xsdata.formats.dataclass.context import XmlContext

log = logging.getLogger("uftp_harness")

MESSAGE_PATH = "/shapeshifter/api/v3/message"
SIGNATURE_BYTES = 64  # libsodium combined form: signature, then the signed bytes
PEER_ROLE = {"AGR": "DSO", "DSO": "AGR", "CRO": "DSO"}
START_TIMEOUT = 20.0  # seconds uvicorn may take to listen before the harness gives up


def _message_classes() -> dict[str, type[PayloadMessage]]:
    """The library's message classes, by XML root name (D-Prognosis) and class name."""
    context = XmlContext()
    bases = {PayloadMessage, PayloadMessageResponse, FlexMessage}
    classes: dict[str, type[PayloadMessage]] = {}
    for name in shapeshifter_uftp.__all__:
        cls = getattr(shapeshifter_uftp, name)
        if isinstance(cls, type) and issubclass(cls, PayloadMessage) and cls not in bases:
            classes[context.build(cls).qname] = cls
            classes[cls.__name__] = cls
    return classes


MESSAGE_CLASSES = _message_classes()


# ------------------------------------------------------------------ message <-> JSON


def element_to_json(element: ElementTree.Element) -> dict[str, Any]:
    return {
        "type": element.tag,
        "attributes": dict(element.attrib),
        "children": [element_to_json(child) for child in element],
    }


def describe(message: PayloadMessage) -> dict[str, Any]:
    """The message as the library renders it on the wire, as JSON (wire names, strings)."""
    return element_to_json(ElementTree.fromstring(transport.to_xml(message).encode()))


def _json_to_element(tag: str, description: dict[str, Any]) -> ElementTree.Element:
    attributes = description.get("attributes") or {}
    element = ElementTree.Element(tag, {k: str(v) for k, v in attributes.items()})
    for child in description.get("children") or []:
        element.append(_json_to_element(child["type"], child))
    return element


def build_message(type_name: str, description: dict[str, Any]) -> PayloadMessage:
    """The library's message object, parsed by the library from XML made of the description,
    so that the library's own types, defaults and checks apply."""
    cls = MESSAGE_CLASSES.get(type_name)
    if cls is None:
        raise ValueError(f"the library has no message type {type_name!r}")
    root = XmlContext().build(cls).qname
    xml = ElementTree.tostring(_json_to_element(root, description), encoding="utf-8")
    message = transport.from_xml(xml)
    if type(message) is not cls:
        raise ValueError(f"parsed as {type(message).__name__}, not {cls.__name__}")
    return message


def inner_xml(envelope_bytes: bytes) -> tuple[dict[str, str] | None, str | None]:
    """The envelope's attributes and the inner XML it carries (signature stripped, NOT
    verified): what a peer sent, for the test to read."""
    try:
        envelope = ElementTree.fromstring(envelope_bytes)
        sealed = base64.b64decode(envelope.attrib.get("Body", ""), validate=True)
    except (ElementTree.ParseError, binascii.Error, ValueError):
        return None, None
    attributes = {k: v for k, v in envelope.attrib.items() if k != "Body"}
    return attributes, sealed[SIGNATURE_BYTES:].decode("utf-8", errors="replace")


# ------------------------------------------------------------------ state


@dataclass
class Peer:
    """The one participant of the other role this process talks to."""

    domain: str
    role: str
    public_key: str | None  # raw base64 of the 32-byte Ed25519 public key
    url: str | None  # the full message URL

    def key_for(self, domain: str, role: str) -> str | None:
        # None for anyone else: the library then fails the request (HTTP 500, seen running)
        return self.public_key if (domain, str(role)) == (self.domain, self.role) else None

    def endpoint_for(self, domain: str, role: str) -> str | None:
        return self.url if (domain, str(role)) == (self.domain, self.role) else None


class Journal:
    """What happened, appended from the service's worker threads, read by the routes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[dict[str, Any]]] = {
            "received": [],
            "requests": [],
            "sent": [],
        }

    def add(self, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entries = self._entries[kind]
            entry = {"seq": len(entries) + 1, **entry}
            entries.append(entry)
        return entry

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries[kind])


def recording_service(base: type[ShapeshifterService]) -> type[ShapeshifterService]:
    """``base`` with every process_* callback recording the message into ``self.journal``.

    The library calls ``process_<snake type>(message)`` from its inbound worker threads once a
    message passed its checks. Only TestMessage keeps the library's behaviour after recording
    (it answers with a TestMessageResponse by itself).
    """

    def record(self: Any, message: PayloadMessage, *_sender_role: Any) -> None:
        self.journal.add("received", describe(message))

    def process_test_message(self: Any, message: PayloadMessage, sender_role: Any) -> None:
        record(self, message)
        base.process_test_message(self, message, sender_role)

    callbacks: dict[str, Any] = {name: record for name in base.__abstractmethods__}
    callbacks["process_test_message"] = process_test_message
    callbacks["process_test_message_response"] = record
    return type(f"Recording{base.__name__}", (base,), callbacks)


# ------------------------------------------------------------------ HTTP


class RequestRecorder:
    """ASGI middleware: records each request to the message path and what it was answered."""

    def __init__(self, app: ASGIApp, journal: Journal, path: str) -> None:
        self.app = app
        self.journal = journal
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        body: list[bytes] = []
        answer: dict[str, Any] = {"status": None, "body": []}

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
            return message

        async def send_and_keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_keep)
        except Exception:
            answer["status"] = answer["status"] or 500  # the server's error page, sent outside
            raise
        finally:
            self._record(scope, b"".join(body), answer)

    def _record(self, scope: Scope, body: bytes, answer: dict[str, Any]) -> None:
        envelope, inner = inner_xml(body)
        self.journal.add(
            "requests",
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                "status": answer["status"],
                "response": b"".join(answer["body"]).decode("utf-8", errors="replace"),
                "envelope": envelope,
                "inner_xml": inner,
            },
        )


class ControlRoutes:
    """The test-only routes; they run on the service's own event loop."""

    def __init__(self, service: Any, peer: Peer) -> None:
        self.service = service
        self.peer = peer
        self.journal: Journal = service.journal

    def mount(self) -> None:
        app = self.service.app
        # Starlette routes, not FastAPI ones: the library made its router speak XML
        app.add_route("/_received", self.received, methods=["GET"])
        app.add_route("/_requests", self.listing("requests"), methods=["GET"])
        app.add_route("/_sent", self.listing("sent"), methods=["GET"])
        app.add_route("/_peer", self.peer_route, methods=["GET", "POST"])
        app.add_route("/_send/{message_type}", self.send, methods=["POST"])

    async def received(self, request: Request) -> JSONResponse:
        entries = self.journal.list("received")
        wanted = request.query_params.get("type")
        return JSONResponse([e for e in entries if wanted in (None, e["type"])])

    def listing(self, kind: str) -> Any:
        async def route(_request: Request) -> JSONResponse:
            return JSONResponse(self.journal.list(kind))

        return route

    async def peer_route(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            change = await request.json()
            for name in ("domain", "public_key", "url"):
                if name in change:
                    setattr(self.peer, name, change[name])
        return JSONResponse(asdict(self.peer))

    async def send(self, request: Request) -> JSONResponse:
        type_name = request.path_params["message_type"]
        try:
            description = await request.json() if await request.body() else {}
            message = build_message(type_name, description)
        except (ValueError, TypeError, KeyError, ParserError) as err:
            return JSONResponse({"error": f"{type(err).__name__}: {err}"}, status_code=422)
        version = (description.get("attributes") or {}).get("Version", self.service.version)
        any_type = request.query_params.get("any") == "1"
        # the library's client is blocking (requests): off the loop, so that a reply the peer
        # sends while we wait can still be received
        status, outcome = await asyncio.to_thread(self._send, message, version, any_type)
        self.journal.add("sent", {"type": type_name, **outcome})
        return JSONResponse(outcome, status_code=status)

    def _send(self, message: PayloadMessage, version: str, any_type: bool) -> tuple[int, dict]:
        outcome: dict[str, Any] = {"status": None, "body": None, "error": None, "sent": None}
        try:
            client = getattr(self.service, f"{self.peer.role.lower()}_client")(
                self.peer.domain, version
            )
            method = getattr(client, f"send_{snake_case(type(message).__name__)}", None)
            if method is None and any_type:
                method = client._send_message
            if method is None:
                raise TypeError(
                    f"{type(client).__name__} has no send_{snake_case(type(message).__name__)}"
                    " (?any=1 sends it anyway)"
                )
            method(message)
        except ClientTransportException as err:
            outcome.update(status=err.response.status_code, body=err.response.text)
            outcome["error"] = f"ClientTransportException: {err}"
        except requests.RequestException as err:
            outcome["error"] = f"{type(err).__name__}: {err}"
            return 502, {**outcome, "sent": describe(message)}
        except Exception as err:  # the library refused before sending: its text, verbatim
            return 422, {**outcome, "error": f"{type(err).__name__}: {err}"}
        else:
            outcome.update(status=200, body="")
        return outcome["status"], {**outcome, "sent": describe(message)}


# ------------------------------------------------------------------ process


def keypair(private_key: str | None) -> tuple[str, str]:
    """(private, public) as the library takes them: base64 of libsodium's 64-byte secret key
    (seed then public key) and of the raw 32-byte public key. Generated when not given."""
    if private_key is None:
        public, secret = crypto_sign_keypair()
        return base64.b64encode(secret).decode(), base64.b64encode(public).decode()
    secret = base64.b64decode(private_key, validate=True)
    if len(secret) != 64:
        raise SystemExit("--private-key must be base64 of a 64-byte libsodium secret key")
    return private_key, base64.b64encode(crypto_sign_ed25519_sk_to_pk(secret)).decode()


def parse_args(role: str, argv: list[str] | None, description: str) -> argparse.Namespace:
    peer = PEER_ROLE[role].lower()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--path", default=MESSAGE_PATH, help="the library's message route")
    parser.add_argument("--domain", default=f"{role.lower()}.example.com", help="our domain")
    parser.add_argument("--private-key", help="base64 64-byte secret key; default: generate")
    parser.add_argument("--version", default="3.1.0", choices=["3.0.0", "3.1.0"])
    parser.add_argument(f"--{peer}-domain", dest="peer_domain", default=f"{peer}.example.com")
    parser.add_argument(
        f"--{peer}-public-key", dest="peer_public_key", help="raw base64 32-byte public key"
    )
    parser.add_argument(f"--{peer}-url", dest="peer_url", help="the peer's full message URL")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def run(role: str, base: type[ShapeshifterService], argv: list[str] | None, doc: str) -> int:
    """Serve ``base`` (recording) until SIGTERM or SIGINT; print one ready line on stdout."""
    args = parse_args(role, argv, doc.split("\n\n")[0])
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    library_log = logging.getLogger("shapeshifter-uftp")  # has its own stderr handler
    library_log.setLevel(args.log_level.upper())
    library_log.propagate = False  # else every line twice
    # uvicorn's access log writes to sys.stdout: send everything but the ready line to stderr,
    # so that an unread stdout pipe can never fill up and block the server
    ready_out, sys.stdout = sys.stdout, sys.stderr
    private_key, public_key = keypair(args.private_key)
    peer = Peer(args.peer_domain, PEER_ROLE[role], args.peer_public_key, args.peer_url)
    service: Any = recording_service(base)(
        sender_domain=args.domain,
        signing_key=private_key,
        key_lookup_function=peer.key_for,
        endpoint_lookup_function=peer.endpoint_for,
        host=args.host,
        port=args.port,
        path=args.path,
        version=args.version,
    )
    service.journal = Journal()
    service.app.add_middleware(RequestRecorder, journal=service.journal, path=args.path)
    ControlRoutes(service, peer).mount()

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # service.run() in a thread of ours (not the library's run_in_thread, which would wait
    # forever if uvicorn cannot bind): uvicorn handles no signals outside the main thread
    server_thread = threading.Thread(target=service.run, name="uvicorn")
    server_thread.start()
    if not _wait_listening(service, server_thread):
        log.error("uvicorn did not start listening")
        service.stop()
        return 1
    port = service.server.servers[0].sockets[0].getsockname()[1]
    base_url = f"http://{args.host}:{port}"
    print(
        f"uftp {role} ready on {base_url} message_url={base_url}{args.path} "
        f"domain={args.domain} public_key={public_key} private_key={private_key}",
        file=ready_out,
        flush=True,
    )
    stopping.wait()
    log.info("stopping")
    service.stop()  # asks uvicorn to finish; joins only a thread the library started itself
    server_thread.join()
    service.inbound_executor.shutdown(cancel_futures=True)
    service.outbound_executor.shutdown(cancel_futures=True)
    log.info("stopped")
    return 0


def _wait_listening(service: Any, server_thread: threading.Thread) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while not service.server.started:
        if time.monotonic() > deadline or not server_thread.is_alive():
            return False
        server_thread.join(0.05)  # returns early if uvicorn gave up (e.g. port taken)
    return True
