"""What a client's connection may take of `flexbridge serve` (docs/operations.md).

aiohttp closes idle keep-alive connections, but it waits for a request's head and body as
long as a client cares to trickle them, and it accepts every connection the kernel hands
it; a few hundred slow clients held the server. Here:

- a request's head (request line and headers) must arrive within
  `header_read_timeout_seconds` of the connection opening, or of the first byte of a later
  request on a kept-alive connection; else 408 and the connection is closed;
- its body must arrive within `body_read_timeout_seconds` of its head: a handler waiting
  for the rest is answered 408 in its surface's envelope, and the connection is closed (as
  after a body that cannot be decoded);
- beyond `max_connections` open at once a new connection is answered 503 at once and closed,
  before a byte of it is parsed;
- an idle kept-alive connection closes after `keepalive_timeout_seconds` (aiohttp's own);
- what aiohttp itself refuses while parsing (a request target over `PARSED_TARGET_BYTES`, a
  header line over 8,190 bytes, bytes that are not HTTP) is answered in the JSON envelope of
  flexbridge's own routes instead of text/plain.

Every cut-off and refusal is counted in /metrics (flexbridge_connections_cut_total by phase,
flexbridge_connections_refused_total, flexbridge_connections_open).

The head deadline lives in the connection (`GuardedRequestHandler`, aiohttp's public
`web.RequestHandler` subclassed, served by `GuardedSite`); it learns that a head has arrived
from `read_deadline_middleware`, the outermost middleware, which also keeps the body
deadline. The middleware uses only the request's public API, so the body deadline holds
under any runner (the test client's too); the head deadline, the cap and the JSON parse
errors need `GuardedSite`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.typedefs import Handler

from adapter.errors import error_response
from adapter.keys import METRICS, SETTINGS
from adapter.metrics import Metrics
from protocols.common.surface import Refusal

log = logging.getLogger("flexbridge.http")

# Request targets up to this long are parsed, so that one over MAX_TARGET_BYTES
# (adapter.middlewares) is refused in its surface's envelope; a longer one is refused while
# parsing, in the generic envelope. Bounds what one request line may make the parser hold.
PARSED_TARGET_BYTES = 64 * 1024
# aiohttp's own limit on one header line.
MAX_HEADER_LINE_BYTES = 8190


def _raw_answer(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 answer in the generic envelope, for a connection that has no request
    object to answer (over the cap, or its head never arrived)."""
    body = json.dumps({"error": {"code": code, "message": message, "request_id": None}})
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n{body}"
    ).encode()


_OVER_CAP = _raw_answer(
    503,
    "Service Unavailable",
    "unavailable",
    "too many open connections; retry",
    "Retry-After: 1\r\n",
)


