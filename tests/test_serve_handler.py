"""Handler mode end to end (issue 13): HandlerServer on 127.0.0.1 answering
real clients with handlers written in C (netmods/handlers/cgi_tour.c), Zig
(zig_hello.zig) and Lua (a script run by Lua 5.4 built for wasm32-wasi).

Covers request propagation (method, path, query, headers, body, chunked
uploads), keep-alive and pipelining, streamed responses (100 MB in constant
memory, a slow client pausing the guest), every error status, the
concurrency limit, slowloris, local and client redirects, stderr logging,
the access log and graceful shutdown. Every test is bounded by
trio.fail_after and stops by itself; timeouts are short so they run fast."""

from __future__ import annotations

import io
import os
import pathlib
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Optional

import h11
import pytest
import trio

from asyncwasm.serve import HandlerServer, Route, Router
from asyncwasm.serve.access_log import AccessLog
from asyncwasm.serve.http_conn import HttpLimits
from asyncwasm.wasi.config import Preopen

HANDLERS = pathlib.Path(__file__).resolve().parent.parent / "netmods" / "handlers"
TOUR = str(HANDLERS / "cgi_tour.wasm")
ZIG = str(HANDLERS / "zig_hello.wasm")
LUA = str(HANDLERS / "lua" / "lua.wasm")
LUA_APP = Preopen(str(HANDLERS / "lua" / "app"), "/app", True)
TIMEOUT = 30


def _routes(**overrides: Route) -> list[Route]:
    routes = {
        "c": Route("/c/...", TOUR, env={"ROUTE_ENV": "from the route"}, timeout=5.0),
        "zig": Route("/zig/...", ZIG),
        "lua": Route("/lua/...", LUA, argv=["lua", "/app/handler.lua"], dirs=[LUA_APP]),
        "fuel": Route("/fuel/...", TOUR, fuel=2_000_000),
        "slow": Route("/slow/...", TOUR, timeout=0.3),
        "one": Route("/one/...", TOUR, max_concurrency=1, max_queue=1, timeout=5.0),
    }
    routes.update(overrides)
    return list(routes.values())


class Served:
    def __init__(self, server: HandlerServer, port: int, log: list[str], access: io.StringIO,
                 nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.server = server
        self.port = port
        self.log = log
        self.access = access

    async def connect(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.port)


async def _serve(nursery: trio.Nursery, routes: Optional[list[Route]] = None, *, log_format: str = "combined",
                 grace: float = 5.0, **limits: float) -> Served:
    log: list[str] = []
    access = io.StringIO()
    server = HandlerServer(Router(routes or _routes()), limits=HttpLimits(**limits),  # type: ignore[arg-type]
                           access_log=AccessLog(access, log_format), log=log.append, grace=grace)
    await server.check()
    listeners = await nursery.start(server.serve_tcp, 0, "127.0.0.1")
    return Served(server, listeners[0].socket.getsockname()[1], log, access, nursery)


@asynccontextmanager
async def _serving(routes: Optional[list[Route]] = None, **kw: Any) -> AsyncIterator[Served]:
    """A server on 127.0.0.1 for one test (bounded by TIMEOUT), shut down after."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            served = await _serve(nursery, routes, **kw)
            yield served
            served.server.shutdown()


class Client:
    """An h11 client on one connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, method: str, target: str, body: bytes = b"", headers: Optional[list] = None,
                   chunks: Optional[list[bytes]] = None) -> None:
        headers = [("Host", "test.example"), *(headers or [])]
        if chunks is not None:
            headers.append(("Transfer-Encoding", "chunked"))
        elif body or method in ("POST", "PUT"):
            headers.append(("Content-Length", str(len(body))))
        out = self.conn.send(h11.Request(method=method, target=target, headers=headers))
        for chunk in chunks if chunks is not None else [body] if body else []:
            out += self.conn.send(h11.Data(data=chunk))
        out += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(out)

    async def receive(self) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = 0, {}, bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                return status, headers, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("the server closed the connection")
            else:
                raise AssertionError(f"unexpected {event!r}")

    def expect(self, method: str, target: str) -> None:
        """Note a request sent raw (pipelined) so :meth:`receive` can read its answer."""
        self.conn.send(h11.Request(method=method, target=target, headers=[("Host", "t")]))
        self.conn.send(h11.EndOfMessage())

    async def request(self, method: str, target: str, body: bytes = b"", **kw) -> tuple[int, dict[str, str], bytes]:
        await self.send(method, target, body, **kw)
        return await self.receive()


