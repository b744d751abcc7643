"""The API versions and which endpoint each has (wave-2 requirements A.4 and A.6).

One table, SERVICES, says for every endpoint the versions that have it, its methods there,
the USEF roles it is for (getService's `access`) and what it does; the routes are made
from it for the endpoints with a handler, so getService lists exactly what is served and
an endpoint a version lacks is a 404 that says which versions have it.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("v1", "v1_1", "v1_2", "v1_3", "v2_0")
# getService's `version`: "1.0" for v1, "1.1" for v1_1, ...
NUMBERS = {"v1": "1.0", "v1_1": "1.1", "v1_2": "1.2", "v1_3": "1.3", "v2_0": "2.0"}

MARKET_ROLES = ("Aggregator", "Supplier", "MDC", "DSO", "Prosumer", "ESCo")
# The roles getService's `access` may name (the docs' section 14.2).
ROLES = ("public", "user", "admin", *MARKET_ROLES)


@dataclass(frozen=True, slots=True)
class Service:
    name: str  # the endpoint, as in the URL and in `type` (<Name>Request/Response)
    since: str  # the first version that has it; every later one has it too
    access: tuple[str, ...]
    description: str
    methods: tuple[str, ...] = ("GET",)
    # Versions whose methods differ from `methods` (v1's getMeterData also takes POST).
    methods_in: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def in_version(self, version: str) -> bool:
        return VERSIONS.index(version) >= VERSIONS.index(self.since)

    def methods_of(self, version: str) -> tuple[str, ...]:
        return dict(self.methods_in).get(version, self.methods)


SERVICES = (
    Service(
        "getMeterData",
        "v1",
        MARKET_ROLES,
        "Request meter readings of connections, as average power per interval (MW)",
        methods_in=(("v1", ("GET", "POST")),),
    ),
    Service(
        "postMeterData",
        "v1",
        MARKET_ROLES,
        "Send meter readings of connections, as average power per interval (MW)",
        methods=("POST",),
    ),
    Service("getConnection", "v1_1", MARKET_ROLES, "Request the connections of your account"),
    Service("getPrognosis", "v1_1", MARKET_ROLES, "Request power forecasts of connections"),
    Service(
        "postPrognosis",
        "v1_1",
        MARKET_ROLES,
        "Send power forecasts of connections",
        methods=("POST",),
    ),
    Service("postPriceData", "v1_1", MARKET_ROLES, "Send prices of a market", methods=("POST",)),
    Service(
        "postWeatherData",
        "v1_1",
        MARKET_ROLES,
        "Send weather data (temperature, radiation, wind speed) of a location",
        methods=("POST",),
    ),
    Service(
        "postUdiEvent",
        "v1_2",
        ("Prosumer", "ESCo"),
        "Send the state of charge of a battery or charging station, to schedule it",
        methods=("POST",),
    ),
    Service(
        "getDeviceMessage",
        "v1_2",
        ("Prosumer", "ESCo"),
        "Request the schedule made for a UDI event, as power per interval (MW)",
    ),
)

BY_NAME = {service.name: service for service in SERVICES}


def response_type(endpoint: str) -> str:
    """The `type` of an endpoint's answers: getService -> GetServiceResponse."""
    return f"{endpoint[:1].upper()}{endpoint[1:]}Response" if endpoint else "Response"
