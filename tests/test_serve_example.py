"""examples/http_server/host.py runs as documented in both modes: it
serves GET / and POST /echo and stops cleanly on SIGTERM."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST_PY = ROOT / "examples" / "http_server" / "host.py"
TIMEOUT = 30


def _ports(proc: subprocess.Popen, log: Path) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/", text) or re.search(r"on ports ([\d, ]+)", text)
        if found:
            return [int(p) for p in found.group(1).split(", ")]
        assert proc.poll() is None, text
        time.sleep(0.02)
    raise AssertionError(f"no address in the log: {log.read_text()}")


@pytest.mark.parametrize("mode, instances", [("shared", 3), ("per-instance", 2)])
def test_example_serves_and_stops(tmp_path, mode, instances):
    log = tmp_path / "host.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(HOST_PY), "--instances", str(instances), "--port", "0",
                                 "--mode", mode], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    try:
        ports = _ports(proc, log)
        assert len(ports) == (1 if mode == "shared" else instances)
        for port in ports:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"hello from asyncwasm\n")
            conn.request("POST", "/echo", body=b"through the example")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"through the example")
            conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
