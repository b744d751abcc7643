"""shapeshifter-uftp 2.4.0 playing a UFTP 3.1 DSO: a stand-in for flexbridge, so that the AGR
harness (uftp_agr.py) can be tested with the library on both sides.

Runs ONLY under the peers venv (.venv-peers, with tests/peers/requirements-uftp.txt):

    .venv-peers/bin/python tests/peers/uftp_dso_standin.py --port P --domain dso.example.com \
        --agr-domain agr.example.com --agr-public-key B64 \
        --agr-url http://127.0.0.1:Q/shapeshifter/api/v3/message

The library's own ShapeshifterDsoService, its process_* callbacks only recording; /_send uses
the library's ShapeshifterDsoAgrClient (send_flex_request, send_flex_order, ...). Routes,
options and the ready line ("uftp DSO ready on ...") are those of uftp_agr.py with the roles
swapped; see uftp_harness.py.
"""

from __future__ import annotations

import sys

from shapeshifter_uftp import ShapeshifterDsoService
from uftp_harness import run

if __name__ == "__main__":
    sys.exit(run("DSO", ShapeshifterDsoService, None, __doc__))
