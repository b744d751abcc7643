"""pyoscp 0.1.0 playing an OSCP 2.0 Flexibility Provider (FP), for flexbridge interop tests.

Runs ONLY under the peers venv (.venv-peers, from tests/peers/requirements-pyoscp.txt):

    .venv-peers/bin/python tests/peers/pyoscp_fp.py --port P \
        --co-url http://127.0.0.1:Q/oscp/co/2.0 --token TOKEN_A

It serves pyoscp's own FP namespace (``createBlueprint(injected, "fp")``, so the OSCP routes
are pyoscp's: /oscp/fp/2.0/register, /handshake, /handshake_acknowledgment, /heartbeat,
/update_group_capacity_forecast) with pyoscp's ``RegistrationDictMan`` on a temporary file,
and adds test-only routes outside /oscp:

    GET  /_received            every request that reached the FP (path, headers, body, status)
    GET  /_state               tokens, pyoscp's endpoint table, what was sent, forecasts handled
    POST /_accept_token        {"token": X}: X may register at this FP (CO-initiated flow)
    POST /_send/register       FP registers at the CO: Authorization Token A, body token B
    POST /_send/heartbeat      pyoscp's _send_heartbeat; optional {"heartbeat_interval": N}
    POST /_send/handshake_acknowledgment   pyoscp's _send_ack; optional {"heartbeat_interval": N}
    POST /_send/<message>      any other message (handshake, update_group_capacity_forecast,
                               update_asset_measurements, ...): JSON body passed through,
                               headers from pyoscp's createOscpHeader; ?correlation=ID adds
                               X-Correlation-ID

Every /_send/* answers with the status code and body the peer returned (502 with
{"error": ...} when the peer could not be reached) and the header X-Sent-Request-ID.
Prints "pyoscp FP ready on http://127.0.0.1:P" on stdout once listening (nothing else goes to
stdout; logs go to stderr). SIGTERM or SIGINT stops it cleanly (exit status 0).

pyoscp is imported and called, never copied: this file only wires it up and records.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import oscp.RegistrationManager as oscp_registration
import requests
from flask import Flask, Response, g, jsonify, request
from oscp import createBlueprint
from oscp.RegistrationManager import RegistrationDictMan, createOscpHeader
from werkzeug.serving import make_server

log = logging.getLogger("pyoscp_fp")

OSCP_VERSION = "2.0"
SEND_TIMEOUT = 10.0  # pyoscp sets no timeout; a hung peer must not hang the test forever
DEFAULT_HEARTBEAT_INTERVAL = 60


class RecordingRequests:
    """Stands in for the ``requests`` module inside ``oscp.RegistrationManager``.

    pyoscp's senders (_send_register, _send_heartbeat, _send_ack) call ``requests.post`` and
    do not return the response (and _send_heartbeat swallows every error). This proxy keeps
    the module's whole API, adds a timeout, logs every POST and remembers the last response per
    thread, so a control endpoint can report what the peer answered.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.sent: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", SEND_TIMEOUT)
        entry: dict[str, Any] = {
            "url": url,
            "headers": dict(kwargs.get("headers") or {}),
            "body": kwargs.get("json"),
            "status": None,
            "response": None,
        }
        with self._lock:
            self.sent.append(entry)
        self._local.entry = entry
        self._local.response = None
        self._local.error = None
        try:
            response = requests.post(url, **kwargs)
        except requests.RequestException as exc:
            self._local.error = exc
            entry["response"] = f"{type(exc).__name__}: {exc}"
            raise
        self._local.response = response
        entry["status"] = response.status_code
        entry["response"] = response.text
        return response

    def begin(self) -> None:
        self._local.entry = None
        self._local.response = None
        self._local.error = None

    def last(self) -> tuple[dict | None, requests.Response | None, BaseException | None]:
        """What this thread's last POST sent, got back, or failed with."""
        local = self._local
        return (
            getattr(local, "entry", None),
            getattr(local, "response", None),
            getattr(local, "error", None),
        )

    def sent_copy(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.sent]


