"""What any exception escaping a handler means on the wire, once for every envelope.

The root middleware and each protocol surface render a `Refusal` in their own shape; which
status, code, words, fields and headers an exception stands for is decided here only.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from marshmallow import ValidationError as SchemaError
from sqlalchemy.exc import OperationalError

from adapter.errors import http_code
from hub.errors import NotAPeer
from protocols.common.context import request_id_of
from protocols.common.surface import AuthError, ProtocolError, Refusal
from protocols.common.wire import marshmallow_issues
from store.errors import Conflict, FieldIssue, NotFound, StoreError, ValidationError

log = logging.getLogger("flexbridge.http")

_PASSED_ON_HEADERS = frozenset({"www-authenticate", "retry-after", "allow"})


def _store_status(exc: StoreError) -> int:
    if isinstance(exc, NotAPeer):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 400


def refusal_of(exc: Exception, request: web.Request, subject: str) -> Refusal | None:
    refusal = _refusal(exc, request, subject)
    if refusal is None:
        return None
    return replace(
        refusal, request_id=request_id_of(request), method=request.method, path=request.path
    )


def _refusal(exc: Exception, request: web.Request, subject: str) -> Refusal | None:
    """The answer to `exc`; None for a non-error HTTPException (a redirect: re-raise it).
    `subject` names the surface in messages and logs ("flexbridge", "CP-API")."""
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None
        headers = {k: v for k, v in exc.headers.items() if k.lower() in _PASSED_ON_HEADERS}
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return Refusal(exc.status, http_code(exc.status), message, (), headers)
    if isinstance(exc, (RequestPayloadError, HttpProcessingError)):  # a body we cannot read
        reason = str(exc.__cause__ or exc) or type(exc).__name__
        issue = FieldIssue("body", f"cannot be read as sent ({reason[:200]})")
        return Refusal(400, "invalid", "the request body cannot be read", (issue,))
    if isinstance(exc, AuthError):  # Forbidden too: 401 carries its challenge, 403 none
        challenge = {"WWW-Authenticate": exc.www_authenticate} if exc.www_authenticate else None
        return Refusal(exc.status, http_code(exc.status), exc.reason, (), challenge)
    if isinstance(exc, ProtocolError):
        return Refusal(exc.status, exc.code, exc.message, exc.issues)
    if isinstance(exc, SchemaError):
        issues = marshmallow_issues(exc.messages)
        return Refusal(400, "invalid", f"the request does not match the {subject} types", issues)
    if isinstance(exc, StoreError):
        found = exc.issues if isinstance(exc, ValidationError) else ()
        return Refusal(_store_status(exc), exc.code, str(exc), found)
    if isinstance(exc, OperationalError):  # busy or unreachable database: retryable, not a bug
        log.warning("%s: database unavailable on %s: %s", subject, request.path, exc.orig)
        return Refusal(
            503,
            "unavailable",
            "the database is busy or unavailable; retry",
            (),
            {"Retry-After": "1"},
        )
    error_id = str(uuid.uuid4())
    log.error(
        "%s: unexpected error %s on %s %s",
        subject,
        error_id,
        request.method,
        request.path,
        exc_info=exc,
    )
    return Refusal(
        500, "internal_error", f"unexpected error; quote error id {error_id} to the operator"
    )