@dataclass(slots=True)
class ConnectionCount:
    """Connections one site has open, against its cap."""

    cap: int
    open: int = 0

    @property
    def full(self) -> bool:
        return self.open >= self.cap


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection protocol with the cap and the head deadline."""

    def __init__(
        self,
        manager: web.Server,
        *,
        count: ConnectionCount,
        metrics: Metrics,
        header_seconds: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._count = count
        self._metrics = metrics
        self._header_seconds = header_seconds
        self._refused = False
        self._awaiting_head = True
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._count.full:  # checked here, one connection at a time: the cap is exact
            self._refused = True
            self._metrics.connections_refused.inc()
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_OVER_CAP)
            transport.close()
            return
        self._count.open += 1
        self._metrics.connections_open.inc()
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        self._count.open -= 1
        self._metrics.connections_open.dec()
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head and self._head_deadline is None:
            self._arm_head_deadline()  # the first byte of a kept-alive connection's next request
        super().data_received(data)

    def head_received(self) -> None:
        """A request's head is in (read_deadline_middleware): its body has its own deadline."""
        self._awaiting_head = False
        self._disarm_head_deadline()

    def request_finished(self, request: web.BaseRequest) -> None:
        """The handler answered: the next byte after this request's body starts a new head.
        (A pipelined head that arrived half before this point waits for the keep-alive
        timeout instead: aiohttp closes a connection that idles with a partial head.)"""
        request.content.on_eof(self._await_next_head)

    def _await_next_head(self) -> None:
        self._awaiting_head = True

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self._loop.call_later(self._header_seconds, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport is None or not self._awaiting_head:
            return
        self._metrics.connections_cut.labels("headers").inc()
        message = f"the request's headers did not arrive within {self._header_seconds:g} s"
        self.transport.write(_raw_answer(408, "Request Timeout", "request_timeout", message))
        self.force_close()  # the transport sends what it holds, then closes

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp cannot parse, in the generic JSON envelope (its own is text/plain),
        logged as one line: malformed requests are the client's business."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:  # as aiohttp: an answer has begun, none fits now
            raise ConnectionError("an answer is sent already")
        refusal = _parse_refusal(status, exc)
        log.info("unparsable request from %s: %s", request.remote, refusal.message)
        response = error_response(refusal)
        response.force_close()
        return response


def _parse_refusal(status: int, exc: BaseException | None) -> Refusal:
    if isinstance(exc, LineTooLong) and exc.args[1] == PARSED_TARGET_BYTES:
        return Refusal(
            414, "uri_too_long", f"the request target is longer than {PARSED_TARGET_BYTES} bytes"
        )
    if isinstance(exc, LineTooLong):
        return Refusal(
            431,
            "header_too_large",
            f"a header line is longer than {MAX_HEADER_LINE_BYTES} bytes",
        )
    reason = " ".join(str(getattr(exc, "message", None) or exc or "").split())[:200]
    return Refusal(status, "bad_request", f"the request is not HTTP/1.1 as sent ({reason})")


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are `GuardedRequestHandler`s with the settings' limits."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        ssl_context: Any = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        settings = runner.app[SETTINGS]
        self._host, self._port = host, port
        self._metrics = runner.app[METRICS]
        self._count = ConnectionCount(settings.max_connections)
        self._header_seconds = settings.header_read_timeout_seconds
        self._keepalive_seconds = settings.keepalive_timeout_seconds

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            # A TLS handshake is part of the head: it gets the head's deadline.
            ssl_handshake_timeout=self._header_seconds if self._ssl_context else None,
        )

    def _connection(self) -> GuardedRequestHandler:
        server = self._runner.server
        assert server is not None
        return GuardedRequestHandler(
            server,
            loop=asyncio.get_running_loop(),
            count=self._count,
            metrics=self._metrics,
            header_seconds=self._header_seconds,
            keepalive_timeout=self._keepalive_seconds,
            access_log=None,
            max_line_size=PARSED_TARGET_BYTES,
            max_field_size=MAX_HEADER_LINE_BYTES,
        )


class _BodyDeadline:
    """The time a request's body has to arrive, from the end of its head."""

    def __init__(self, request: web.Request, seconds: float, metrics: Metrics) -> None:
        self.request = request
        self.seconds = seconds
        self.metrics = metrics
        self.handling = True  # the handler runs; after it, aiohttp drains the body it left
        self.expired = False
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)
        request.content.on_eof(self._timer.cancel)

    def _expire(self) -> None:
        request = self.request
        if request.content.is_eof() or request.transport is None:
            return
        self.expired = True
        self.metrics.connections_cut.labels("body").inc()
        if self.handling:  # a read waiting for the rest raises, and is answered 408
            request.content.set_exception(
                web.HTTPRequestTimeout(
                    text=f"the request body did not arrive within {self.seconds:g} s"
                )
            )
        else:
            request.protocol.force_close()


@web.middleware
async def read_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection its head is in, and keep the body's deadline."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        protocol.head_received()
    deadline = None
    if not request.content.is_eof():
        settings = request.config_dict[SETTINGS]
        deadline = _BodyDeadline(
            request, settings.body_read_timeout_seconds, request.config_dict[METRICS]
        )
    try:
        response = await handler(request)
    except BaseException:
        if deadline is not None and deadline.expired:
            protocol.force_close()
        raise
    finally:
        if deadline is not None:
            deadline.handling = False
        if isinstance(protocol, GuardedRequestHandler):
            protocol.request_finished(request)
    if (deadline is not None and deadline.expired) or request.content.exception() is not None:
        # Answer, then close: the rest of a body too slow or undecodable (a Content-Encoding
        # it does not have) is not worth reading, and aiohttp, draining it, would log the
        # read's error with a traceback. The answer says so (Connection: close), so that no
        # client sends its next request on a connection about to close.
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        protocol.force_close()
    return response
