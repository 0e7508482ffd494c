"""Handler mode in production (issue 13's follow-up): TLS in front of the
handlers (stdlib ssl clients on TLS 1.2 and 1.3, an h11 client over
pyOpenSSL, handshake failures counted and logged as socket mode does, SIGHUP
reloading the certificate), ``--workers`` (a worker killed with ``kill -9``
is replaced, requests go on), and ``--metrics`` with handler mode's
families (requests by status class, the duration histogram, instances
running), in process and summed over workers. Certificates are made in the
test. Loopback only; every test is bounded in time and stops by itself."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time

import h11
import pytest
import trio

from asyncwasm.serve import HandlerServer, Route, Router, TlsConfig
from asyncwasm.serve.metrics import (LocalSource, Supervision, add_counters, empty_snapshot, handler_health,
                                     handler_snapshot, render)

from .test_serve_cli import serve as serve_process
from .test_serve_handler import TOUR
from .test_serve_metrics import http_get, parse
from .test_serve_server import h11_request
from .test_serve_tls import _client_session, _open, _peer_name, _PyOpenSSLStream, two_pkis
from .test_serve_workers import _pids
from .tlscerts import make_pki

TIMEOUT = 30
DURATION = "asyncwasm_http_request_duration_seconds"


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


async def _serve_tls(nursery: trio.Nursery, pki, log: list[str], *, handshake_timeout: float = 10.0,
                     min_version: str = "1.2") -> tuple[HandlerServer, int]:
    tls = TlsConfig(str(pki.cert), str(pki.key), handshake_timeout=handshake_timeout, min_version=min_version)
    server = HandlerServer(Router([Route("/...", TOUR, timeout=5.0)]), log=log.append, tls=tls)
    await server.check()
    listeners = await nursery.start(server.serve_tcp, 0, "127.0.0.1")
    return server, listeners[0].socket.getsockname()[1]


def _https(pki, port: int, request: bytes, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> tuple[str, bytes]:
    """(TLS version, whole response) of one request on a new connection (stdlib ssl)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pki.client_context(version=version).wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(request)
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
            return conn.version() or "", reply


