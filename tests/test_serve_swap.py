"""Zero-drop swaps (asyncwasm.serve.Server.swap, generations): continuous
keep-alive load from several clients across swaps with no failed request
and every answer wholly from one version; rollback of versions that fail to
start (trap, exit, link error, never ready); the drain deadline. Loopback
only; every test is bounded by trio.fail_after."""

from __future__ import annotations

import h11
import pytest
import trio

from asyncwasm import Module
from asyncwasm.serve import Handoff, Server
from asyncwasm.serve.server import SwapFailed
from asyncwasm.serve.embedded import embedded_module

from .modvariants import greeting, variant
from .test_serve_server import h11_request
from .wat import wat

TIMEOUT = 60


async def _start(nursery: trio.Nursery, module: Module, *, instances: int = 4, drain: float = 30.0,
                 start_timeout: float = 10.0) -> tuple[Server, list[str], int]:
    log: list[str] = []
    handoff = Handoff.bind(["127.0.0.1:0"])
    server = Server(module, handoff, instances=instances, drain=drain, start_timeout=start_timeout,
                    stdout=bytearray(), stderr=bytearray(), log=log.append)
    await nursery.start(server.run)
    return server, log, handoff.addresses()[0][1]


class Load:
    """Clients that each send GET / in a loop on keep-alive connections
    (``per_connection`` requests, then a new connection), recording every
    answer and every failure."""

    def __init__(self, port: int, clients: int, per_connection: int) -> None:
        self.port = port
        self.clients = clients
        self.per_connection = per_connection
        self.answers: list[bytes] = []
        self.failures: list[str] = []
        self.connections: list[set[bytes]] = []  # the bodies seen on each connection
        self.stop = trio.Event()
        self.running = 0

    async def client(self) -> None:
        self.running += 1
        try:
            await self._requests()
        finally:
            self.running -= 1

    async def finish(self) -> None:
        """Stop the clients (each ends its current request) and wait for them."""
        self.stop.set()
        while self.running:
            await trio.sleep(0.01)

    async def _requests(self) -> None:
        while not self.stop.is_set():
            seen: set[bytes] = set()
            self.connections.append(seen)
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            except OSError as exc:
                self.failures.append(f"connect: {exc}")
                continue
            async with stream:
                conn = h11.Connection(h11.CLIENT)
                for _ in range(self.per_connection):
                    try:
                        status, headers, body = await h11_request(stream, conn, "GET", "/")
                    except Exception as exc:  # a dropped connection, a cut answer
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                        break
                    if status != 200 or int(headers["content-length"]) != len(body):
                        self.failures.append(f"status {status}, {body!r}")
                    self.answers.append(body)
                    seen.add(body)
                    if self.stop.is_set():
                        break

    async def run(self, nursery: trio.Nursery) -> None:
        for _ in range(self.clients):
            nursery.start_soon(self.client)

    async def until(self, answers: int) -> None:
        while len(self.answers) < answers:
            await trio.sleep(0.01)


async def test_swaps_under_keep_alive_load_drop_nothing():
    tags = ["v1", "v2", "v3"]
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, Module(variant("v1")), instances=3)
            load = Load(port, clients=6, per_connection=15)
            await load.run(nursery)
            await load.until(100)
            for tag in tags[1:]:
                before = len(load.answers)
                generation = await server.swap(Module(variant(tag)))
                assert server.generation == generation.number
                await load.until(before + 150)
            # after the last swap, a new connection is answered by the last version
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                assert (await h11_request(stream, h11.Connection(h11.CLIENT), "GET", "/"))[2] == greeting("v3")
            await load.finish()
            while len(server.generations) > 1:  # the old ones drain as their clients leave
                await trio.sleep(0.01)
            server.shutdown()
    assert load.failures == [], (load.failures, log)
    versions = {greeting(tag) for tag in tags}
    assert set(load.answers) == versions  # every version answered, and nothing else did
    assert all(len(seen) <= 1 for seen in load.connections)  # a connection stays with one version
    assert server.running == 0 and [g.number for g in server.generations] == [3]
    drained = [line for line in log if "drained" in line]
    assert len(drained) == 2 and all("connection(s) open at the switch), stopped" in line for line in drained)


