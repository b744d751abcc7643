"""The unversioned endpoints (A.4): `GET <prefix>/`, the versions served, and
`POST <prefix>/requestAuthToken`, a token for `Authorization: <token>`.

A login is by the account's username, which the field `email` carries (the real client,
flexmeasures-client, refuses an `email` that does not look like one, so such accounts are
named by an address). Unlike FlexMeasures 0.3, an unknown email is answered as a wrong
password is, 401: a 404 would tell a guesser which accounts exist. Wrong passwords are
braked as basic credentials are (docs/security.md).
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from protocols.common.context import database_of, login_with_password
from protocols.common.surface import Forbidden, public
from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.fields import fields_of
from protocols.usef.v1_v2_0.versions import VERSIONS, response_type
from store.accounts import Role, issue_token

# The accounts the API serves: a participant of a tenant, or its admin.
ACCOUNT_ROLES = frozenset({Role.PARTICIPANT, Role.ADMIN})
TOKEN_TTL = web.AppKey("usef_token_ttl", timedelta)
# The FlexMeasures release whose API these versions are (the real client reads it).
FLEXMEASURES_VERSION = "0.3.0"

routes = web.RouteTableDef()


@routes.get("/")
@public
async def versions(request: web.Request) -> web.Response:
    prefix = request.path.rstrip("/")
    return web.json_response(
        {
            "type": response_type("versions"),
            "message": (
                "For these API versions a public endpoint is available, listing its "
                f"services: for example {prefix}/v1/getService and {prefix}/v2_0/getService."
                f" An authentication token can be requested at {prefix}/requestAuthToken."
            ),
            "versions": list(VERSIONS),
            "flexmeasures_version": FLEXMEASURES_VERSION,
        }
    )


@routes.post("/requestAuthToken")
@public
async def request_auth_token(request: web.Request) -> web.Response:
    fields = await fields_of(request)
    missing = [name for name in ("email", "password") if not isinstance(fields.get(name), str)]
    if missing:
        raise UsefError("REQUIRED_INFO_MISSING", fields=str(missing))
    account = await login_with_password(request, fields["email"], fields["password"])
    if account.role not in ACCOUNT_ROLES:
        raise Forbidden(f"You are a {account.role} account, while this API serves participants.")
    async with database_of(request).transaction() as tx:
        token = await issue_token(tx, account, request.config_dict[TOKEN_TTL])
    return web.json_response(
        {"type": response_type("requestAuthToken"), "auth_token": token, "user_id": account.id}
    )
