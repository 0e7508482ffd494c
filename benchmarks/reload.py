"""Hot reload benchmark: how long a new module version takes to answer, and
what a swap costs the requests in flight.

    python benchmarks/reload.py                 # both modules, 5 rounds, 4 s load windows
    python benchmarks/reload.py --quick         # 3 rounds, 2 s windows
    python benchmarks/reload.py --json results/reload.json

Two modules, each served by ``asyncwasm serve FILE --instances 4`` (a real
process on 127.0.0.1; the load and the probes run here, in trio):

- ``embedded``: netmods' http_server (the embedded module, 22 KB);
- ``20MB``: the same server linked with bigmodule/generate.py's C
  functions, built once with zig at -O0 into build/reload/ (cached), about
  20 MB (a code section of that size; -O0 keeps the one-time build under a
  minute, -O2 would take about ten).

Each version differs in its greeting (the data segment's ``hello from
...``), so an answer says which version served it.

Measures, per module:

- publish -> first answer, ``--watch``: the file is replaced by rename at
  t0; a probe opens a new connection and sends ``GET /`` back to back until
  the new greeting comes back. Includes the watch's stat period (0.1 s)
  and debounce (0.2 s), the read, SHA-256, compile, start of the next
  generation and the switch.
- publish -> first answer, ``POST /reload``: the same with the check
  triggered on the metrics port right after the rename (no watch).
- requests/s during swaps vs steady state: 8 keep-alive clients (a new
  connection every 100 requests, as a load balancer's pool does) send
  ``GET /`` back to back; the steady window, then a window of the same
  length with a swap (POST /reload) every third of it. Every answer is
  checked (status, length, a known greeting); failures are counted and
  must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import trio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the asyncwasm and the tests helpers of this checkout
sys.path.insert(0, str(HERE))

from http_load import _logged_server, percentile  # noqa: E402
from tests.modvariants import greeting, variant  # noqa: E402

BUILD = HERE / "build" / "reload"
NETMODS = ROOT / "netmods"
BIG_FUNCTIONS = 2700  # about 20 MB at -O0
BIG_SEED = 1
HTTP_SOURCES = ["http_server/http_server.c", "common/http.c", "common/http_conn.c", "common/http_app.c",
                "common/netio.c"]
ORIGINAL = b"hello from asyncwasm\n"


def _zig(*args: str) -> list[str]:
    return [sys.executable, "-m", "ziglang", *args]


def build_big() -> bytes:
    """The ~20 MB server module (cached in build/reload/)."""
    out = BUILD / f"big_server_{BIG_FUNCTIONS}.wasm"
    if out.exists():
        return out.read_bytes()
    BUILD.mkdir(parents=True, exist_ok=True)
    print(f"building the 20 MB server ({BIG_FUNCTIONS} generated functions, zig -O0; under a minute) ...",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "generated.c"
        subprocess.run([sys.executable, str(HERE / "bigmodule" / "generate.py"), str(generated),
                        "--count", str(BIG_FUNCTIONS), "--seed", str(BIG_SEED)], check=True)
        flags = ["--target=wasm32-wasi", "-O0", "-g0", "-Wno-tautological-bitwise-compare",
                 "-Wno-tautological-compare"]
        obj = Path(tmp) / "generated.o"
        subprocess.run(_zig("cc", *flags, "-std=c11", "-c", "-o", str(obj), str(generated)), check=True)
        subprocess.run(_zig("cc", *flags, "-Wl,--strip-debug", "-Wl,--export=generated_functions",
                            "-o", str(out), *[str(NETMODS / s) for s in HTTP_SOURCES], str(obj)), check=True)
    data = out.read_bytes()
    assert data.count(ORIGINAL) == 1, "the greeting must appear once to make versions"
    return data


def make_variant(base: bytes, tag: str) -> bytes:
    return base.replace(ORIGINAL, greeting(tag))


# -- clients ---------------------------------------------------------------------------------


async def _get(stream: trio.SocketStream, buf: bytes) -> tuple[bytes, bytes]:
    """Send GET / on ``stream``; (body, what was read beyond it)."""
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionResetError("closed before the answer")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise ValueError(f"status {head[:20]!r}")
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    while len(rest) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionResetError("closed in the body")
        rest += chunk
    return rest[:length], rest[length:]


async def first_answer(port: int, expected: bytes, t0: float, timeout: float = 120) -> float:
    """Seconds from ``t0`` (perf_counter) to the first new connection answered with ``expected``."""
    with trio.fail_after(timeout):
        while True:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                body, _ = await _get(stream, b"")
            if body == expected:
                return time.perf_counter() - t0


class Load:
    """Keep-alive clients; ``counting`` switches the tally on."""

    def __init__(self, port: int, clients: int, per_connection: int, known: set[bytes]) -> None:
        self.port = port
        self.clients = clients
        self.per_connection = per_connection
        self.known = known
        self.count = 0
        self.failures: list[str] = []
        self.counting = False

    async def client(self) -> None:
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            except OSError as exc:
                self.failures.append(f"connect: {exc}")
                await trio.sleep(0.01)
                continue
            async with stream:
                buf = b""
                for _ in range(self.per_connection):
                    try:
                        body, buf = await _get(stream, buf)
                    except (OSError, ValueError, trio.BrokenResourceError) as exc:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                        break
                    if body not in self.known:
                        self.failures.append(f"unexpected body {body!r}")
                    if self.counting:
                        self.count += 1

    async def window(self, seconds: float) -> float:
        """Requests/s over ``seconds``."""
        start_count, start = self.count, time.perf_counter()
        self.counting = True
        await trio.sleep(seconds)
        return (self.count - start_count) / (time.perf_counter() - start)


async def _post_reload(admin: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", admin)
    async with stream:
        await stream.send_all(b"POST /reload HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
        out = b""
        while chunk := await stream.receive_some(65536):
            out += chunk
    if not out.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"POST /reload: {out!r}")
    return out


def _publish(path: Path, data: bytes) -> float:
    """Replace ``path`` by rename (staged first, outside the timing); t0."""
    staged = path.with_name(path.name + ".staged")
    staged.write_bytes(data)
    t0 = time.perf_counter()
    os.replace(staged, path)
    return t0


def _serve(path: Path, *flags: str):
    return _logged_server([sys.executable, "-m", "asyncwasm", "serve", str(path), "--listen", "127.0.0.1:0",
                           "--instances", "4", "--drain", "5", *flags],
                          r"listening on http://127\.0\.0\.1:(\d+)/")



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(name: str, base: bytes, rounds: int, window: float, directory: Path) -> dict[str, Any]:
    path = directory / f"{name}.wasm"
    tags = [f"{name[:3]}{i}" for i in range(rounds * 3 + 8)]
    path.write_bytes(make_variant(base, tags[0]))
    used = iter(tags[1:])
    result: dict[str, Any] = {"module": name, "size": len(base)}

    with _serve(path, "--watch") as port:
        latencies = []
        for _ in range(rounds):
            tag = next(used)
            t0 = _publish(path, make_variant(base, tag))
            latencies.append(trio.run(first_answer, port, greeting(tag), t0))
        result["watch_s"] = latencies

    admin = _free_port()
    with _serve(path, "--metrics", f"127.0.0.1:{admin}") as port:
        latencies = []

        async def trigger(tag: str) -> float:
            t0 = _publish(path, make_variant(base, tag))
            await _post_reload(admin)
            return await first_answer(port, greeting(tag), t0)

        for _ in range(rounds):
            latencies.append(trio.run(trigger, next(used)))
        result["post_reload_s"] = latencies

        async def load_phase() -> tuple[float, float, list[str], int]:
            load = Load(port, clients=8, per_connection=100, known={greeting(t) for t in tags})
            async with trio.open_nursery() as nursery:
                for _ in range(load.clients):
                    nursery.start_soon(load.client)
                await trio.sleep(0.5)  # warm-up
                steady = await load.window(window)
                swaps = 0

                async def swapper() -> None:
                    nonlocal swaps
                    for _ in range(3):
                        await trio.sleep(window / 3 - 0.05)
                        staged = make_variant(base, next(used))
                        path.write_bytes(staged)
                        await _post_reload(admin)
                        swaps += 1

                nursery.start_soon(swapper)
                during = await load.window(window)
                nursery.cancel_scope.cancel()
            return steady, during, load.failures, swaps

        steady, during, failures, swaps = trio.run(load_phase)
        result.update(steady_rps=steady, swap_rps=during, failures=len(failures), swaps=swaps,
                      failure_examples=failures[:3])
    return result


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, 2 s windows")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--modules", default="embedded,20MB")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.window = 3, 2.0
    from asyncwasm.serve.embedded import embedded_bytes

    bases = {"embedded": embedded_bytes}
    bases["20MB"] = build_big
    results = []
    directory = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    try:
        for name in args.modules.split(","):
            results.append(measure(name, bases[name](), args.rounds, args.window, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{'module':>9} {'size':>10} {'watch: publish->answer':>24} {'POST /reload: ->answer':>24} "
          f"{'steady req/s':>13} {'during swaps':>13} {'ratio':>6} {'failed':>7}")
    for r in results:
        def span(values: list[float]) -> str:
            return f"{statistics.median(values) * 1e3:7.0f} ms ({min(values) * 1e3:.0f}-{max(values) * 1e3:.0f})"

        print(f"{r['module']:>9} {r['size']:>10} {span(r['watch_s']):>24} {span(r['post_reload_s']):>24} "
              f"{r['steady_rps']:>13.0f} {r['swap_rps']:>13.0f} {r['swap_rps'] / r['steady_rps']:>6.2f} "
              f"{r['failures']:>7}")
    print(f"(medians of {args.rounds} rounds, min-max in brackets; load: 8 keep-alive clients, "
          f"{args.window:g} s windows, 3 swaps in the second)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