async def _get(served: Served, target: str, method: str = "GET", body: bytes = b"", **kw):
    stream = await served.connect()
    async with stream:
        return await Client(stream).request(method, target, body, **kw)


async def _raw(served: Served, data: bytes, *, limit: float = 5.0) -> bytes:
    """Send ``data``, read until the server closes (at most ``limit`` s)."""
    stream = await served.connect()
    received = bytearray()
    async with stream:
        await stream.send_all(data)
        with trio.move_on_after(limit):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return bytes(received)


def _env_lines(body: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.decode().splitlines())


# -- propagation ------------------------------------------------------------------------


async def test_c_handler_sees_method_path_query_and_headers():
    async with _serving() as served:
        status, headers, body = await _get(served, "/c/env?a=1&b=%20two", method="DELETE",
                                           headers=[("X-Trace", "abc"), ("User-Agent", "t/1")])
        env = _env_lines(body)
        assert status == 200 and headers["content-type"] == "text/plain"
        assert env["REQUEST_METHOD"] == "DELETE"
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/c", "/env")
        assert env["QUERY_STRING"] == "a=1&b=%20two"
        assert env["HTTP_X_TRACE"] == "abc" and env["HTTP_USER_AGENT"] == "t/1"
        assert env["HTTP_HOST"] == "test.example" and env["SERVER_NAME"] == "test.example"
        assert env["SERVER_PORT"] == str(served.port) and env["REMOTE_ADDR"] == "127.0.0.1"
        assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert env["ROUTE_ENV"] == "from the route" and "HTTPS" not in env
        # decoded and normalised before routing: /c/x/../%65nv is /c/env
        status, _, body = await _get(served, "/c/x/../%65nv")
        assert status == 200 and _env_lines(body)["PATH_INFO"] == "/env"


async def test_requests_on_one_connection_see_only_their_own_environment():
    routes = _routes(other=Route("/other/...", TOUR, env={"OTHER": "1"}))
    async with _serving(routes) as served:
        stream = await served.connect()
        async with stream:
            client = Client(stream)
            _, _, body = await client.request("POST", "/c/env?first=1", b"abc",
                                              headers=[("X-Trace", "abc"), ("Content-Type", "text/x")])
            first = _env_lines(body)
            assert first["HTTP_X_TRACE"] == "abc" and first["CONTENT_LENGTH"] == "3"
            assert first["QUERY_STRING"] == "first=1" and first["ROUTE_ENV"] == "from the route"
            _, _, body = await client.request("GET", "/other/env")  # another route, same connection
            other = _env_lines(body)
            assert (other["SCRIPT_NAME"], other["PATH_INFO"], other["OTHER"]) == ("/other", "/env", "1")
            assert "ROUTE_ENV" not in other and "HTTP_X_TRACE" not in other
            _, _, body = await client.request("GET", "/c/env")
            second = _env_lines(body)
        assert "HTTP_X_TRACE" not in second and "CONTENT_LENGTH" not in second and "CONTENT_TYPE" not in second
        assert (second["REQUEST_METHOD"], second["QUERY_STRING"], second["SCRIPT_NAME"]) == ("GET", "", "/c")
        assert second["REMOTE_PORT"] == first["REMOTE_PORT"] and second["ROUTE_ENV"] == "from the route"
        assert len(body.splitlines()) == len(_env_lines(body))  # every variable once


async def test_request_body_streams_to_stdin_and_back():
    async with _serving() as served:
        payload = os.urandom(300_000)
        status, headers, body = await _get(served, "/c/echo", "POST", payload,
                                           headers=[("Content-Type", "application/x-test")])
        assert status == 200 and body == payload
        assert headers["content-type"] == "application/x-test"
        assert headers["transfer-encoding"] == "chunked"  # the handler set no Content-Length


async def test_chunked_upload():
    async with _serving() as served:
        chunks = [b"a" * 1000, b"bc" * 5000, os.urandom(70_000)]
        whole = b"".join(chunks)
        status, _, body = await _get(served, "/c/count", "POST", chunks=chunks)
        assert status == 200
        assert body == f"{len(whole)} {sum(whole) & 0xFFFFFFFF}\n".encode()
        status, _, body = await _get(served, "/c/env", "POST", chunks=[b"x"])
        assert "CONTENT_LENGTH" not in _env_lines(body)  # unknown: stdin to its end


