#!/usr/bin/env python3
"""Soak: `asyncwasm serve` with 1,000 instances and the poll server under a
mixed load for a long time; every answer checked, memory and fds watched.

    python scripts/soak.py --json soak.json       # the full run: 10 minutes (figures: benchmarks/README.md, "Soak")
    python scripts/soak.py --quick                # about a minute: does everything work?
    python scripts/soak.py --minutes 30 --workers 2 --json soak.json

Two servers run as processes, as users run them: the embedded http_server
(``--instances``, default 1,000) and netmods' http_server_poll (one
instance holding every connection itself), each with ``--workers``. Client
tasks in this process (loopback only) pick actions at random, all the time:

- well-behaved, every answer checked (status and echoed bytes): a
  keep-alive connection making 20 requests (GET /, small POST /echo), a
  fresh connection per request, large POST /echo bodies (256 KiB - 1 MiB);
- deliberately broken, counted apart: a head cut off, a body cut off, a
  reset while the answer streams, a reset before it.

Warm-up first: a linear memory never shrinks, so an instance's RSS is
the high-water mark of what it was asked to hold, and the embedded server
holds a whole body. Every instance is given the largest body (``LARGE``)
twice over fresh connections (the host hands each to the instance that
waited longest, so they go round), then the mixed load runs a settling
tenth of the run (at most a minute) before the RSS baseline is taken.

Every ``--interval`` seconds the RSS and open fds of every process of each
server (the supervisor and its workers, summed) are sampled from /proc.
After the load the servers get a moment to close what the clients left,
then the fds are counted again. Passes (exit 0) when: no well-behaved
request failed, each server's RSS grew less than 5% from the baseline to
the end, its idle fd count after the load is what it was before (within
2), and no instance was restarted. Otherwise exit 1, with the reasons.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import h11
import trio

REPO = Path(__file__).resolve().parents[1]
POLL_SERVER = REPO / "netmods" / "http_server_poll" / "http_server_poll.wasm"
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")

#: What the clients do, and how often (weights).
ACTIONS = {"keep-alive": 30, "fresh": 30, "large": 15,
           "head-cut": 5, "body-cut": 5, "reset-in-response": 8, "reset-before-response": 7}
BROKEN = {"head-cut", "body-cut", "reset-in-response", "reset-before-response"}
#: The largest POST /echo body (the embedded server takes up to 1 MiB).
LARGE = 1 << 20
RSS_GROWTH_LIMIT = 0.05
FD_SLACK = 2
ACTION_TIMEOUT = 60


# -- the servers -----------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a supervisor and its workers)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children[ppid].append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def sample(pid: int) -> tuple[int, int]:
    """(RSS bytes, open fds) summed over ``pid``'s process tree."""
    rss = fds = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as f:
                rss += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            fds += len(os.listdir(f"/proc/{member}/fd"))
        except (OSError, StopIteration):
            continue  # it went away between the listing and the read
    return rss, fds


