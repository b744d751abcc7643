"""Run in .venv-usef: flexmeasures-client logs in to a flexbridge with requestAuthToken.

    .venv-usef/bin/python tests/peers/usef_fmc_login.py HOST:PORT EMAIL PASSWORD

Prints `token=<auth_token>` on success; on a refused login, `refused=<the client's
exception class>: <its text>` and exits 3.
"""

from __future__ import annotations

import asyncio
import sys

from flexmeasures_client import FlexMeasuresClient


async def main(host: str, email: str, password: str) -> int:
    client = FlexMeasuresClient(host=host, email=email, password=password, ssl=False)
    try:
        await client.get_access_token()
    except Exception as exc:  # the client's own errors: what it made of our answer
        print(f"refused={type(exc).__name__}: {exc}", flush=True)
        return 3
    finally:
        await client.close()
    print(f"token={client.access_token}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
