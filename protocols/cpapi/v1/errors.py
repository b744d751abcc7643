"""CP-API error answers.

The CP-API text defines per-item results (`Success` + `ErrorMessage` in SaveAssetResponseV1 and
SaveTimeSeriesResponseV1) but no envelope for a request refused as a whole; we answer those in
the ASP.NET Web API shape the platform was built on, `{"Message": ...}`, with the fields named:

    {"Message": "...", "ErrorCode": "invalid", "Errors": [{"Field": "...", "Reason": "..."}],
     "RequestId": "..."}
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from protocols.common.surface import Refusal
from store.errors import FieldIssue


def error_response(refusal: Refusal) -> web.Response:
    body: dict[str, object] = {
        "Message": refusal.message,
        "ErrorCode": refusal.code,
        "RequestId": refusal.request_id,
    }
    if refusal.issues:
        body["Errors"] = [{"Field": i.field, "Reason": i.reason} for i in refusal.issues]
    return web.json_response(body, status=refusal.status, headers=refusal.headers)


def item_error(issues: Sequence[FieldIssue] | str) -> str:
    """One ErrorMessage for a refused list item: every field and reason."""
    if isinstance(issues, str):
        return issues
    return "; ".join(f"{i.field}: {i.reason}" for i in issues)
