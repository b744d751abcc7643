"""shapeshifter-uftp 2.4.0 playing a UFTP 3.1 common reference operator (CRO) toward one DSO,
for flexbridge interop tests.

Runs ONLY under the peers venv (.venv-peers, with tests/peers/requirements-uftp.txt):

    .venv-peers/bin/python tests/peers/uftp_cro.py --port P --domain cro.example.com \
        --dso-domain dso.example.com --dso-public-key B64 \
        --dso-url http://127.0.0.1:Q/shapeshifter/api/v3/message

The library's own ShapeshifterCroService, its process_* callbacks only recording (a
DSOPortfolioUpdate or DSOPortfolioQuery is answered when the test says so, through /_send
and the library's ShapeshifterCroDsoClient: send_dso_portfolio_update_response,
send_dso_portfolio_query_response); the library itself answers a TestMessage. Routes,
options and the ready line ("uftp CRO ready on ...") are those of uftp_agr.py with the roles
swapped; see uftp_harness.py.
"""

from __future__ import annotations

import sys

from shapeshifter_uftp import ShapeshifterCroService
from uftp_harness import run

if __name__ == "__main__":
    sys.exit(run("CRO", ShapeshifterCroService, None, __doc__))
