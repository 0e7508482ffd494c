"""End-to-end tests of the netmods on 127.0.0.1.

    python -m pytest netmods/tests -q

Every server test runs twice: against the native build (gcc + the POSIX shim
common/wasi_native.c, with ASan/UBSan; the real server loop over real
sockets) and against the committed .wasm hosted by asyncwasm (asynchost.py:
Linker.define_wasi, instantiate_async, call_async on a trio thread). Each server is given a
listening socket on an ephemeral loopback port and is always stopped at the
end of its test. The C unit tests of the HTTP core (common/test_http.c) run
as one test here too.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
NETMODS = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(NETMODS))

import build  # noqa: E402  (netmods/build.py)
from asynchost import AsyncHost  # noqa: E402

HAVE_GCC = shutil.which("gcc") is not None
BACKENDS = ["native", "asyncwasm"]
SERVERS = ["http_server", "http_server_poll"]
HELLO = b"hello from asyncwasm\n"


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory) -> Path:
    if not HAVE_GCC:
        pytest.skip("gcc is needed for the native builds")
    out = tmp_path_factory.mktemp("netmods-native")
    build.build_native(out)
    return out


def wasm_path(module: str) -> Path:
    path = NETMODS / module / f"{module}.wasm"
    if not path.exists():
        pytest.skip(f"{path} is not built (python netmods/build.py)")
    return path


def make_listener(backlog: int = 128) -> socket.socket:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(backlog)
    return ls


_MOVE_TO_FD3 = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.execv(sys.argv[2], [sys.argv[2]])
"""