async def test_zig_handler():
    async with _serving() as served:
        status, headers, body = await _get(served, "/zig/some/where?q=1", "PUT", b"first line\nsecond\n")
        assert status == 200 and headers["x-handler"] == "zig"
        assert body == b"zig PUT /zig|/some/where?q=1\nbody 18 bytes, first line: first line\n"
        status, _, _ = await _get(served, "/zig/fail")
        assert status == 500
        assert any("exited with status 7" in line for line in served.log)


async def test_lua_interpreter_runs_a_script_as_the_handler():
    async with _serving() as served:
        status, headers, body = await _get(served, "/lua/items?b=2&a=x%20y", "POST", b"one two  three\n")
        assert status == 200 and headers["x-handler"] == "lua"
        assert headers["content-length"] == str(len(body))
        assert body == (b"lua Lua 5.4 POST /lua/items\nquery a=x y b=2\nbody 15 bytes, 3 words\n")
        status, _, _ = await _get(served, "/lua/error")
        assert status == 500
        assert any("[" in line and "/lua/...: lua: /app/handler.lua" in line and "asked to fail" in line
                   for line in served.log)


async def test_lua_handler_catches_an_error_with_pcall_and_answers():
    async with _serving() as served:
        stream = await served.connect()
        async with stream:
            await stream.send_all(b"POST /lua/caught?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
                                  b"Connection: close\r\n\r\n")
            await trio.sleep(0.2)  # the guest waits for the body in io.read, inside pcall's Wasm try
            await stream.send_all(b"still read")
            received = bytearray()
            while chunk := await stream.receive_some(65536):
                received += chunk
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"x-handler: lua" in head.lower()
        assert body == (b"lua Lua 5.4 POST /lua/caught\nquery x=1\nbody 10 bytes, 2 words\n"
                        b"caught false /app/handler.lua:30: attempt to index a nil value (local 'missing')\n")
        assert not any("/lua/..." in line for line in served.log)  # nothing on stderr
        # The same instance slot then fails uncaught: 500, the message and Lua's traceback in the log.
        status, _, _ = await _get(served, "/lua/error")
        assert status == 500
        assert any("/lua/...: lua: /app/handler.lua:26: asked to fail" in line for line in served.log)
        assert any("/lua/...: stack traceback:" in line for line in served.log)


# -- connections ----------------------------------------------------------------------------


async def test_keep_alive_and_pipelining_answer_in_order():
    async with _serving() as served:
        stream = await served.connect()
        async with stream:
            client = Client(stream)
            assert (await client.request("GET", "/c/status/201"))[0] == 201
            assert (await client.request("GET", "/zig/x"))[0] == 200  # same connection
            # three requests in one write; the answers come back in order
            requests = b"".join(
                b"GET /c/status/%d HTTP/1.1\r\nHost: t\r\n\r\n" % code for code in (202, 203, 207))
            await stream.send_all(requests)
            for code in (202, 203, 207):
                client.expect("GET", f"/c/status/{code}")
                status, _, body = await client.receive()
                assert status == code and body == b"status %d\n" % code
        assert served.server.statistics().connections == 1


async def test_an_idle_keep_alive_connection_closes_after_the_idle_timeout():
    async with _serving(idle_timeout=0.3) as served:
        stream = await served.connect()
        async with stream:
            client = Client(stream)
            assert (await client.request("GET", "/c/status/200"))[0] == 200
            started = trio.current_time()
            assert await stream.receive_some(100) == b""  # closed without a word
            assert 0.2 < trio.current_time() - started < 3.0


