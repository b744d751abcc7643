"""Ports for the servers a test starts as processes.

A port found with bind(0) and let go can be handed to someone else before the server takes
it: to the other pytest-xdist worker's next bind(0), or to an outgoing connection, since
both draw from the kernel's ephemeral range (32768-60999 here). So each worker takes
ports in turn from a block of its own below that range, skipping any in use."""

from __future__ import annotations

import itertools
import os
import socket

_BASE, _BLOCK = 20_000, 1_500  # up to 8 workers below 32768


def _worker() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1, ...
    return int(name.removeprefix("gw") or 0) % 8


_next = itertools.cycle(range(_BASE + _worker() * _BLOCK, _BASE + (_worker() + 1) * _BLOCK))


def free_port() -> int:
    """A port nobody listens on now that no other worker of this run hands out."""
    for _ in range(_BLOCK):
        port = next(_next)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in this worker's block of {_BLOCK}")
