"""Soak: sustained keep-alive load on served http_server and on
http_server_poll, every response checked, no instance restarted, nothing
leaked. Slow (run with -m slow)."""

from __future__ import annotations

import os
import random

import h11
import pytest
import trio

from asyncwasm.serve import Handoff, Server
from asyncwasm.serve.embedded import embedded_module

from .test_serve_server import h11_request, netmod

pytestmark = pytest.mark.slow
DURATION = 8.0


async def _hammer(port: int, connections: int, seconds: float) -> int:
    done = [0]

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        conn = h11.Connection(h11.CLIENT)
        with trio.move_on_after(seconds):
            while True:
                body = os.urandom(rng.choice((0, 1, 100, 5000, 70_000)))
                status, _, echoed = await h11_request(stream, conn, "POST", "/echo", body)
                assert (status, echoed) == (200, body)
                done[0] += 1
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        for seed in range(connections):
            nursery.start_soon(client, seed)
    return done[0]


@pytest.mark.parametrize("module_name, instances, connections", [
    ("http_server", 64, 64),
    ("http_server_poll", 1, 200),
])
async def test_sustained_load(module_name, instances, connections):
    module = embedded_module() if module_name == "http_server" else netmod(module_name)
    log: list[str] = []
    handoff = Handoff.bind(["127.0.0.1:0"])
    server = Server(module, handoff, instances=instances, env={"HTTP_MAX_CONNS": "4096"},
                    stdout=bytearray(), stderr=bytearray(), log=log.append)
    open_fds = len(os.listdir("/proc/self/fd"))
    with trio.fail_after(DURATION + 30):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            served = await _hammer(handoff.addresses()[0][1], connections, DURATION)
            assert served > connections
            assert server.supervisor.restarts == 0, log
            server.shutdown()
    assert len(os.listdir("/proc/self/fd")) <= open_fds  # listener, connections, instances: all closed
