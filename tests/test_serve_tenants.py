"""Lean tenants (issue 11): ``asyncwasm serve --instances N`` under
``ulimit -n 4096`` starts every instance without an fd of its own, is ready
in under 10 s, costs at most 32 KiB of RSS per idle instance beyond the
linear memory it touched, and serves 2,000 concurrent keep-alive
connections without an error.

The default run checks 2,000 instances; the slow one (``python -m pytest
-m slow tests/test_serve_tenants.py -s``) 10,000. ``-s`` shows the figures.
Loopback only; each server is killed at the end whatever happens."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import trio

from asyncwasm.serve.server import DEFAULT_MEMORY_PAGES

ROOT = Path(__file__).resolve().parent.parent
FD_LIMIT = 4096
RESERVATION_KIB = DEFAULT_MEMORY_PAGES * 64  # each linear memory's address space, in smaps' kB
GET = b"GET / HTTP/1.1\r\nHost: tenants\r\n\r\n"
HELLO = b"hello from asyncwasm\n"


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


class Served:
    def __init__(self, popen: subprocess.Popen, log: Path, ready_after: float, port: int) -> None:
        self.popen, self.log, self.ready_after, self.port = popen, log, ready_after, port

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.popen.pid}/fd"))

    def memory_kib(self) -> tuple[int, int, int]:
        """(RSS outside linear memories, RSS of linear memories, linear
        memories seen), from smaps: a linear memory is a read-write
        mapping followed by the PROT_NONE rest of its reservation, the two
        together exactly the default reservation."""
        vmas = []
        with open(f"/proc/{self.popen.pid}/smaps") as f:
            for line in f:
                head = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
                if head:
                    vmas.append([(int(head[2], 16) - int(head[1], 16)) // 1024, head[3], 0])
                elif line.startswith("Rss:"):
                    vmas[-1][2] = int(line.split()[1])
        total = sum(rss for _, _, rss in vmas)
        linear = memories = 0
        for (size, perms, rss), (next_size, next_perms, next_rss) in zip(vmas, vmas[1:]):
            if perms == "rw-p" and next_perms == "---p" and size + next_size == RESERVATION_KIB:
                linear += rss + next_rss
                memories += 1
        return total - linear, linear, memories


@contextlib.contextmanager
def _serve(tmp_path: Path, instances: int) -> Iterator[Served]:
    log = tmp_path / f"serve-{instances}.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        popen = subprocess.Popen([sys.executable, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0",
                                  "--instances", str(instances)], stdout=subprocess.DEVNULL, stderr=out,
                                 cwd=ROOT, preexec_fn=_limit_fds)
    try:
        deadline = start + 60
        while True:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", log.read_text())
            if found:
                break
            assert popen.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        yield Served(popen, log, time.monotonic() - start, int(found[1]))
    finally:
        popen.kill()
        popen.wait(10)


async def _keep_alive_clients(port: int, count: int) -> int:
    """``count`` connections open at once, each with two requests on it (the
    second after every connection got its first answer); the answers that
    were right."""
    good = [0]
    first = [0]
    everyone = trio.Event()

    async def exchange(stream: trio.SocketStream) -> bool:
        await stream.send_all(GET)
        data = b""
        while not data.endswith(HELLO):
            chunk = await stream.receive_some(4096)
            if not chunk:
                return False
            data += chunk
        return data.startswith(b"HTTP/1.1 200 ")

    async def client() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            ok = await exchange(stream)
            first[0] += 1
            if first[0] == count:
                everyone.set()
            await everyone.wait()  # all connections open and answered at once
            if ok and await exchange(stream):
                good[0] += 1

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(client)
    return good[0]


def _check_tenants(tmp_path: Path, instances: int, connections: int) -> None:
    needed = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the clients need {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    with _serve(tmp_path, 1) as one:
        time.sleep(0.5)
        base_other, base_linear, _ = one.memory_kib()
    with _serve(tmp_path, instances) as many:
        time.sleep(0.5)
        fds = many.fds()
        other, linear, memories = many.memory_kib()
        per_instance = (other - base_other) / (instances - 1)
        touched = (linear - base_linear) / (instances - 1)
        print(f"\n{instances} instances under ulimit -n {FD_LIMIT}: ready after {many.ready_after:.2f} s, "
              f"{fds} fds open, {per_instance:.1f} KiB RSS per idle instance beyond its linear memory "
              f"(which touched {touched:.1f} KiB)")
        assert memories == instances
        assert fds < 1000
        assert many.ready_after < 10
        assert per_instance <= 32
        served = trio.run(_keep_alive_clients, many.port, connections)
        assert served == connections
        # Said only when the limit cannot give every instance a connection at once.
        assert ("fd budget:" in many.log.read_text()) == (instances > FD_LIMIT)
        assert many.popen.poll() is None


@pytest.mark.rss
def test_2000_instances_hold_no_fds_and_serve_2000_keep_alive_connections(tmp_path):
    _check_tenants(tmp_path, 2000, 2000)


@pytest.mark.slow
@pytest.mark.rss
def test_10000_instances_under_ulimit_4096(tmp_path):
    _check_tenants(tmp_path, 10_000, 2000)


def test_serve_raises_the_soft_fd_limit_and_says_so(tmp_path):
    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, FD_LIMIT))

    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen([sys.executable, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0",
                                  "--instances", "2"], stdout=subprocess.DEVNULL, stderr=out, cwd=ROOT,
                                 preexec_fn=low_soft_limit)
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in log.read_text():
            assert popen.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        assert f"open-file limit raised from 512 to {FD_LIMIT} (the hard limit)" in log.read_text()
        with open(f"/proc/{popen.pid}/limits") as f:
            assert re.search(rf"Max open files\s+{FD_LIMIT}\s+{FD_LIMIT}", f.read())
    finally:
        popen.kill()
        popen.wait(10)
