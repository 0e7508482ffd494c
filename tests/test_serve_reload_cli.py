"""``asyncwasm serve SOURCE`` with module delivery, as a process: --watch
(rename), SIGHUP and POST /reload, metrics of the module and its reloads,
signed modules made with ``asyncwasm keygen``/``sign``, the embedded
fallback (and --no-fallback), bad flags as one line and exit 2, and a swap
with 2 workers (each logs the version it serves; a failing version is
rolled back everywhere). Loopback only; every process is killed at the end."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import signal
import sys
import tempfile
import threading
import time

from .modserver import publisher
from .modvariants import greeting, variant
from .test_serve_cli import ROOT, TIMEOUT, get, serve
from .test_serve_metrics import parse
from .test_serve_swap import TRAPS

EMBEDDED = b"hello from asyncwasm\n"
METRICS = r"metrics on http://127\.0\.0\.1:(\d+)/metrics"


def _publish(path, data: bytes) -> None:
    staged = path.with_name(path.name + ".staged")
    staged.write_bytes(data)
    os.replace(staged, path)


def _post(port: int, target: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("POST", target)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def _metrics(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read()
    conn.close()
    return parse(body)


def _asyncwasm(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncwasm", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=TIMEOUT)


def test_watch_sighup_post_reload_and_metrics(tmp_path):
    app = tmp_path / "app.wasm"
    app.write_bytes(variant("v1"))
    with serve(tmp_path, str(app), "--watch", "--instances", "2", "--metrics", "127.0.0.1:0") as proc:
        port = proc.port()
        admin = int(proc.wait_for(METRICS)[0].group(1))
        sha1 = hashlib.sha256(variant("v1")).hexdigest()
        assert f"serving {app} (sha256 {sha1[:12]}, {len(variant('v1'))} bytes, unsigned, compiled once)" in proc.log
        assert get(port, "GET", "/") == (200, greeting("v1"))
        _publish(app, variant("v2"))
        line = proc.wait_for(r"reload \(watch\) from .*app\.wasm: sha256 (\w{12}), (\d+) bytes, unsigned: "
                             r"swapped in ([\d.]+) s \(generation 2\)")[0]
        sha2 = hashlib.sha256(variant("v2")).hexdigest()
        assert line.group(1) == sha2[:12] and int(line.group(2)) == len(variant("v2"))
        assert get(port, "GET", "/") == (200, greeting("v2"))
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_for(r"reload \(SIGHUP\) from .*: unchanged \(sha256 " + sha2[:12])
        status, body = _post(admin, "/reload")
        assert status == 200 and b"reload (POST /reload)" in body and b"unchanged" in body
        assert _post(admin, "/metrics")[0] == 405
        values = _metrics(admin)
        assert values[("asyncwasm_module_info", (("sha256", sha2), ("signer", ""), ("source", str(app))))] == 1
        assert values[("asyncwasm_module_reloads_total", (("outcome", "swapped"),))] == 1
        assert values[("asyncwasm_module_reloads_total", (("outcome", "unchanged"),))] == 2
        proc.wait_for(r"generation 1: drained")
        app.write_bytes(b"not a module")  # in place
        proc.wait_for(r"reload \(watch\) from .*: sha256 \w{12}, 12 bytes, unsigned: refused \(invalid\) after "
                      r"[\d.]+ s: not a valid module")
        assert get(port, "GET", "/") == (200, greeting("v2"))
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0


def test_keygen_sign_and_trust_key_from_the_command_line(tmp_path):
    key = tmp_path / "release.key"
    assert _asyncwasm("keygen", str(key)).returncode == 0
    app = tmp_path / "app.wasm"
    app.write_bytes(variant("v1"))
    assert _asyncwasm("sign", "--key", str(key), str(app)).returncode == 0
    with serve(tmp_path, str(app), "--watch", "--trust-key", f"{key}.pub.pem", "--instances", "1") as proc:
        port = proc.port()
        key_id = proc.wait_for(r"serving .*app\.wasm \(sha256 \w{12}, \d+ bytes, key (\w{16}), compiled once\)")[0][1]
        _publish(app, variant("v2"))  # the old .sig does not sign these bytes
        proc.wait_for(r"refused \(signature\) after [\d.]+ s: the signature does not verify")
        assert get(port, "GET", "/") == (200, greeting("v1"))
        assert _asyncwasm("sign", "--key", str(key), str(app)).returncode == 0  # the .sig changes: checked again
        proc.wait_for(rf"key {key_id}: swapped in")
        assert get(port, "GET", "/") == (200, greeting("v2"))


def test_bad_flags_are_one_line_and_exit_2(tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    app = tmp_path / "app.wasm"
    app.write_bytes(variant("v1"))
    for args, message in [
        ((str(app), "--trust-key", str(garbage)), "garbage.pem: not a PEM public key"),
        ((str(app), "--trust-key", str(tmp_path / "none.pem")), "cannot read the public key"),
        (("--watch",), "--watch need(s) a SOURCE"),
        (("http://127.0.0.1:1/app.wasm", "--watch"), "--watch follows a file"),
        (("https://127.0.0.1:1/app.wasm", "--ca-file", str(garbage)), "not a PEM CA certificate file"),
        (("ftp://example.org/app.wasm",), "only http:// and https:// URLs"),
    ]:
        out = subprocess.run([sys.executable, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0", *args],
                             capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and out.stderr.count("\n") == 1, (args, out.stderr)
    out = _asyncwasm("serve", "--poll", "0")
    assert out.returncode == 2 and "positive number of seconds" in out.stderr


def test_fallback_at_start_and_no_fallback(tmp_path):
    with publisher() as pub:  # nothing published: 404
        url = pub.url("/app.wasm")
        with serve(tmp_path, url, "--poll", "0.2", "--instances", "1") as proc:
            port = proc.port()
            line = proc.wait_for(r"starting on the embedded fallback \(sha256 \w{12}, \d+ bytes, unsigned\): "
                                 r"http://127\.0\.0\.1:\d+/app\.wasm refused \(fetch_failed\): .*HTTP 404")
            assert len(line) == 1
            assert get(port, "GET", "/") == (200, EMBEDDED)
            pub.put("/app.wasm", variant("v1"))
            proc.wait_for(r"reload \(poll\) from .*: sha256 \w{12}, \d+ bytes, unsigned: swapped in")
            assert get(port, "GET", "/") == (200, greeting("v1"))
            assert proc.log.count("refused (fetch_failed)") == 1  # the start line only: repeated polls stay quiet
        with serve(tmp_path, pub.url("/missing.wasm"), "--no-fallback") as proc:
            assert proc.popen.wait(TIMEOUT) == 1
            assert "error: cannot serve http://127.0.0.1" in proc.log and "HTTP 404" in proc.log


def _module_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("asyncwasm-modules-")}


def test_swap_with_two_workers_and_a_rollback(tmp_path):
    before = _module_dirs()
    app = tmp_path / "app.wasm"
    app.write_bytes(variant("v1"))
    with serve(tmp_path, str(app), "--watch", "--workers", "2", "--instances", "2",
               "--metrics", "127.0.0.1:0") as proc:
        port = int(proc.wait_for(r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers")[0].group(1))
        admin = int(proc.wait_for(METRICS)[0].group(1))
        assert get(port, "GET", "/") == (200, greeting("v1"))
        _publish(app, variant("v2"))
        proc.wait_for(r"reload \(watch\) from .*: swapped in [\d.]+ s \(2 workers\)")
        for worker in (0, 1):
            proc.wait_for(rf"worker {worker}: serving .*app\.wasm \(sha256 \w{{12}}, \d+ bytes, unsigned\) "
                          rf"in generation 2")
        for _ in range(6):
            assert get(port, "GET", "/") == (200, greeting("v2"))
        sha2 = hashlib.sha256(variant("v2")).hexdigest()
        values = _metrics(admin)
        assert values[("asyncwasm_module_info", (("sha256", sha2), ("signer", ""), ("source", str(app))))] == 2
        _publish(app, TRAPS)  # compiles, then every instance traps before sock_accept
        proc.wait_for(r"refused \(rolled_back\) after [\d.]+ s: worker \d: generation 3 instance \d trapped")
        for _ in range(6):
            assert get(port, "GET", "/") == (200, greeting("v2"))
        values = _metrics(admin)
        assert values[("asyncwasm_module_reloads_total", (("outcome", "rolled_back"),))] == 1
        assert values[("asyncwasm_module_info", (("sha256", sha2), ("signer", ""), ("source", str(app))))] == 2
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0
        print(proc.log)
    assert _module_dirs() == before  # the supervisor's copies of the versions are gone


class _Clients:
    """Threads sending GET / on keep-alive connections (a new connection
    every ``per_connection`` requests), recording each answer and failure."""

    def __init__(self, port: int, clients: int, per_connection: int = 20) -> None:
        self.port = port
        self.per_connection = per_connection
        self.answers: list[bytes] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _client(self) -> None:
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
            try:
                for _ in range(self.per_connection):
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 200:
                        self.failures.append(f"status {resp.status}")
                    self.answers.append(body)
                    if self.stop.is_set():
                        break
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            finally:
                conn.close()

    def until(self, count: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while len(self.answers) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.answers) >= count, (len(self.answers), self.failures[:3])

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(TIMEOUT)


def test_two_workers_swap_under_keep_alive_load_with_no_failed_request(tmp_path):
    app = tmp_path / "app.wasm"
    app.write_bytes(variant("v1"))
    with serve(tmp_path, str(app), "--workers", "2", "--instances", "2", "--metrics", "127.0.0.1:0") as proc:
        port = int(proc.wait_for(r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers")[0].group(1))
        admin = int(proc.wait_for(METRICS)[0].group(1))
        clients = _Clients(port, clients=6)
        try:
            clients.until(200)
            for tag in ("v2", "v3"):
                app.write_bytes(variant(tag))
                status, body = _post(admin, "/reload")
                assert status == 200 and b"swapped in" in body and b"(2 workers)" in body, body
                seen = len(clients.answers)
                clients.until(seen + 200)
        finally:
            clients.finish()
        assert clients.failures == []
        assert set(clients.answers) == {greeting("v1"), greeting("v2"), greeting("v3")}
        assert get(port, "GET", "/") == (200, greeting("v3"))
        for worker in (0, 1):
            proc.wait_for(rf"worker {worker}: serving .* in generation 3")


def test_https_source_with_ca_file_and_trust_key(tmp_path):
    from .tlscerts import make_pki

    pki = make_pki(tmp_path)
    key = tmp_path / "release.key"
    assert _asyncwasm("keygen", str(key)).returncode == 0
    staged = tmp_path / "app.wasm"

    def publish(tag: str) -> None:  # signed with `asyncwasm sign`, the .sig first
        staged.write_bytes(variant(tag))
        assert _asyncwasm("sign", "--key", str(key), str(staged)).returncode == 0
        pub.put("/app.wasm.sig", (tmp_path / "app.wasm.sig").read_bytes())
        pub.put("/app.wasm", variant(tag))

    with publisher(tls=pki, host="localhost") as pub:
        publish("v1")
        with serve(tmp_path, pub.url("/app.wasm"), "--ca-file", str(pki.ca), "--trust-key", f"{key}.pub.pem",
                   "--poll", "0.2", "--instances", "1") as proc:
            port = proc.port()
            assert get(port, "GET", "/") == (200, greeting("v1"))
            publish("v2")
            proc.wait_for(r"reload \(poll\) from https://localhost:\d+/app\.wasm: sha256 \w{12}, \d+ bytes, "
                          r"key \w{16}: swapped in")
            assert get(port, "GET", "/") == (200, greeting("v2"))