class Served:
    """One ``asyncwasm serve`` process (and its workers), its port and log."""

    def __init__(self, name: str, args: list[str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen([sys.executable, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0", *args],
                                          stdout=subprocess.DEVNULL, stderr=log, cwd=REPO,
                                          env={**os.environ, "PYTHONPATH": str(REPO)})
        self.port = 0

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (found := LISTENING.search(self.log)):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"soak: {self.name} did not start:\n{self.log}")
            time.sleep(0.1)
        self.port = int(found.group(1))

    def restarts(self) -> int:
        return len(re.findall(r"restarting in", self.log))

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


# -- the clients --------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients did and saw, per server."""

    ok: collections.Counter = field(default_factory=collections.Counter)  # requests answered right, by action
    failed: collections.Counter = field(default_factory=collections.Counter)
    broken: collections.Counter = field(default_factory=collections.Counter)  # deliberately broken, by kind
    errors: list[str] = field(default_factory=list)  # the first failures, described
    latencies: list[float] = field(default_factory=list)  # a sample of well-behaved request times
    bytes_echoed: int = 0

    def fail(self, action: str, why: str) -> None:
        self.failed[action] += 1
        if len(self.errors) < 20:
            self.errors.append(f"{action}: {why}")


async def _request(stream: trio.SocketStream, conn: h11.Connection, method: str, target: str,
                   body: bytes = b"") -> tuple[int, bytes]:
    headers = [("Host", "soak"), ("Content-Length", str(len(body)))]
    data = conn.send(h11.Request(method=method, target=target, headers=headers))
    if body:
        data += conn.send(h11.Data(data=body))
    await stream.send_all(data + conn.send(h11.EndOfMessage()))
    status, received = 0, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            chunk = await stream.receive_some(65536)
            conn.receive_data(chunk)
            if not chunk and conn.their_state is not h11.DONE:
                raise ConnectionError("the server closed the connection mid-answer")
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            received += event.data
        elif isinstance(event, h11.EndOfMessage):
            conn.start_next_cycle()
            return status, bytes(received)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("the server closed the connection")


def _reset(stream: trio.SocketStream) -> None:
    """Close with a RST (SO_LINGER 0), as a client that crashed."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _well_behaved(action: str, port: int, rng: random.Random, tally: Tally) -> None:
    requests = 20 if action == "keep-alive" else 1
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        for i in range(requests):
            if action == "large":
                body = rng.randbytes(rng.randrange(LARGE // 4, LARGE + 1))
            elif i % 2:
                body = rng.randbytes(rng.randrange(0, 4096))
            else:
                body = None
            start = trio.current_time()
            if body is None:
                status, got = await _request(stream, conn, "GET", "/")
                right = status == 200 and got == b"hello from asyncwasm\n"
            else:
                status, got = await _request(stream, conn, "POST", "/echo", body)
                right = status == 200 and got == body
                tally.bytes_echoed += len(body)
            if not right:
                tally.fail(action, f"status {status}, {len(got)} bytes back")
                return
            tally.ok[action] += 1
            if len(tally.latencies) < 200_000:
                tally.latencies.append(trio.current_time() - start)


async def _broken(action: str, port: int, rng: random.Random) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        if action == "head-cut":
            await stream.send_all(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Le")
        elif action == "body-cut":
            await stream.send_all(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n" + bytes(1000))
        elif action == "reset-in-response":
            body = rng.randbytes(512 << 10)
            head = f"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            await stream.send_all(head + body)
            await stream.receive_some(4096)  # the answer has begun
            _reset(stream)
        else:  # reset-before-response
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
            _reset(stream)
        await trio.sleep(rng.random() * 0.05)


async def warm_up(port: int, count: int, clients: int, tally: Tally) -> None:
    """``count`` POST /echo of ``LARGE`` bytes, each on a fresh connection."""
    body = random.Random(0).randbytes(LARGE)
    left = [count]

    async def one_client() -> None:
        while left[0] > 0:
            left[0] -= 1
            try:
                with trio.fail_after(ACTION_TIMEOUT):
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    async with stream:
                        status, got = await _request(stream, h11.Connection(h11.CLIENT), "POST", "/echo", body)
                if (status, got) != (200, body):
                    tally.fail("warm-up", f"status {status}, {len(got)} bytes back")
            except (OSError, trio.BrokenResourceError, trio.TooSlowError, ConnectionError, h11.ProtocolError) as exc:
                tally.fail("warm-up", f"{type(exc).__name__}: {exc}")

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(one_client)


async def client(port: int, seed: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    names, weights = list(ACTIONS), list(ACTIONS.values())
    while trio.current_time() < deadline:
        action = rng.choices(names, weights)[0]
        try:
            with trio.fail_after(ACTION_TIMEOUT):
                if action in BROKEN:
                    await _broken(action, port, rng)
                    tally.broken[action] += 1
                else:
                    await _well_behaved(action, port, rng, tally)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ConnectionError, h11.ProtocolError) as exc:
            if action in BROKEN:
                tally.broken[action] += 1  # what a broken client meets is no failure of the server
            else:
                tally.fail(action, f"{type(exc).__name__}: {exc}")


# -- the run ------------------------------------------------------------------------------------


@dataclass
class ServerFigures:
    name: str
    requests_ok: int = 0
    requests_failed: int = 0
    broken: dict = field(default_factory=dict)
    ok_by_action: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    mib_echoed: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss_warm_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_max_mib: float = 0.0
    rss_growth_pct: float = 0.0
    fds_idle_before: int = 0
    fds_idle_after: int = 0
    fds_max: int = 0
    restarts: int = 0
    exit_status: Optional[int] = None
    samples: list = field(default_factory=list)  # (seconds, rss MiB, fds)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def verdict(figures: list[ServerFigures]) -> list[str]:
    """Why the run failed (empty: it passed)."""
    problems = []
    for f in figures:
        if f.requests_failed:
            problems.append(f"{f.name}: {f.requests_failed} well-behaved requests failed: {f.errors[:3]}")
        if f.requests_ok == 0:
            problems.append(f"{f.name}: no request answered")
        if f.rss_growth_pct >= RSS_GROWTH_LIMIT * 100:
            problems.append(f"{f.name}: RSS grew {f.rss_growth_pct:.1f}% after the warm-up (limit {RSS_GROWTH_LIMIT:.0%})")
        if abs(f.fds_idle_after - f.fds_idle_before) > FD_SLACK:
            problems.append(f"{f.name}: {f.fds_idle_after} fds open when idle after the load, {f.fds_idle_before} before")
        if f.restarts:
            problems.append(f"{f.name}: {f.restarts} instance restarts")
        if f.exit_status not in (0, None):
            problems.append(f"{f.name}: exit status {f.exit_status} after SIGTERM")
    return problems


async def _wait_idle(served: Served, target: int, timeout: float) -> int:
    """The fd count once it is back to ``target`` (or after ``timeout``)."""
    deadline = trio.current_time() + timeout
    while True:
        fds = sample(served.popen.pid)[1]
        if fds <= target + FD_SLACK or trio.current_time() > deadline:
            return fds
        await trio.sleep(0.5)


async def soak(opts: argparse.Namespace, servers: list[Served]) -> list[ServerFigures]:
    figures = [ServerFigures(s.name) for s in servers]
    tallies = [Tally() for _ in servers]
    duration = opts.minutes * 60
    settle = min(60.0, duration / 10)
    await trio.sleep(2)
    for f, s in zip(figures, servers):
        f.fds_idle_before = sample(s.popen.pid)[1]
    began = trio.current_time()
    async with trio.open_nursery() as nursery:
        for s, tally, count in zip(servers, tallies, opts.warm_up):
            nursery.start_soon(warm_up, s.port, count, opts.clients, tally)
    print(f"[warm-up] {sum(opts.warm_up)} bodies of {LARGE >> 20} MiB in {trio.current_time() - began:.0f} s; "
          f"then {settle:.0f} s of load before the RSS baseline", flush=True)
    start = trio.current_time()
    deadline = start + duration
    warm: list[Optional[int]] = [None] * len(servers)

    async def sampler() -> None:
        while trio.current_time() < deadline:
            now = trio.current_time() - start
            for i, (f, s) in enumerate(zip(figures, servers)):
                rss, fds = sample(s.popen.pid)
                f.samples.append((round(now, 1), round(rss / 2**20, 1), fds))
                f.fds_max = max(f.fds_max, fds)
                if warm[i] is None and now >= settle:
                    warm[i] = rss
            await trio.sleep(opts.interval)

    async def progress() -> None:
        while trio.current_time() < deadline:
            await trio.sleep(max(10.0, duration / 20))
            done = trio.current_time() - start
            line = ", ".join(f"{s.name}: {sum(t.ok.values())} ok, {sum(t.failed.values())} failed, "
                             f"{sum(t.broken.values())} broken, RSS {f.samples[-1][1] if f.samples else 0} MiB, "
                             f"{f.samples[-1][2] if f.samples else 0} fds"
                             for s, t, f in zip(servers, tallies, figures))
            print(f"[{done:5.0f} s] {line}", flush=True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sampler)
        nursery.start_soon(progress)
        for i, (s, tally) in enumerate(zip(servers, tallies)):
            for seed in range(opts.clients):
                nursery.start_soon(client, s.port, opts.seed * 10_000 + i * 1000 + seed, deadline, tally)
    for f, s, tally, warm_rss in zip(figures, servers, tallies, warm):
        f.requests_ok, f.requests_failed = sum(tally.ok.values()), sum(tally.failed.values())
        f.broken, f.ok_by_action, f.errors = dict(tally.broken), dict(tally.ok), tally.errors
        f.mib_echoed = round(tally.bytes_echoed / 2**20, 1)
        f.p50_ms = round(_percentile(tally.latencies, 0.5) * 1000, 2)
        f.p99_ms = round(_percentile(tally.latencies, 0.99) * 1000, 2)
        end_rss = f.samples[-1][1] if f.samples else 0.0
        f.rss_warm_mib = round((warm_rss or 0) / 2**20, 1)
        f.rss_end_mib = end_rss
        f.rss_max_mib = max((sample_[1] for sample_ in f.samples), default=0.0)
        f.rss_growth_pct = round((end_rss - f.rss_warm_mib) / f.rss_warm_mib * 100, 2) if f.rss_warm_mib else 0.0
        f.fds_idle_after = await _wait_idle(s, f.fds_idle_before, timeout=30)
    return figures


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--quick", action="store_true",
                        help="a check that everything works: 0.75 minutes, 200 instances, 1 s samples")
    parser.add_argument("--instances", type=int, default=1000, help="instances of the embedded server (default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each server (default 1)")
    parser.add_argument("--clients", type=int, default=24, help="client tasks per server (default 24)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between /proc samples (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the figures (and every sample) to this file")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.minutes, opts.instances, opts.interval = 0.75, min(opts.instances, 200), 1.0
    opts.warm_up = (2 * opts.instances * opts.workers, 4 * opts.clients)  # per server: bodies of LARGE bytes
    common = ["--workers", str(opts.workers), "--max-output-rate", "0"]
    with tempfile.TemporaryDirectory(prefix="asyncwasm-soak-") as tmp:
        servers = [
            Served("http_server", ["--instances", str(opts.instances), *common], Path(tmp)),
            Served("http_server_poll", [str(POLL_SERVER), "--instances", "1", "--max-fds", "4200",
                                        "--env", "HTTP_MAX_CONNS=4096", *common], Path(tmp)),
        ]
        try:
            for s in servers:
                s.wait_listening(timeout=300)
            print(f"soak: {opts.minutes:g} min, seed {opts.seed}, {opts.clients} clients per server, "
                  f"http_server x{opts.instances} on :{servers[0].port}, http_server_poll x1 on :{servers[1].port}, "
                  f"{opts.workers} worker(s) each", flush=True)
            started = time.monotonic()
            figures = trio.run(soak, opts, servers)
            for f, s in zip(figures, servers):
                f.restarts = s.restarts()
                f.exit_status = s.stop()
            elapsed = time.monotonic() - started
        finally:
            for s in servers:
                s.stop()
    for f in figures:
        print(f"{f.name}: {f.requests_ok} requests ok ({f.ok_by_action}), {f.requests_failed} failed, "
              f"{sum(f.broken.values())} deliberately broken ({f.broken}); {f.mib_echoed} MiB echoed; "
              f"p50 {f.p50_ms} ms, p99 {f.p99_ms} ms; RSS {f.rss_warm_mib} MiB after warm-up -> {f.rss_end_mib} MiB "
              f"at the end ({f.rss_growth_pct:+.2f}%, max {f.rss_max_mib}); fds idle {f.fds_idle_before} before, "
              f"{f.fds_idle_after} after, max {f.fds_max} under load; {f.restarts} restarts; exit {f.exit_status}")
    problems = verdict(figures)
    if opts.json:
        Path(opts.json).write_text(json.dumps({"minutes": opts.minutes, "seed": opts.seed, "instances": opts.instances,
                                               "workers": opts.workers, "clients": opts.clients,
                                               "seconds": round(elapsed, 1), "problems": problems,
                                               "servers": [asdict(f) for f in figures]}, indent=1))
    for problem in problems:
        print(f"FAIL {problem}")
    print("soak: passed" if not problems else "soak: failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