@dataclass
class Running:
    """A server under test: its port, and how it ended."""
    port: int
    stderr: bytes = b""
    exit_code: int | None = None
    calls: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def serve(backend: str, module: str, native_dir: Path | None, env: dict[str, str] | None = None,
          scan: bool = False) -> Iterator[Running]:
    """Runs a server module on a fresh loopback listener; always stops it.

    scan=True hands the listener over as fd 3 without LISTEN_FD, so the
    server must find it by scanning fds (native backend only).
    """
    env = dict(env or {})
    ls = make_listener()
    running = Running(port=ls.getsockname()[1])
    if backend == "native":
        exe = native_dir / module
        child_env = {"PATH": os.environ.get("PATH", ""), **env}
        fd = ls.fileno()
        if scan:
            # A trampoline moves the listener to fd 3, where a host would put it.
            argv = [sys.executable, "-c", _MOVE_TO_FD3, str(fd), str(exe)]
        else:
            child_env["LISTEN_FD"] = str(fd)
            argv = [str(exe)]
        proc = subprocess.Popen(argv, pass_fds=[fd], env=child_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ls.close()
        try:
            yield running
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            running.stderr = err
            running.exit_code = proc.returncode
    else:
        host = AsyncHost(wasm_path(module), env=env, listener=ls)
        thread = host.start()
        try:
            yield running
        finally:
            host.stop()
            thread.join(timeout=10)
            assert not thread.is_alive(), "the asyncwasm host did not stop"
            ls.close()
            running.stderr = bytes(host.stderr)
            running.exit_code = host.exit_code
            running.calls = host.calls
            if host.error is not None:
                raise AssertionError(f"guest failed: {host.error!r}")


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, shut: bool = False) -> bytes:
    """Sends data on a fresh connection and reads until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def get_stats(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/stats")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    stats = json.loads(resp.read())
    conn.close()
    return stats


# ---------------------------------------------------------------------------
# The HTTP core's C unit tests
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_GCC, reason="gcc is needed")
def test_http_core_unit_tests():
    assert build.main(["--test"]) == 0


def test_committed_wasm_imports_match_the_abi():
    for module in build.MODULES:
        data = wasm_path(module.name).read_bytes()
        assert set(build.wasm_imports(data)) == build.EXPECTED_IMPORTS[module.name]


# ---------------------------------------------------------------------------
# Servers: behaviour over real sockets
# ---------------------------------------------------------------------------

@pytest.fixture
def nd(request):
    """The native build directory, only when the test runs on the native backend."""
    if request.node.callspec.params.get("backend") == "native":
        return request.getfixturevalue("native_dir")
    return None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module", SERVERS)
def test_routes_and_keep_alive(backend, module, nd):
    with serve(backend, module, nd) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, HELLO)

        for size in (0, 1, 1000, 100_000, 1024 * 1024):
            body = os.urandom(size)
            conn.request("POST", "/echo", body=body)
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == body, size

        conn.request("POST", "/echo", body=iter([b"chunk one, ", b"", b"chunk two"]),
                     encode_chunked=True)
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"chunk one, chunk two")

        conn.request("HEAD", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Length") == "21"
        assert resp.read() == b""

        conn.request("GET", "/missing")
        resp = conn.getresponse()
        assert resp.status == 404 and resp.read() == b"not found\n"

        conn.request("GET", "/echo")
        resp = conn.getresponse()
        assert resp.status == 405 and resp.getheader("Allow") == "POST"
        resp.read()

        conn.request("GET", "/stats")
        resp = conn.getresponse()
        stats = json.loads(resp.read())
        # All of the above went over this one connection.
        assert stats == {"requests": 11, "connections": 1, "active": 1, "bad_requests": 0}
        conn.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module", SERVERS)
def test_protocol_errors_end_only_that_connection(backend, module, nd):
    with serve(backend, module, nd) as srv:
        cases = [
            (b"BAD\r\n\r\n", b"HTTP/1.1 400 "),
            (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 "),                  # no Host
            (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", b"HTTP/1.1 400 "),
            (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
             b"HTTP/1.1 400 "),
            (b"GET / HTTP/1.1\r\nHost: x\r\nBig: " + b"a" * 70_000 + b"\r\n\r\n",
             b"HTTP/1.1 431 "),
            (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 300_000,
             b"HTTP/1.1 413 "),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"HTTP/1.1 505 "),
        ]
        for request, status in cases:
            reply = raw_exchange(srv.port, request)
            assert reply.startswith(status), (request[:60], reply[:200])
            assert b"\r\nConnection: close\r\n" in reply

        # Disconnects in the middle of a request.
        for partial in (b"GET / HT", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc"):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.sendall(partial)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"y" * 5000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST on close

        stats = get_stats(srv.port)
        assert stats["bad_requests"] == len(cases)
        assert stats["requests"] == 1
    assert srv.exit_code in (None, -15), srv.stderr   # stopped by us, never exited by itself


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module", SERVERS)
def test_pipelining_and_connection_close(backend, module, nd):
    with serve(backend, module, nd) as srv:
        reply = raw_exchange(srv.port,
                             b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
                             b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"6\r\nsecond\r\n0\r\n\r\n"
                             b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.count(b"HTTP/1.1 ") == 4
        positions = [reply.index(x) for x in (HELLO, b"\r\n\r\nfirst", b"\r\n\r\nsecond",
                                               b"HTTP/1.1 404")]
        assert positions == sorted(positions)

        # HTTP/1.0 closes by default; keep-alive on request.
        reply = raw_exchange(srv.port, b"GET / HTTP/1.0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 ") and b"Connection: close\r\n" in reply
        reply = raw_exchange(srv.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", shut=True)
        assert b"Connection: keep-alive\r\n" in reply and reply.endswith(HELLO)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module", SERVERS)
def test_expect_100_continue(backend, module, nd):
    with serve(backend, module, nd) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 4\r\n\r\n")
            assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(b"data")
            reply = s.recv(1000)
            assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\ndata")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module", SERVERS)
def test_idle_timeout(backend, module, nd):
    with serve(backend, module, nd, env={"HTTP_IDLE_TIMEOUT_MS": "300"}) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as idle:
            start = time.monotonic()
            assert idle.recv(100) == b""                 # closed by the server
            assert 0.2 < time.monotonic() - start < 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_blocking_server_is_serial_and_poll_server_is_not(backend, nd):
    env = {"HTTP_IDLE_TIMEOUT_MS": "1500"}
    for module, may_wait in (("http_server", True), ("http_server_poll", False)):
        with serve(backend, module, nd, env=env) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as idle:
                idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert idle.recv(1000).endswith(HELLO)  # the idle connection is being served
                start = time.monotonic()
                reply = raw_exchange(srv.port, b"GET / HTTP/1.0\r\n\r\n")
                waited = time.monotonic() - start
                assert reply.endswith(HELLO)
                if may_wait:
                    assert waited > 1.0, "served only after the idle connection timed out"
                else:
                    assert waited < 1.0, "served while the other connection stayed open"


@pytest.mark.parametrize("backend", BACKENDS)
def test_poll_server_many_concurrent_connections(backend, nd):
    count = 300
    with serve(backend, "http_server_poll", nd) as srv:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=20) for _ in range(count)]
        try:
            # Interleave: every connection sends half a request, then the rest.
            for i, s in enumerate(socks):
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                          % len(str(i)))
            for i, s in enumerate(socks):
                s.sendall(str(i).encode())
            for i, s in enumerate(socks):
                reply = b""
                while not reply.endswith(b"\r\n\r\n" + str(i).encode()):
                    chunk = s.recv(4096)
                    assert chunk, f"connection {i} closed early: {reply!r}"
                    reply += chunk
            stats = get_stats(srv.port)
            assert stats["active"] == count + 1 and stats["connections"] == count + 1
        finally:
            for s in socks:
                s.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_poll_server_connection_limit(backend, nd):
    with serve(backend, "http_server_poll", nd, env={"HTTP_MAX_CONNS": "3"}) as srv:
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(3)]
        for s in held:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(1000).endswith(HELLO)
        waiting = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        waiting.sendall(b"GET / HTTP/1.0\r\n\r\n")
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(1000)                 # not accepted while 3 are open
        held.pop().close()
        waiting.settimeout(5)
        assert waiting.recv(1000).endswith(HELLO)
        for s in held + [waiting]:
            s.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module", SERVERS)
def test_curl(backend, module, nd, tmp_path):
    with serve(backend, module, nd) as srv:
        url = f"http://127.0.0.1:{srv.port}"
        out = subprocess.run(["curl", "-sS", "--max-time", "10", url + "/"],
                             capture_output=True, check=True)
        assert out.stdout == HELLO
        payload = tmp_path / "payload"
        payload.write_bytes(os.urandom(300_000))
        start = time.monotonic()
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "-H", "Expect: 100-continue",
                              "--data-binary", f"@{payload}", url + "/echo"],
                             capture_output=True, check=True)
        assert out.stdout == payload.read_bytes()
        assert time.monotonic() - start < 0.9, "curl had to wait for a missing 100 Continue"


# ---------------------------------------------------------------------------
# Listener discovery and echo
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_GCC, reason="gcc is needed")
@pytest.mark.parametrize("module", SERVERS)
def test_listener_found_by_scanning_fds(module, native_dir):
    with serve("native", module, native_dir, scan=True) as srv:
        assert raw_exchange(srv.port, b"GET / HTTP/1.0\r\n\r\n").endswith(HELLO)


@pytest.mark.parametrize("module", SERVERS + ["echo"])
def test_no_listener_is_a_clear_error(module):
    host = AsyncHost(wasm_path(module))
    assert host.run() == 2
    assert b"no pre-opened listening socket" in host.stderr
    host = AsyncHost(wasm_path(module), env={"LISTEN_FD": "9"})
    assert host.run() == 2
    assert b"LISTEN_FD" in host.stderr


def test_echo():
    ls = make_listener()
    port = ls.getsockname()[1]
    host = AsyncHost(wasm_path("echo"), env={"LISTEN_FD": "3"}, listener=ls)
    thread = host.start()
    try:
        for size in (1, 5000, 300_000):
            data = os.urandom(size)
            assert raw_exchange(port, data, shut=True) == data
        # A peer that resets mid-stream does not stop the server.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"abc")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        assert raw_exchange(port, b"still here", shut=True) == b"still here"
    finally:
        host.stop()
        thread.join(timeout=10)
        ls.close()
    assert host.error is None and host.exit_code is None


# ---------------------------------------------------------------------------
# http_client
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def canned_server(response: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """Answers each connection with `response` and records the request heads."""
    ls = make_listener()
    requests: list[bytes] = []
    stop = threading.Event()

    def loop():
        ls.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = ls.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                requests.append(head)
                conn.sendall(response)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield ls.getsockname()[1], requests
    finally:
        stop.set()
        thread.join(timeout=5)
        ls.close()


def run_client(backend: str, url: str, native_dir: Path | None) -> tuple[int, bytes, bytes]:
    if backend == "native":
        proc = subprocess.run([str(native_dir / "http_client"), url], capture_output=True,
                              timeout=20)
        return proc.returncode, proc.stdout, proc.stderr
    host = AsyncHost(wasm_path("http_client"), args=["http_client", url])
    code = host.run()
    assert host.error is None, host.error
    return code, bytes(host.stdout), bytes(host.stderr)


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_fetches_bodies(backend, nd):
    body = os.urandom(200_000)
    responses = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, body),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
         b"7;x=y\r\n, world\r\n0\r\nT: v\r\n\r\n", b"hello, world"),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the connection closes", b"until the connection closes"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", b"ok"),
    ]
    for response, expected in responses:
        with canned_server(response) as (port, requests):
            code, out, err = run_client(backend, f"http://127.0.0.1:{port}/a/b?c=d", nd)
            assert (code, out) == (0, expected), err
            head = requests[0]
            assert head.startswith(b"GET /a/b?c=d HTTP/1.1\r\n")
            assert f"\r\nHost: 127.0.0.1:{port}\r\n".encode() in head
            assert b"\r\nConnection: close\r\n" in head


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_errors(backend, nd):
    with canned_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope") as (port, _):
        code, out, err = run_client(backend, f"http://127.0.0.1:{port}/", nd)
        assert (code, out) == (1, b"nope") and b"status 404" in err

    with canned_server(b"HTTP/1.1 2x0 Bad\r\n\r\n") as (port, _):
        code, out, err = run_client(backend, f"http://127.0.0.1:{port}/", nd)
        assert code == 1 and b"bad response" in err

    closed = make_listener()
    port = closed.getsockname()[1]
    closed.close()
    code, out, err = run_client(backend, f"http://127.0.0.1:{port}/", nd)
    assert code == 1 and b"errno 14 (CONNREFUSED)" in err, err

    code, _, err = run_client(backend, "ftp://127.0.0.1/", nd)
    assert code == 2 and b"http://" in err

    code, _, err = run_client(backend, "http://host.invalid/", nd)
    assert code == 1 and b"cannot resolve" in err, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_resolves_host_names(backend, nd):
    with canned_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi") as (port, requests):
        code, out, err = run_client(backend, f"http://localhost:{port}/x", nd)
        assert (code, out) == (0, b"hi"), err
        assert f"\r\nHost: localhost:{port}\r\n".encode() in requests[0]


def test_client_reports_policy_denial():
    host = AsyncHost(wasm_path("http_client"), args=["http_client", "http://10.1.2.3:80/"])
    assert host.run() == 1
    assert b"cannot connect to 10.1.2.3:80: errno 2 (ACCES)" in host.stderr
    assert b"network policy" in host.stderr
    assert host.calls.get("sock_getaddrinfo") is None   # a literal needs no lookup
