"""The USEF API's answers to what it refuses (wave-2 requirements A.3, FlexMeasures 0.3):

    {"type": "<Endpoint>Response", "result": "Rejected", "status": "<CODE>",
     "message": "<the catalogue's text>[ <what exactly>]"}

`type` is on every answer, 401 and 403 included. A refusal the adapter decides (no or a
wrong token, a path this version lacks, a method the path does not take, a body too large,
too many requests) gets the status its HTTP code stands for here.
"""

from __future__ import annotations

from aiohttp import web

from protocols.common.surface import ProtocolError, Refusal
from protocols.usef.v1_v2_0.versions import BY_NAME, VERSIONS, response_type

# The catalogue's texts (A.3), by status. All are HTTP 400 unless _HTTP_STATUS says otherwise.
MESSAGES = {
    "UNAUTHORIZED": "You could not be properly authenticated for this content or functionality.",
    "INVALID_SENDER": "You don't have the right role to access this service.",
    "INVALID_METHOD": "Request method {method} not supported.",
    "INVALID_DOMAIN": (
        "Connections, sensors and markets should be identified using the EA1 addressing "
        "scheme recommended by USEF. For example: "
        "'ea1.2018-06.io.flexmeasures:<owner_id>:<asset_id>'"
    ),
    "INVALID_HORIZON": "The prognosis horizon in your request could not be parsed.",
    "INVALID_PERIOD": "A time period in your request doesn't seem right.",
    "INVALID_ROLE": "No known services for specified role {role}.",
    "INVALID_MESSAGE_TYPE": "Request message should specify type '{type}'.",
    "NO_MESSAGE_TYPE": "Request message should specify type '{type}'.",
    "REQUIRED_INFO_MISSING": "Missing fields: {fields}",
    "UNRECOGNIZED_CONNECTION_GROUP": (
        "One or more connections in your request were not found in your account."
    ),
    "INVALID_REQUEST": "The request cannot be read.",
    "INVALID_UNIT": "{detail}",
    "INVALID_TIMEZONE": "",
    "INVALID_RESOLUTION": "{detail}",
    "INVALID_SOURCE": "The data source is not found:",
    "PTUS_INCOMPLETE": "Missing values.",
    "UNRECOGNIZED_ASSET": "Cannot identify asset.",
    "UNRECOGNIZED_MARKET": "The requested market named {name} is not known.",
    "POWER_VALUE_TOO_BIG": "One or more power values are too big.",
    "POWER_VALUE_TOO_SMALL": "One or more power values are too small.",
}
_HTTP_STATUS = {"UNAUTHORIZED": 401, "INVALID_SENDER": 403, "INVALID_METHOD": 405}
# A refusal the adapter decides -> its status here.
_BY_HTTP = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "INVALID_SENDER",
    404: "UNRECOGNIZED_ENDPOINT",
    405: "INVALID_METHOD",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}


class UsefError(ProtocolError):
    """A refusal with a status of the catalogue; `extra` follows its text."""

    def __init__(self, status: str, extra: str = "", **fill: str) -> None:
        text = MESSAGES[status].format(**fill)
        super().__init__(_HTTP_STATUS.get(status, 400), status, f"{text} {extra}".strip())


def _endpoint(path: str) -> tuple[str | None, str]:
    """(the version, the endpoint) a request path names under the prefix; outside every
    version, anything but the login is the root, whose answers are VersionsResponse."""
    parts = [p for p in path.split("/") if p]
    version = next((p for p in parts if p in VERSIONS), None)
    if version is None:
        return None, "requestAuthToken" if parts and parts[-1] == "requestAuthToken" else "versions"
    return version, parts[-1] if parts[-1] not in VERSIONS else ""


def _message(refusal: Refusal, status: str, version: str | None, endpoint: str) -> str:
    if status == "UNAUTHORIZED":
        return f"{MESSAGES['UNAUTHORIZED']} ({refusal.message})"
    if status == "INVALID_SENDER":
        return f"{MESSAGES['INVALID_SENDER']} {refusal.message}".strip()
    if status == "INVALID_METHOD":
        text = MESSAGES["INVALID_METHOD"].format(method=refusal.method)
        allowed = (refusal.headers or {}).get("Allow", "")
        return f"{text} Allowed: {allowed}." if allowed else text
    if status == "UNRECOGNIZED_ENDPOINT":
        service = BY_NAME.get(endpoint)
        if service is not None and version is not None and not service.in_version(version):
            return f"{endpoint} is not in API {version}: {service.since} and later have it."
        return f"No endpoint {endpoint or '(none)'} in this API."
    return refusal.message


def render_error(refusal: Refusal) -> web.Response:
    version, endpoint = _endpoint(refusal.path)
    status = refusal.code if refusal.code in MESSAGES else _BY_HTTP.get(refusal.status)
    if status is None:
        status = "INTERNAL_SERVER_ERROR" if refusal.status >= 500 else "INVALID_REQUEST"
    message = _message(refusal, status, version, endpoint)
    if refusal.issues and refusal.code not in MESSAGES:
        message += " " + "; ".join(f"{i.field}: {i.reason}" for i in refusal.issues)
    body = {
        "type": response_type(endpoint),
        "result": "Rejected",
        "status": status,
        "message": message,
    }
    return web.json_response(body, status=refusal.status, headers=refusal.headers)
