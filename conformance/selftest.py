"""The conformance suite against flexbridge itself, end to end, in one command:

    python -m conformance.selftest [--report DIR] [--protocol ocmp,oscp,cpapi] [--keep DIR]

provisions a fresh SQLite database (conformance.provision), starts a real `flexbridge serve`
process on a free port, runs every vector against it through the runner (the same code as
`flexbridge conformance`), stops the server and exits with the runner's status (0 all passed,
1 a failure, 2 a usage error). On a failure the end of the server's log is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from conformance import cli
from conformance.provision import running_flexbridge
from conformance.vectors import PROTOCOLS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.selftest", description=__doc__)
    parser.add_argument("--report", help="folder for the JUnit XML and Markdown reports")
    parser.add_argument("--protocol", default=",".join(PROTOCOLS))
    parser.add_argument("--keep", help="folder for the database and server log (kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep) if args.keep else Path(scratch)
        with running_flexbridge(folder) as server:
            command = ["conformance", "--target", server.url, "--protocol", args.protocol]
            command += ["--credentials", str(server.credentials)]
            command += ["--peer-port", str(server.peer_port)]
            if args.report:
                command += ["--report", args.report]
            code = cli.main(command)
            if code != 0:
                print("--- end of the flexbridge log ---\n" + server.output()[-6000:])
    return code


if __name__ == "__main__":
    sys.exit(main())
