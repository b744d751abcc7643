"""The README's tour, pasted as written: its shell blocks run in order, in one bash, against
fresh servers (real `flexbridge serve` processes, SQLite), with the README's ports swapped for
free ones. A block that fails (set -e; every curl in it fails on an HTTP error unless it shows
the status) fails the test, and the transcript must show each surface's answer."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from ports import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PORTS = ("8090", "8091", "8765")  # the tour's servers and the conformance runner's peer


def tour_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_the_readme_has_a_tour_of_every_surface():
    script = "\n".join(tour_blocks())
    surfaces = ("/api/Asset/", "/iotexternaleh/", "/ocmp/1.0/", "/oscp/co/2.0/", "/getConnection")
    for surface in (*surfaces, "optimize"):
        assert surface in script, surface
    assert "conformance --target" in script


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "flexbridge").exists(), reason="no .venv")
def test_the_readme_tour_runs_as_written(tmp_path: Path):
    script = "\n".join(tour_blocks())
    for port in PORTS:
        script = script.replace(port, str(free_port()))
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    # The tour leaves nothing running, even when it fails half-way.
    wrapper = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    done = subprocess.run(
        ["bash", "-c", wrapper],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    transcript = done.stdout + done.stderr
    assert done.returncode == 0, transcript[-6000:]
    out = done.stdout
    # the site, the meter, the series, the USEF connection
    assert out.count('"Success":true') == 4, out[:3000]
    assert re.search(r'"Value":\s*50', out)  # the maximum capacity read back
    # event hub 201; OCMP handshake, forecast, bad forecast; OSCP register
    statuses = re.findall(r"^(?:.*\})?(\d{3})$", out, re.M)[:5]
    assert statuses == ["201", "204", "204", "400", "204"], out[:3000]
    assert re.search(r"^ocmp\s+greenflux\s+handshaken\s", out, re.M)
    assert '"type": "group_plan"' in out
    # The tour's resources (the meter, the charger) by the addresses minted for them
    minted = r'"connections": \["ea1\.\d{4}-\d{2}\.1\.0\.0\.127:\d+:\d+", "ea1[^"]+"\]'
    assert re.search(minted + r', "names": \["CS 1", "Main meter"\]', out), out
    assert '"services": [{"name": "getMeterData"' in out
    assert '"values": [0.011, 0.011, 0.0075, 0.0075]' in out  # 15-minute values, in MW
    assert re.search(r"^all\s+\d+\s+0\s+0\s+\d+$", out, re.M), out[-3000:]  # conformance
    for log in ("tour-serve.log", "conformance-serve.log"):
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text and "unexpected error" not in text, text[-3000:]