class FlexibilityProvider:
    """The ``flexibilityprovider`` object pyoscp's FP namespace hands forecasts to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.forecasts: list[dict[str, Any]] = []

    def handleUpdateGroupCapacityForecast(self, payload: dict, token: str) -> None:  # pyoscp's name
        with self._lock:
            self.forecasts.append({"token": token, "payload": payload})

    def copy(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.forecasts)


class Harness:
    def __init__(self, co_url: str, token_a: str, fp_base_url: str, workdir: Path) -> None:
        self.co_url = co_url  # used as given: pyoscp appends "/<message>" to base urls
        self.token_a = token_a
        self.fp_base_url = fp_base_url
        self.token_b: str | None = None
        self.version_urls = [{"version": OSCP_VERSION, "base_url": fp_base_url}]
        self.manager = RegistrationDictMan(
            self.version_urls, filename=str(workdir / "endpoints.json")
        )
        self.fp = FlexibilityProvider()
        self.http = RecordingRequests()
        oscp_registration.requests = self.http  # pyoscp's senders now report their responses
        self._lock = threading.Lock()
        self.received: list[dict[str, Any]] = []

    # -- the peer this FP talks to --------------------------------------------------------
    def endpoints(self) -> dict[str, Any]:
        # RegistrationDictMan.getEndpoints() reads its JSON file without pyoscp's lock; a
        # concurrent write could be read half-written, so read under that lock.
        with oscp_registration.lock:
            return self.manager.getEndpoints()

    def peer(self) -> tuple[str, str]:
        """(base_url, token to send) of the current peer, read from pyoscp's endpoint table.

        The table is keyed by the token the peer uses towards us; its ``register`` entry holds
        the peer's base_url and the token we use towards it (token A until the peer's Register
        reply replaces it with token C). The last complete entry is the current peer; before
        any registration it is --co-url with token A.
        """
        current = (self.co_url, self.token_a)
        for entry in self.endpoints().values():
            reg = entry.get("register") or {}
            if reg.get("base_url") and reg.get("token"):
                current = (reg["base_url"], reg["token"])
        return current

    def peer_heartbeat_interval(self) -> int | None:
        for entry in reversed(list(self.endpoints().values())):
            behaviour = entry.get("required_behavior") or {}
            if behaviour.get("heartbeat_interval"):
                return int(behaviour["heartbeat_interval"])
        return None

    # -- recording --------------------------------------------------------------------------
    def record_request(self) -> None:
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "headers": dict(request.headers),
            "body": request.get_json(silent=True),
            "raw": request.get_data(as_text=True),
            "status": None,
            "response": None,
        }
        with self._lock:
            self.received.append(entry)
        g.received_entry = entry

    def record_response(self, response: Response) -> Response:
        entry = g.get("received_entry")
        if entry is not None:
            entry["response"] = response.get_data(as_text=True)
            entry["status"] = response.status_code
        return response

    def received_copy(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.received]

    # -- sending ------------------------------------------------------------------------------
    def relay(self, send) -> Response:
        """Run one send, answer with what the peer answered."""
        self.http.begin()
        try:
            send()
        except requests.HTTPError:
            pass  # raise_for_status(): the response is in self.http.last()
        except requests.RequestException:
            pass  # no response; reported below
        entry, response, error = self.http.last()
        request_id = entry["headers"].get("X-Request-ID", "") if entry else ""
        if response is None:
            out = jsonify({"error": f"{type(error).__name__}: {error}" if error else "not sent"})
            out.status_code = 502
        else:
            body = b"" if response.status_code == 204 else response.content
            out = Response(
                body,
                status=response.status_code,
                content_type=response.headers.get("Content-Type"),
            )
        out.headers["X-Sent-Request-ID"] = request_id
        return out

    def send_register(self, body: dict) -> Response:
        token_a = body.get("token") or self.token_a
        token_b = body.get("token_b") or secrets.token_urlsafe(32)
        co_url = body.get("co_url") or self.co_url
        # pyoscp authenticates every incoming call with isRegistered(token): key the CO under
        # token B BEFORE sending, so the CO's Register reply (Authorization: Token B) is
        # accepted; until that reply arrives, we keep talking to the CO with token A.
        self.manager._updateService(token_b, token_a, co_url, OSCP_VERSION)
        self.token_b = token_b
        return self.relay(lambda: self.manager._send_register(co_url, token_b, token_a))

    def send_heartbeat(self, body: dict) -> Response:
        base_url, token = self.peer()
        interval = int(
            body.get("heartbeat_interval")
            or self.peer_heartbeat_interval()
            or DEFAULT_HEARTBEAT_INTERVAL
        )
        return self.relay(lambda: self.manager._send_heartbeat(base_url, interval, token))

    def send_ack(self, body: dict) -> Response:
        base_url, token = self.peer()
        interval = int(body.get("heartbeat_interval") or DEFAULT_HEARTBEAT_INTERVAL)
        return self.relay(lambda: self.manager._send_ack(base_url, interval, token))

    def send_message(self, message: str, body: Any) -> Response:
        base_url, token = self.peer()
        correlation = request.args.get("correlation")

        def send() -> None:
            response = self.http.post(
                f"{base_url}/{message}",
                headers=createOscpHeader(token, correlation),
                json=body,
            )
            response.raise_for_status()

        return self.relay(send)

    def state(self) -> dict[str, Any]:
        base_url, token = self.peer()
        return {
            "fp_base_url": self.fp_base_url,
            "token_a": self.token_a,
            "token_b": self.token_b,
            "peer": {"base_url": base_url, "token": token},
            "endpoints": self.endpoints(),
            "sent": self.http.sent_copy(),
            "forecasts": self.fp.copy(),
        }


def build_app(harness: Harness) -> Flask:
    app = Flask("pyoscp_fp")
    injected = {
        "registrationmanager": harness.manager,
        "flexibilityprovider": harness.fp,
    }
    app.register_blueprint(createBlueprint(injected, "fp"))

    @app.before_request
    def _record() -> None:
        if not request.path.startswith("/_"):
            harness.record_request()

    @app.after_request
    def _record_status(response: Response) -> Response:
        return harness.record_response(response)

    @app.get("/_received")
    def _received():
        return jsonify(harness.received_copy())

    @app.get("/_state")
    def _state():
        return jsonify(harness.state())

    @app.post("/_accept_token")
    def _accept_token():
        token = (request.get_json(silent=True) or {}).get("token")
        if not token:
            return jsonify({"error": "body needs a token"}), 400
        # an entry without peer data: pyoscp's isRegistered(token) is true from now on
        harness.manager._updateService(token)
        return "", 204

    @app.post("/_send/register")
    def _send_register():
        return harness.send_register(request.get_json(silent=True) or {})

    @app.post("/_send/heartbeat")
    def _send_heartbeat():
        return harness.send_heartbeat(request.get_json(silent=True) or {})

    @app.post("/_send/handshake_acknowledgment")
    def _send_ack():
        return harness.send_ack(request.get_json(silent=True) or {})

    @app.post("/_send/<message>")
    def _send_message(message: str):
        body = request.get_json(silent=True)
        return harness.send_message(message, {} if body is None else body)

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--co-url",
        "--peer-url",
        dest="co_url",
        required=True,
        help="base url of the peer, e.g. http://127.0.0.1:8080/oscp/co/2.0",
    )
    parser.add_argument("--token", required=True, help="out-of-band token A for the peer")
    parser.add_argument(
        "--accept-token",
        action="append",
        default=[],
        help="a token the peer may use to register at this FP (repeatable)",
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help="also run pyoscp's own background worker (acks, heartbeats; every 5 s)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    holder: dict[str, Flask] = {}

    def wsgi(environ, start_response):
        return holder["app"](environ, start_response)

    # bind first, so that --port 0 works and the base_url we announce has the real port
    server = make_server(args.host, args.port, wsgi, threaded=True)
    base = f"http://{args.host}:{server.server_port}"
    workdir = Path(tempfile.mkdtemp(prefix="pyoscp_fp_"))
    harness = Harness(args.co_url, args.token, f"{base}/oscp/fp/2.0", workdir)
    for token in args.accept_token:
        harness.manager._updateService(token)
    holder["app"] = build_app(harness)

    def stop(signum, _frame):
        log.info("signal %s: shutting down", signum)
        # shutdown() waits for serve_forever() to return, which runs in this (main) thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.background:
        harness.manager.start()

    print(f"pyoscp FP ready on {base}", flush=True)
    try:
        server.serve_forever()
    finally:
        harness.manager.stop()
        server.server_close()
        shutil.rmtree(workdir, ignore_errors=True)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
