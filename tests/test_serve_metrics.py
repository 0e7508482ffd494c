"""Metrics and health (asyncwasm.serve.metrics): the Prometheus text summed
over workers, ``/metrics`` checked against the requests made (connections,
bytes each way to the byte, TLS handshakes, restarts by reason), and
``/healthz``. Loopback only; bounded in time."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time

import trio
from prometheus_client.parser import text_string_to_metric_families

from asyncwasm.serve import Handoff, Server
from asyncwasm.serve.embedded import embedded_module
from asyncwasm.serve.metrics import (LocalSource, MetricsEndpoint, Supervision, add_counters, empty_snapshot,
                                     local_health, render, snapshot)

from .test_serve_cli import ROOT, TIMEOUT, serve
from .tlscerts import make_pki
from .wat import wat


def parse(text: bytes) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _sample(**values) -> dict:
    sample = empty_snapshot()
    for key, value in values.items():
        if isinstance(value, dict):
            sample[key].update(value)
        else:
            sample[key] = value
    return sample


def test_render_sums_workers_and_keeps_dead_workers_counters():
    live = [_sample(connections_accepted=10, connections_active=2, instances=4, instances_running=4,
                    received_bytes=1000, instance_restarts={"trap": 1}, tls_handshake_failures={"timeout": 2}),
            _sample(connections_accepted=5, connections_active=1, instances=4, instances_running=3,
                    received_bytes=500, fuel=7)]
    dead = empty_snapshot()
    add_counters(dead, _sample(connections_accepted=100, connections_active=9, instances_running=4,
                               instance_restarts={"trap": 3, "crash": 1}))
    values = parse(render(live, Supervision(workers=2, workers_running=2, worker_restarts=1, retired=dead)))
    assert values[("asyncwasm_connections_accepted_total", ())] == 115  # counters: live + dead
    assert values[("asyncwasm_connections_active", ())] == 3            # gauges: live only
    assert values[("asyncwasm_instances_running", ())] == 7
    assert values[("asyncwasm_instances", ())] == 8
    assert values[("asyncwasm_received_bytes_total", ())] == 1500
    assert values[("asyncwasm_fuel_consumed_total", ())] == 7
    assert values[("asyncwasm_instance_restarts_total", (("reason", "trap"),))] == 4
    assert values[("asyncwasm_instance_restarts_total", (("reason", "crash"),))] == 1
    assert values[("asyncwasm_tls_handshake_failures_total", (("reason", "timeout"),))] == 2
    assert values[("asyncwasm_worker_restarts_total", ())] == 1
    assert values[("asyncwasm_workers", ())] == 2
    assert all(name.startswith("asyncwasm_") for name, _ in values)
    # Small, fixed label sets only (module_info: one series per version served, none here).
    assert {label for _, labels in values for label, _ in labels} == {"reason", "outcome"}


async def test_health_follows_the_server():
    handoff = Handoff.bind(["127.0.0.1:0"])
    server = Server(embedded_module(), handoff, instances=2, stdout=None, stderr=None)
    assert local_health(server) == (False, "no instance running")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            assert local_health(server) == (True, "ok: 2 of 2 instances running")
            server.shutdown()
            assert local_health(server) == (False, "shutting down")


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


async def test_metrics_endpoint_counts_what_clients_did():
    handoff = Handoff.bind(["127.0.0.1:0"])
    server = Server(embedded_module(), handoff, instances=3, stdout=None, stderr=None)
    endpoint = MetricsEndpoint.bind("127.0.0.1:0", LocalSource(server))
    metrics_port = endpoint.sock.getsockname()[1]
    port = handoff.addresses()[0][1]
    sent_total = received_total = 0
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            await nursery.start(endpoint.serve)
            for i in range(5):  # five connections, two requests each, every byte counted
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                for body in (b"", b"x" * (1000 * i)):
                    request = (b"POST /echo HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
                    await stream.send_all(request)
                    sent_total += len(request)
                    reply = b""
                    while not (reply.count(b"\r\n\r\n") and reply.endswith(body) and
                               len(reply) >= reply.index(b"\r\n\r\n") + 4 + len(body)):
                        reply += await stream.receive_some(65536)
                    received_total += len(reply)
                await stream.aclose()
            while server.handoff.statistics()["active"]:  # the instances see the clients leave
                await trio.sleep(0.01)
            status, text = await trio.to_thread.run_sync(http_get, metrics_port, "/metrics")
            assert status == 200
            values = parse(text)
            assert values[("asyncwasm_connections_accepted_total", ())] == 5
            assert values[("asyncwasm_connections_active", ())] == 0
            assert values[("asyncwasm_received_bytes_total", ())] == sent_total
            assert values[("asyncwasm_sent_bytes_total", ())] == received_total
            assert values[("asyncwasm_instances_running", ())] == 3
            assert values[("asyncwasm_host_calls_total", ())] > 20  # accept, recv, send... per request
            assert values[("asyncwasm_fuel_consumed_total", ())] > 10_000
            assert values[("asyncwasm_guest_cpu_seconds_total", ())] > 0
            assert values[("asyncwasm_tls_handshakes_total", ())] == 0
            assert await trio.to_thread.run_sync(http_get, metrics_port, "/healthz") == \
                (200, b"ok: 3 of 3 instances running\n")
            assert (await trio.to_thread.run_sync(http_get, metrics_port, "/nope"))[0] == 404
            assert snapshot(server)["connections_accepted"] == 5
            server.shutdown()
            nursery.cancel_scope.cancel()


# Takes one connection, then traps (the connection closes with the instance).
ACCEPT_THEN_TRAP = wat("""
(module
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $accept (i32.const 3) (i32.const 0) (i32.const 0)))
    unreachable))
""")


def test_command_serves_metrics_with_tls_failures_and_restarts(tmp_path):
    pki = make_pki(tmp_path)
    module = tmp_path / "accept-then-trap.wasm"
    module.write_bytes(ACCEPT_THEN_TRAP)
    with serve(tmp_path, str(module), "--instances", "1", "--restart-delay", "0.01",
               "--tls-cert", str(pki.cert), "--tls-key", str(pki.key), "--metrics", "127.0.0.1:0") as proc:
        metrics_port = int(proc.wait_for(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")[0].group(1))
        port = int(proc.wait_for(r"listening on https://127\.0\.0\.1:(\d+)/")[0].group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert plain.recv(100).startswith(b"HTTP/1.1 400 ")
        for _ in range(2):  # each reaches the instance, which traps
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with pki.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                    assert tls.version() in ("TLSv1.2", "TLSv1.3")
                    assert tls.recv(100) == b""
        proc.wait_for(r"instance 0: trapped", count=2)
        values = parse(http_get(metrics_port, "/metrics")[1])
        assert values[("asyncwasm_tls_handshake_failures_total", (("reason", "plain_http"),))] == 1
        assert values[("asyncwasm_tls_handshakes_total", ())] == 2
        assert values[("asyncwasm_connections_accepted_total", ())] == 3
        assert values[("asyncwasm_instance_restarts_total", (("reason", "trap"),))] == 2
        assert values[("asyncwasm_instance_restarts_total", (("reason", "crash"),))] == 0
        deadline = time.monotonic() + 10  # healthy again once the instance is back
        while http_get(metrics_port, "/healthz")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0


def test_metrics_port_in_use_is_one_line_and_exit_2(tmp_path):
    taken = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{taken.getsockname()[1]}"
    out = subprocess.run([sys.executable, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0", "--metrics", address],
                         capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    taken.close()
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and f"--metrics {address}" in lines[0] and "in use" in lines[0]
