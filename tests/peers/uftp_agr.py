"""shapeshifter-uftp 2.4.0 playing a UFTP 3.1 Aggregator (AGR), for flexbridge interop tests.

Runs ONLY under the peers venv (.venv-peers, with tests/peers/requirements-uftp.txt):

    .venv-peers/bin/python tests/peers/uftp_agr.py --port P --domain agr.example.com \
        --dso-domain dso.example.com --dso-public-key B64 \
        --dso-url http://127.0.0.1:Q/shapeshifter/api/v3/message

It serves the library's own ShapeshifterAgrService (its FastAPI app on uvicorn, message route
/shapeshifter/api/v3/message), whose process_* callbacks only record. The key lookup knows one
sender, the DSO (--dso-domain, role DSO, --dso-public-key: raw base64 of the 32-byte public
key); the endpoint lookup returns --dso-url for it. --private-key is base64 of libsodium's
64-byte secret key; without it one is generated. Test-only routes (/_received, /_requests,
/_sent, /_peer, /_send/<Type>) are described in uftp_harness.py; /_send uses the library's
ShapeshifterAgrDsoClient (send_d_prognosis, send_flex_offer, ...).

Prints "uftp AGR ready on http://127.0.0.1:P message_url=... domain=... public_key=...
private_key=..." on stdout once listening (nothing else goes to stdout). SIGTERM or SIGINT
stops it cleanly (exit status 0).
"""

from __future__ import annotations

import sys

from shapeshifter_uftp import ShapeshifterAgrService
from uftp_harness import run

if __name__ == "__main__":
    sys.exit(run("AGR", ShapeshifterAgrService, None, __doc__))
