"""``python -m asyncwasm serve`` as a process: the bound address in the log,
the embedded server's routes, SIGTERM -> exit 0 within the grace period,
a trapping module restarted with growing back-off, clear errors. Loopback
only; every process is killed at the end of its test whatever happens."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator


from .wat import wat

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")
TIMEOUT = 30


class Proc:
    def __init__(self, popen: subprocess.Popen, log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = TIMEOUT, count: int = 1) -> list[re.Match]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = list(re.finditer(pattern, self.log))
            if len(found) >= count:
                return found
            if self.popen.poll() is not None:
                raise AssertionError(f"serve exited ({self.popen.returncode}) early:\n{self.log}")
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} x{count} in the log within {timeout} s:\n{self.log}")

    def port(self) -> int:
        return int(self.wait_for(ADDRESS.pattern)[0].group(1))


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str) -> Iterator[Proc]:
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen([sys.executable, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0", *args],
                                 stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield Proc(popen, log_path)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait(10)


def get(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def test_serve_embedded_then_sigterm(tmp_path):
    with serve(tmp_path, "--instances", "3", "--grace", "5", "--yield-interval", "0.01") as proc:
        port = proc.port()
        status, body = get(port, "GET", "/")
        assert status == 200 and body.startswith(b"hello")
        assert get(port, "POST", "/echo", b"ping " * 1000) == (200, b"ping " * 1000)
        assert proc.log.count(": started") == 3
        assert "compiled once" in proc.log
        start = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0
        assert time.monotonic() - start < 5
        log = proc.log
        assert "SIGTERM: shutting down gracefully" in log
        assert len(re.findall(r"instance \d: stopped", log)) == 3
        assert log.rstrip().endswith("stopped")


TRAPS = wat("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") unreachable))
""")


def test_trapping_module_is_restarted_with_backoff(tmp_path):
    module = tmp_path / "traps.wasm"
    module.write_bytes(TRAPS)
    with serve(tmp_path, str(module), "--instances", "1", "--restart-delay", "0.05") as proc:
        matches = proc.wait_for(r"instance 0: trapped: [^;\n]*; restarting in ([\d.]+) s", count=4)
        delays = [float(m.group(1)) for m in matches[:4]]
        assert delays == [0.05, 0.1, 0.2, 0.4]
        assert proc.log.count("instance 0: started") >= 4
        proc.popen.send_signal(signal.SIGINT)
        assert proc.popen.wait(TIMEOUT) == 0


def test_bad_module_and_bad_address_are_clear_errors(tmp_path):
    missing = tmp_path / "missing.wasm"
    with serve(tmp_path, str(missing), "--no-fallback") as proc:
        assert proc.popen.wait(TIMEOUT) == 1
        assert "missing.wasm" in proc.log and "error" in proc.log
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"\0asm\1\0\0\0\xff")
    with serve(tmp_path, str(broken), "--no-fallback") as proc:
        assert proc.popen.wait(TIMEOUT) == 1
        assert "not a valid module" in proc.log
    with serve(tmp_path, "--max-memory", "4MiB") as proc:  # http_server needs more than 16 MiB
        assert proc.popen.wait(TIMEOUT) == 1
        assert "cannot instantiate the embedded http_server" in proc.log and "max_memory_pages" in proc.log
    out = subprocess.run([sys.executable, "-m", "asyncwasm", "serve", "--listen", "nonsense"],
                         capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 2 and "HOST:PORT" in out.stderr


def test_second_signal_stops_at_once(tmp_path):
    with serve(tmp_path, "--instances", "1", "--grace", "60") as proc:
        port = proc.port()
        with socket.create_connection(("127.0.0.1", port)) as held:
            held.sendall(b"GET / HT")  # keeps its instance busy
            time.sleep(0.2)
            proc.popen.send_signal(signal.SIGTERM)
            proc.wait_for("shutting down: stopped accepting; 1 connection")
            proc.popen.send_signal(signal.SIGTERM)
            assert proc.popen.wait(TIMEOUT) == 0
        assert "stopping now" in proc.log


def test_instance_out_of_fuel_is_restarted_and_serving_goes_on(tmp_path):
    with serve(tmp_path, "--instances", "1", "--fuel", "300000", "--restart-delay", "0.01") as proc:
        port = proc.port()
        for _ in range(60):  # far more requests than one life's fuel pays for
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                assert resp.status == 200 and resp.read().startswith(b"hello")
            except (ConnectionError, http.client.RemoteDisconnected):
                pass  # the request that ran out of fuel loses its connection
            finally:
                conn.close()
        proc.wait_for(r"instance 0: ran out of fuel; restarting in")
        assert get(port, "GET", "/")[0] == 200
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0