async def test_connections_accepted_before_the_switch_move_with_it():
    """Connections waiting to be taken when the switch happens go to the
    new generation, none is left behind."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, Module(variant("v1")), instances=1)
            # one client holds the only instance; three more queue up
            held = await trio.open_tcp_stream("127.0.0.1", port)
            conn = h11.Connection(h11.CLIENT)
            assert (await h11_request(held, conn, "GET", "/"))[2] == greeting("v1")
            waiting = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
            for stream in waiting:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await trio.sleep(0.1)
            await server.swap(Module(variant("v2")))
            for stream in waiting:
                answer = b""
                while chunk := await stream.receive_some(4096):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(greeting("v2"))
                await stream.aclose()
            # the held connection still talks to v1 until it closes
            assert (await h11_request(held, conn, "GET", "/"))[2] == greeting("v1")
            await held.aclose()
            while len(server.generations) > 1:
                await trio.sleep(0.01)
            server.shutdown()


EXITS = wat("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))
""")
TRAPS = wat("""
(module (memory (export "memory") 1) (func (export "_start") unreachable))
""")
UNLINKED = wat("""
(module
  (import "wasi_snapshot_preview1" "no_such_function" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")))
""")
# Sleeps in poll_oneoff (a relative clock of an hour), never reaching sock_accept.
SLEEPS = wat("""
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 8) "\\00\\00\\00\\00\\00\\00\\00\\00" "\\00" "\\00\\00\\00\\00\\00\\00\\00"
        "\\01\\00\\00\\00\\00\\00\\00\\00" "\\00\\b0\\8e\\f0\\1b\\03\\00\\00" "\\00\\00\\00\\00\\00\\00\\00\\00"
        "\\00\\00" "\\00\\00\\00\\00\\00\\00")
  (func (export "_start") (drop (call $poll (i32.const 8) (i32.const 128) (i32.const 1) (i32.const 256)))))
""")


@pytest.mark.parametrize("module, reason", [
    (TRAPS, "instance [0-9] trapped: unreachable"), (EXITS, "instance [0-9] exited with status 3"),
    (UNLINKED, "instance [0-9] failed: LinkError: unknown WASI import"),
    (SLEEPS, r"not ready within 0.5 s \(0 of 2 instances"),
], ids=["trap", "exit", "link", "never-ready"])
async def test_a_version_that_does_not_start_is_rolled_back(module, reason):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, embedded_module(), instances=2, start_timeout=0.5)
            load = Load(port, clients=3, per_connection=5)
            await load.run(nursery)
            await load.until(20)
            with pytest.raises(SwapFailed, match=f"generation 2 {reason}"):
                await server.swap(Module(module))
            count = len(load.answers)
            await load.until(count + 20)  # still serving
            assert server.generation == 1 and [g.number for g in server.generations] == [1]
            assert server.running == 2 and server.supervisor.restarts == 0
            await load.finish()
            server.shutdown()
    assert load.failures == []
    assert set(load.answers) == {b"hello from asyncwasm\n"}


async def test_the_drain_deadline_closes_what_is_left():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, Module(variant("v1")), instances=2, drain=0.3)
            idle = await trio.open_tcp_stream("127.0.0.1", port)  # keep-alive, then silent
            conn = h11.Connection(h11.CLIENT)
            assert (await h11_request(idle, conn, "GET", "/"))[2] == greeting("v1")
            await server.swap(Module(variant("v2")))
            start = trio.current_time()
            assert await idle.receive_some(100) == b""  # closed by the drain deadline
            assert 0.25 <= trio.current_time() - start < 5
            while len(server.generations) > 1:
                await trio.sleep(0.01)
            assert any("generation 1: drain time (0.3 s) over: 1 connection(s) closed" in line for line in log)
            server.shutdown()


async def test_a_polling_guest_swaps_too():
    """http_server_poll serves many connections from one instance with
    poll_oneoff over its listener: it is ready once it polls the new
    generation's listener, and the old one stops seeing connections."""
    from .test_serve_server import NETMODS

    poll_server = (NETMODS / "http_server_poll" / "http_server_poll.wasm").read_bytes()
    assert poll_server.count(b"hello from asyncwasm\n") == 1

    def tagged(tag: str) -> Module:
        return Module(poll_server.replace(b"hello from asyncwasm\n", greeting(tag)))

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, tagged("p1"), instances=1)
            load = Load(port, clients=8, per_connection=10)
            await load.run(nursery)
            await load.until(100)
            await server.swap(tagged("p2"))
            count = len(load.answers)
            await load.until(count + 200)
            await load.finish()
            while len(server.generations) > 1:
                await trio.sleep(0.01)
            server.shutdown()
    assert load.failures == []
    assert set(load.answers) == {greeting("p1"), greeting("p2")}
    assert all(len(seen) <= 1 for seen in load.connections)


async def test_a_retired_generation_is_freed_even_when_start_up_was_frozen():
    """``asyncwasm serve`` freezes what start-up made (gc.freeze); the first
    generation's reference cycles must still be collected once it is gone."""
    import gc
    import weakref

    try:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                server, log, port = await _start(nursery, Module(variant("v1")), instances=2, drain=0.1)
                first = weakref.ref(server.generations[0])
                gc.freeze()  # as serve_one does after the start
                await server.swap(Module(variant("v2")))
                while len(server.generations) > 1:
                    await trio.sleep(0.01)
                await trio.sleep(0)
                gc.collect()
                assert first() is None  # collected, not kept in the permanent generation
                server.shutdown()
    finally:
        gc.unfreeze()