def _response(reply: bytes) -> tuple[int, bytes]:
    """Status and body of a whole HTTP/1.1 response (chunked or not)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(reply)
    conn.receive_data(b"")
    status, body = 0, b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
    return status, body


def _environment(reply: bytes) -> dict[str, str]:
    body = _response(reply)[1].decode()
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


async def test_stdlib_clients_reach_handlers_over_tls_1_2_and_1_3_with_https_on(pki):
    log: list[str] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await _serve_tls(nursery, pki, log)
            for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
                got, reply = await trio.to_thread.run_sync(
                    _https, pki, port, b"GET /env?x=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
                    version)
                assert got == name and reply.startswith(b"HTTP/1.1 200 ")
                env = _environment(reply)
                assert env["HTTPS"] == "on" and env["QUERY_STRING"] == "x=1"
                assert env["REMOTE_ADDR"] == "127.0.0.1" and env["SERVER_PORT"] == str(port)
            body = bytes(range(256)) * 1200  # 300 KiB through the guest's stdin and stdout: many records
            _, reply = await trio.to_thread.run_sync(
                _https, pki, port, b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
            assert _response(reply) == (200, body)
            stats = server.statistics()
            assert stats.accepted == 3 and stats.tls_handshakes == 3 and stats.responses == {200: 3}
            server.shutdown()


async def test_h11_client_over_pyopenssl_keeps_its_connection(pki):
    log: list[str] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await _serve_tls(nursery, pki, log)
            stream = _PyOpenSSLStream(await trio.open_tcp_stream("127.0.0.1", port), _client_session(pki))
            await stream.handshake()
            conn = h11.Connection(h11.CLIENT)
            for size in (0, 1, 16_384, 16_385, 100_000):  # record-sized edges, one connection
                body = bytes([size % 251]) * size
                status, _, echoed = await h11_request(stream, conn, "POST", "/echo", body)
                assert (status, echoed) == (200, body)
            await stream.aclose()
            stats = server.statistics()
            assert stats.connections == 1 and stats.requests == 5 and stats.tls_handshakes == 1
            server.shutdown()


async def test_handshake_failures_are_counted_logged_and_never_reach_a_handler(pki):
    log: list[str] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await _serve_tls(nursery, pki, log, handshake_timeout=0.3)
            plain = await trio.open_tcp_stream("127.0.0.1", port)  # plain HTTP to the TLS port
            await plain.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := await plain.receive_some():
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 400 ") and b"https://" in reply
            garbage = await trio.open_tcp_stream("127.0.0.1", port)
            await garbage.send_all(b"\x16\x03\x01\x00\x05hello")  # a broken ClientHello
            silent = await trio.open_tcp_stream("127.0.0.1", port)  # never says anything
            left = await trio.open_tcp_stream("127.0.0.1", port)
            await left.aclose()  # gone before the handshake
            while sum(server.statistics().tls_handshake_failures.values()) < 4:
                await trio.sleep(0.02)
            stats = server.statistics()
            assert stats.tls_handshake_failures == {"plain_http": 1, "protocol": 1, "timeout": 1, "aborted": 1}
            assert stats.tls_handshakes == 0 and stats.accepted == 4
            assert stats.requests == 0 and stats.connections == 0 and stats.instances_running == 0
            assert sum("TLS handshake from 127.0.0.1:" in line for line in log) == 4
            for stream in (plain, garbage, silent):
                await stream.aclose()
            server.shutdown()


async def test_metrics_of_a_handler_server_in_process(pki):
    log: list[str] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await _serve_tls(nursery, pki, log)
            for path in (b"/env", b"/env", b"/status/404", b"/trap"):
                await trio.to_thread.run_sync(
                    _https, pki, port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
            source = LocalSource(server, handler_snapshot, handler_health)
            values = parse(await source.metrics())
            assert values[("asyncwasm_http_requests_total", (("code", "2xx"),))] == 2
            assert values[("asyncwasm_http_requests_total", (("code", "4xx"),))] == 1
            assert values[("asyncwasm_http_requests_total", (("code", "5xx"),))] == 1
            assert values[(f"{DURATION}_count", ())] == 4
            assert values[(f"{DURATION}_bucket", (("le", "+Inf"),))] == 4
            assert 0 < values[(f"{DURATION}_sum", ())] < 20
            assert values[("asyncwasm_instances_running", ())] == 0 and values[("asyncwasm_instances", ())] == 64
            assert values[("asyncwasm_tls_handshakes_total", ())] == 4
            assert values[("asyncwasm_connections_accepted_total", ())] == 4
            assert values[("asyncwasm_fuel_consumed_total", ())] > 0
            assert values[("asyncwasm_host_calls_total", ())] > 0
            assert values[("asyncwasm_sent_bytes_total", ())] == server.counters.bytes_sent > 0
            assert {label for _, labels in values for label, _ in labels} <= {"reason", "code", "le"}
            assert await source.health() == (True, "ok: 1 route(s), 0 instance(s) running")
            server.shutdown()
            assert handler_health(server) == (False, "shutting down")


def test_render_sums_handler_workers_and_their_histograms():
    def sample(ok: int, failed: int, buckets: list[int]) -> dict:
        one = empty_snapshot()
        one.update(http_requests={"1xx": 0, "2xx": ok, "3xx": 0, "4xx": 0, "5xx": failed},
                   http_duration_buckets=buckets, http_duration_sum=0.5 * sum(buckets),
                   http_requests_active=1, http_requests_waiting=2, instances_running=1)
        return one

    width = 14
    live = [sample(3, 1, [4] + [0] * (width - 1)), sample(2, 0, [0, 2] + [0] * (width - 2))]
    dead = empty_snapshot()
    add_counters(dead, sample(10, 0, [0] * (width - 1) + [10]))
    values = parse(render(live, Supervision(workers=2, retired=dead)))
    assert values[("asyncwasm_http_requests_total", (("code", "2xx"),))] == 15  # counters: live + dead
    assert values[("asyncwasm_http_requests_total", (("code", "5xx"),))] == 1
    assert values[("asyncwasm_http_requests_active", ())] == 2  # gauges: live only
    assert values[("asyncwasm_http_requests_waiting", ())] == 4
    assert values[(f"{DURATION}_bucket", (("le", "0.001"),))] == 4  # cumulative buckets
    assert values[(f"{DURATION}_bucket", (("le", "0.0025"),))] == 6
    assert values[(f"{DURATION}_bucket", (("le", "10"),))] == 6
    assert values[(f"{DURATION}_bucket", (("le", "+Inf"),))] == values[(f"{DURATION}_count", ())] == 16
    assert values[(f"{DURATION}_sum", ())] == 8.0
    socket_mode = parse(render([empty_snapshot()], Supervision()))
    assert not any(name.startswith("asyncwasm_http_") for name, _ in socket_mode)  # only in handler mode


def _get(port: int, path: str) -> tuple[int, bytes]:
    return http_get(port, path)


def _ask_env(conn: ssl.SSLSocket) -> dict[str, str]:
    """GET /env on an open keep-alive connection (the answer is chunked)."""
    conn.sendall(b"GET /env HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = b""
    while not reply.endswith(b"\r\n0\r\n\r\n"):
        chunk = conn.recv(65536)
        assert chunk, reply
        reply += chunk
    return _environment(reply)


def test_sighup_reloads_the_certificate_in_handler_mode(tmp_path):
    first, second, cert, key = two_pkis(tmp_path)
    with serve_process(tmp_path, "--handler", TOUR, "--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        port = int(proc.wait_for(r"listening on https://127\.0\.0\.1:(\d+)/")[0].group(1))
        assert "TLS: certificate CN=first" in proc.log
        old = _open(first, port)
        assert _peer_name(old) == "first" and _ask_env(old)["HTTPS"] == "on"
        cert.write_bytes(second.cert.read_bytes())
        key.write_bytes(second.key.read_bytes())
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_for("SIGHUP: TLS reloaded: certificate CN=second")
        with _open(second, port) as new:
            assert _peer_name(new) == "second"
        assert _ask_env(old)["HTTPS"] == "on"  # the open connection keeps its session
        old.close()
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0


def test_workers_serve_handlers_survive_kill_9_and_sum_their_metrics(tmp_path):
    with serve_process(tmp_path, "--handler", TOUR, "--workers", "2", "--metrics", "127.0.0.1:0") as proc:
        found = proc.wait_for(r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers x handler mode, 1 route\(s\)\)")
        port = int(found[0].group(1))
        metrics = int(proc.wait_for(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")[0].group(1))
        for _ in range(20):
            assert _get(port, "/env")[0] == 200
        assert _get(port, "/status/503")[0] == 503
        status, text = http_get(metrics, "/metrics")
        values = parse(text)
        assert status == 200 and values[("asyncwasm_http_requests_total", (("code", "2xx"),))] == 20
        assert values[("asyncwasm_http_requests_total", (("code", "5xx"),))] == 1
        assert values[(f"{DURATION}_count", ())] == 21 and values[("asyncwasm_workers_running", ())] == 2
        assert http_get(metrics, "/healthz") == (200, b"ok: 2 workers, 0 instances running\n")
        victim = _pids(proc.log)[0]
        os.kill(victim, signal.SIGKILL)
        proc.wait_for(r"worker 0: killed by SIGKILL; restarting")
        proc.wait_for(r"worker 0: ready", count=2)
        assert _pids(proc.log)[0] != victim
        deadline = time.monotonic() + TIMEOUT
        while http_get(metrics, "/healthz")[0] != 200:  # both workers up again
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for _ in range(10):
            assert _get(port, "/env")[0] == 200
        values = parse(http_get(metrics, "/metrics")[1])
        # The dead worker's counters are kept: no request is forgotten.
        assert values[("asyncwasm_http_requests_total", (("code", "2xx"),))] >= 30
        assert values[("asyncwasm_worker_restarts_total", ())] == 1
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0
        assert "worker 1: exited with status 0" in proc.log
