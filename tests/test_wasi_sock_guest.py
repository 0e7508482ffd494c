"""Real guests from netmods/ on the real engine, on loopback: the echo and
HTTP servers on a pre-opened listener (preview1 sockets), and the HTTP
client through WasmEdge's socket extension (linked by signature with
``WasiContext.import_for``). Each test bounds itself with trio.fail_after
and cancels the servers, which are blocked in sock_accept at that point.

The fiber driver is the harness's minimal one; the linking loop below is
what ``Linker`` must do for WASI (see WasiContext's docstring)."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest
import trio

from .guests.harness import _drive, engine_unavailable_reason, load_wasi

wasi = load_wasi()
from asyncwasm.wasi.netpolicy import NetPolicy  # noqa: E402

NETMODS = pathlib.Path(__file__).resolve().parent.parent / "netmods"
TIMEOUT = 10
_reason = engine_unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


def _module_path(name: str) -> pathlib.Path:
    path = NETMODS / name / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{path} not built")
    return path


async def _run(name: str, config: Any) -> int:
    """Instantiate netmods/<name>.wasm with every WASI import resolved by
    signature, run ``_start``, return its exit code."""
    import asyncwasm

    module = asyncwasm.Module.from_file(str(_module_path(name)))
    linker = asyncwasm.Linker()
    with wasi.WasiContext(config) as ctx:
        for imp in module.imports:
            if imp.module == wasi.WASI_MODULE:
                found = ctx.import_for(imp.name, imp.type)
                assert found is not None, f"no WASI function {imp.name}: {imp.type}"
                linker.define_func(wasi.WASI_MODULE, imp.name, *found)
        instance = linker.instantiate(module)
        ctx.bind(instance.exports["memory"])
        try:
            await _drive(instance.exports["_start"])
        except asyncwasm.Exit as exc:
            return exc.code
    return 0


async def _listener() -> trio.socket.SocketType:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def _echo_once(port: int, data: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        received = bytearray()

        async def send() -> None:
            await stream.send_all(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            while len(received) < len(data):
                chunk = await stream.receive_some(65536)
                assert chunk, "server closed early"
                received += chunk
    return bytes(received)


async def test_echo_server_serves_connections_and_is_cancellable_in_accept():
    listener = await _listener()
    port = listener.getsockname()[1]
    stderr = bytearray()
    with listener, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, "echo", wasi.WasiConfig(listeners=[listener], stderr=stderr))
            assert await _echo_once(port, b"hello") == b"hello"
            big = os.urandom(300_000)  # more than one sock_recv/sock_send round
            assert await _echo_once(port, big) == big
            await trio.sleep(0.05)  # the guest is back in a blocking sock_accept
            nursery.cancel_scope.cancel()
    assert stderr == b""


async def test_two_echo_instances_share_a_listener_and_do_not_block_each_other():
    listener = await _listener()
    port = listener.getsockname()[1]
    with listener, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as servers:
            for _ in range(2):
                servers.start_soon(_run, "echo", wasi.WasiConfig(listeners=[listener]))
            first = await trio.open_tcp_stream("127.0.0.1", port)
            second = await trio.open_tcp_stream("127.0.0.1", port)
            async with first, second:  # both connections open at once: one per instance
                await second.send_all(b"two")
                assert await second.receive_some(10) == b"two"
                await first.send_all(b"one")
                assert await first.receive_some(10) == b"one"
            servers.cancel_scope.cancel()


async def test_http_server_answers_on_the_preopened_listener():
    listener = await _listener()
    port = listener.getsockname()[1]
    with listener, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, "http_server", wasi.WasiConfig(listeners=[listener]))
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                response = bytearray()
                while chunk := await stream.receive_some(65536):
                    response += chunk
            assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"hello from asyncwasm\n")
            nursery.cancel_scope.cancel()


async def _http_get(stream: trio.SocketStream, path: bytes) -> bytes:
    """One keep-alive GET; the response up to its Content-Length body."""
    await stream.send_all(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response:
        response += await stream.receive_some(65536)
    head, _, body = response.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head.split(b"\r\n")[0] + b" " + body


async def test_poll_server_serves_many_connections_from_one_instance():
    listener = await _listener()
    port = listener.getsockname()[1]
    with listener, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, "http_server_poll", wasi.WasiConfig(listeners=[listener]))
            streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(5)]
            for round_ in range(3):  # interleaved requests on connections that all stay open
                for stream in reversed(streams) if round_ % 2 else streams:
                    assert await _http_get(stream, b"/") == b"HTTP/1.1 200 OK hello from asyncwasm\n"
            stats = await _http_get(streams[0], b"/stats")
            assert b'"requests":16' in stats and b'"active":5' in stats
            for stream in streams:
                await stream.aclose()
            nursery.cancel_scope.cancel()


async def _one_http_response(listener: trio.socket.SocketType, body: bytes) -> bytes:
    conn, _ = await listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = await conn.recv(4096)
            if not chunk:
                break
            request += chunk
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    return request


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_http_client_uses_the_wasmedge_socket_calls(host):
    listener = await _listener()
    port = listener.getsockname()[1]
    stdout = bytearray()
    policy = NetPolicy(connect=[f"127.0.0.1:{port}"], dns=host == "localhost")
    config = wasi.WasiConfig(argv=["http_client", f"http://{host}:{port}/path"], stdout=stdout, net_policy=policy)
    with listener, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            requests = []

            async def serve() -> None:
                requests.append(await _one_http_response(listener, b"body from the host"))

            nursery.start_soon(serve)
            assert await _run("http_client", config) == 0
    assert stdout == b"body from the host"
    assert requests[0].startswith(b"GET /path HTTP/1.1\r\n")


async def test_http_client_is_stopped_by_the_default_policy():
    listener = await _listener()
    port = listener.getsockname()[1]
    stderr = bytearray()
    config = wasi.WasiConfig(argv=["http_client", f"http://127.0.0.1:{port}/"], stderr=stderr)
    with listener, trio.fail_after(TIMEOUT):
        assert await _run("http_client", config) == 1
    assert b"errno 2 (ACCES)" in stderr, stderr