async def test_http10_head_and_expect_continue():
    async with _serving() as served:
        raw = await _raw(served, b"GET /c/length HTTP/1.0\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\nhello world\n")
        status, headers, body = await _get(served, "/c/length", "HEAD")
        assert status == 200 and body == b"" and headers["content-length"] == "12"
        stream = await served.connect()
        async with stream:
            await stream.send_all(b"POST /c/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                                  b"Expect: 100-continue\r\n\r\n")
            data = await stream.receive_some(1000)
            assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
            await stream.send_all(b"12345")
            while not data.endswith(b"0\r\n\r\n"):
                data += await stream.receive_some(1000)
            final = data.split(b"\r\n\r\n", 1)[1]
            assert final.startswith(b"HTTP/1.1 200 ") and b"\r\n5\r\n12345\r\n" in final


# -- streamed responses -------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.rss
async def test_100_mb_streamed_response_in_constant_memory():
    size = 100 * 1024 * 1024
    async with _serving() as served:
        peak = [0]

        async def watch() -> None:
            while True:
                peak[0] = max(peak[0], _rss())
                await trio.sleep(0.01)

        stream = await served.connect()
        async with stream:
            await stream.send_all(b"GET /c/stream/%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
            before = _rss()
            served.nursery.start_soon(watch)
            received = 0
            tail = b""
            head = b""
            while not tail.endswith(b"\r\n0\r\n\r\n"):
                chunk = await stream.receive_some(1 << 20)
                assert chunk
                if not head:
                    head = chunk[:200]
                received += len(chunk)
                tail = (tail + chunk)[-16:]
        assert head.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding: chunked" in head
        assert received > size
        growth = peak[0] - before
        assert growth < 40 * 1024 * 1024, f"RSS grew {growth / 2**20:.1f} MiB while streaming 100 MiB"
        served.nursery.cancel_scope.cancel()


async def test_a_slow_client_pauses_the_guest():
    async with _serving() as served:
        size = 64 * 1024 * 1024
        stream = await served.connect()
        async with stream:
            await stream.send_all(b"GET /c/stream/%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
            await trio.sleep(0.5)  # not reading: the socket buffers fill, then the guest waits
            sent = served.server.statistics().bytes_sent
            await trio.sleep(0.3)
            assert served.server.statistics().bytes_sent == sent < 16 * 1024 * 1024
            assert served.server.statistics().instances_running == 1
            received = 0
            while received < size:
                received += len(await stream.receive_some(1 << 20))


async def test_output_is_sent_as_the_guest_writes_it():
    async with _serving() as served:
        stream = await served.connect()
        async with stream:
            await stream.send_all(b"GET /c/head-then-sleep/600 HTTP/1.1\r\nHost: t\r\n\r\n")
            started = trio.current_time()
            first = b""
            while b"first\n" not in first:
                first += await stream.receive_some(1000)
            assert trio.current_time() - started < 0.5  # before the guest's sleep ends
            rest = b""
            while not rest.endswith(b"0\r\n\r\n"):
                rest += await stream.receive_some(1000)
            assert b"second\n" in rest


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target, status, logged", [
    ("/c/trap", 500, "trapped: unreachable"),
    ("/c/exit/3", 500, "exited with status 3"),
    ("/c/bad", 500, "without a colon"),
    ("/c/nohead", 500, "before the empty line"),
    ("/c/silent", 500, "wrote nothing"),
    ("/fuel/spin", 503, "fuel exhausted"),
    ("/slow/spin", 504, "timeout"),
    ("/slow/sleep/2000", 504, "timeout"),
    ("/nowhere", 404, None),
])
async def test_handler_failures_and_statuses(target, status, logged):
    async with _serving() as served:
        stream = await served.connect()
        async with stream:
            client = Client(stream)
            got, headers, body = await client.request("GET", target)
            assert got == status and body.startswith(b"%d " % status)
            # a failing handler never affects the next request, even on the same connection
            assert (await client.request("GET", "/c/status/200"))[0] == 200
        if logged is not None:
            assert any(logged in line for line in served.log), served.log


async def test_a_failure_after_the_head_closes_the_connection():
    async with _serving() as served:
        raw = await _raw(served, b"GET /c/late-trap HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 ") and b"part of a body" in raw
        assert not raw.endswith(b"0\r\n\r\n")  # truncated: no last chunk
        assert any("after the response began" in line for line in served.log)


async def test_a_body_shorter_than_its_content_length_closes_the_connection():
    async with _serving() as served:
        raw = await _raw(served, b"GET /c/short-length HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\nshort")
        assert any("Too little data" in line and "closing the connection" in line for line in served.log)


async def test_malformed_http_oversized_head_and_bodies():
    async with _serving(max_header_bytes=4096, max_body_bytes=100_000) as served:
        raw = await _raw(served, b"GET / HTTP/1.1\r\nHost: t\r\nbad header\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in raw
        raw = await _raw(served, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 431 ")
        raw = await _raw(served, b"POST /c/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 413 ")
        stream = await served.connect()
        async with stream:
            client = Client(stream)
            status, headers, _ = await client.request("POST", "/c/count", chunks=[b"x" * 60_000] * 3)
            assert status == 413 and headers["connection"] == "close"
        raw = await _raw(served, b"GET /c/env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")  # still serving
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert served.server.statistics().bad_requests == 2


async def test_slowloris_gets_408_and_holds_no_instance():
    async with _serving(read_timeout=0.6) as served:
        stream = await served.connect()
        answered_after: list[float] = []
        answer = b""

        async def drip() -> None:  # one byte every 0.1 s (every second in real life)
            for byte in b"GET /c/env HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"x" * 100:
                assert served.server.statistics().instances_running == 0
                try:
                    await stream.send_all(bytes([byte]))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                await trio.sleep(0.1)

        async with stream:
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip)
                try:
                    while chunk := await stream.receive_some(1000):
                        answered_after.append(trio.current_time() - started)
                        answer += chunk
                except trio.BrokenResourceError:
                    pass
                nursery.cancel_scope.cancel()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert 0.5 < answered_after[0] < 3.0
        assert served.server.statistics().requests == 0  # never reached a handler
        assert served.server.statistics().timeouts == 1


async def test_a_stalled_body_gets_408():
    async with _serving(read_timeout=0.3) as served:
        raw = await _raw(served, b"POST /c/count HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        assert raw.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in raw
        assert served.server.statistics().instances_running == 0


async def test_concurrency_limit_queue_then_503():
    async with _serving() as served:  # /one/: max_concurrency=1, max_queue=1
        results: dict[str, tuple] = {}

        async def fetch(name: str, target: str) -> None:
            results[name] = await _get(served, target)

        served.nursery.start_soon(fetch, "first", "/one/sleep/600")
        await trio.sleep(0.2)
        served.nursery.start_soon(fetch, "queued", "/one/status/202")
        await trio.sleep(0.1)
        assert served.server.statistics().requests_waiting == 1
        status, headers, _ = await _get(served, "/one/status/203")
        assert status == 503 and headers["retry-after"] == "1"
        while len(results) < 2:
            await trio.sleep(0.05)
        assert results["first"][0] == 200 and results["queued"][0] == 202


# -- redirects, logs ------------------------------------------------------------------------------


async def test_local_and_client_redirects():
    async with _serving() as served:
        status, _, body = await _get(served, "/c/local", "POST", b"ignored")
        env = _env_lines(body)
        assert status == 200 and env["QUERY_STRING"] == "from=local"
        assert env["REQUEST_METHOD"] == "GET" and env["PATH_INFO"] == "/env"
        status, headers, _ = await _get(served, "/c/client")
        assert status == 302 and headers["location"] == "https://example.org/moved"


async def test_stderr_lines_and_access_log():
    async with _serving() as served:
        assert (await _get(served, "/c/stderr", headers=[("Referer", "http://r/"), ("User-Agent", "ua/2")]))[0] == 200
        lines = [line for line in served.log if "/c/...:" in line]
        assert [line.split(": ", 1)[1] for line in lines] == ["line one", "line two", "partial line three",
                                                              "?[2Jescape"]
        assert lines[0].startswith("[") and len({line.split("]")[0] for line in lines}) == 1
        served.server.shutdown()  # the line is written once the response is out: wait for the end
        await served.server.stopped.wait()
        access = served.access.getvalue().splitlines()
        assert len(access) == 1
        assert access[0].startswith("127.0.0.1 - - [")
        assert access[0].endswith('"GET /c/stderr HTTP/1.1" 200 7 "http://r/" "ua/2"')


async def test_graceful_shutdown_lets_requests_finish():
    async with _serving() as served:
        idle = await served.connect()
        result: list = []

        async def slow() -> None:
            result.append(await _get(served, "/c/sleep/400"))

        served.nursery.start_soon(slow)
        await trio.sleep(0.2)
        served.server.shutdown()
        assert await idle.receive_some(100) == b""  # the idle connection closes at once
        await served.server.stopped.wait()
        assert result and result[0][0] == 200 and result[0][1]["connection"] == "close"
        with pytest.raises(OSError):
            await served.connect()
        await idle.aclose()


class _Layer(trio.abc.Stream):
    """Stands in for a TLS stream: passes bytes through, has a transport_stream."""

    def __init__(self, transport_stream: trio.SocketStream) -> None:
        self.transport_stream = transport_stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.transport_stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.transport_stream.aclose()


async def test_a_wrapped_stream_is_https_and_keeps_its_addresses():
    async with _serving() as served:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def accept_one() -> None:
            stream = await listeners[0].accept()
            await served.server.serve_stream(_Layer(stream))

        served.nursery.start_soon(accept_one)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        async with client:
            status, _, body = await Client(client).request("GET", "/c/env")
        env = _env_lines(body)
        assert status == 200 and env["HTTPS"] == "on"
        assert env["REMOTE_ADDR"] == "127.0.0.1" and env["SERVER_PORT"] == str(port)
        await listeners[0].aclose()
