"""Handler mode (CGI, a fresh instance per request) vs a pure trio + h11 server.

    python benchmarks/handler_load.py              # load 5 s per target, in-memory and breakdown
    python benchmarks/handler_load.py --quick      # 2 s per target
    python benchmarks/handler_load.py --rounds 3   # interleaved rounds, medians (noisy machines)
    python benchmarks/handler_load.py --json results/handler.json

Three measurements, each side by side in one run:

1. Load over 127.0.0.1 (benchmarks/http_load.py's generator: ``wrk`` when
   installed, else its trio client; ``concurrency`` keep-alive connections
   sending ``GET /`` back to back): ``asyncwasm serve --handler
   netmods/handlers/minimal.wasm`` against benchmarks/h11_fixed_server.py,
   which answers the same bytes itself. Reports requests/s, p50/p99 and
   server CPU per request. Target: handler >= 0.8x the h11 server.
2. The same two servers on in-memory streams (trio.testing), one process,
   batches of pipelined requests: server CPU per request without the
   kernel, the load generator or other processes in the way.
3. Where the time of one handler request goes, step by step (medians of
   batches): h11 parse and serialize, the CGI environment, renewing the
   WASI context, instantiating, running ``_start`` (with the stdout
   parse), tearing down; and ``RouteRunner.run`` whole, the
   instantiate + run + teardown of a small handler. Target: <= 30 us.

2 and 3 count this process's CPU time (``time.process_time``), not wall
time: on a machine shared with other work, wall time also counts the
time the process waited for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import h11
import trio
import trio.testing

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))   # the asyncwasm of this checkout
sys.path.insert(0, str(HERE))   # http_load, h11_fixed_server

import http_load  # noqa: E402
from http_load import Result  # noqa: E402

MINIMAL = ROOT / "netmods" / "handlers" / "minimal.wasm"
TARGETS = ["handler", "h11"]
RATIO_TARGET = 0.8
RUN_TARGET_US = 30.0
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench/1\r\nAccept: */*\r\n\r\n"
BODY = b"hello from asyncwasm\n"


# -- 1. load over loopback ----------------------------------------------------------------------

def _server_argv(target: str) -> tuple[list[str], str]:
    if target == "handler":
        return ([sys.executable, "-m", "asyncwasm", "serve", "--handler", str(MINIMAL), "--listen", "127.0.0.1:0"],
                r"listening on http://127\.0\.0\.1:(\d+)/")
    return [sys.executable, str(HERE / "h11_fixed_server.py"), "--listen", "127.0.0.1:0"], r"listening on \S+:(\d+)"


def load(target: str, args: argparse.Namespace, tool: str) -> Result:
    argv, pattern = _server_argv(target)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
    with http_load._logged_server(argv, pattern) as port:
        http_load.check_target(port, None)
        return (http_load.run_wrk if tool == "wrk" else http_load.run_trio)(target, port, args)


# -- 2. in memory ---------------------------------------------------------------------------------

async def _pipelined(serve: Callable[[Any], Awaitable[None]], count: int, batch: int) -> float:
    """Seconds per request for ``serve(server_stream)`` answering ``count``
    pipelined requests sent ``batch`` at a time on an in-memory stream."""
    client, server = trio.testing.memory_stream_pair()
    answered = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, server)
        started = time.process_time()
        pending = b""
        while answered < count:
            await client.send_all(REQUEST * batch)
            got = 0
            while got < batch:
                pending += await client.receive_some(1 << 20)
                found = pending.count(BODY)
                got += found
                pending = pending[pending.rfind(BODY) + len(BODY):] if found else pending
            answered += batch
        elapsed = time.process_time() - started
        nursery.cancel_scope.cancel()
    return elapsed / answered


async def in_memory(count: int, rounds: int) -> dict[str, float]:
    import h11_fixed_server

    from asyncwasm.serve import HandlerServer, Route, Router
    from asyncwasm.serve.cgi import ConnInfo

    server = HandlerServer(Router([Route("/...", str(MINIMAL))]))
    await server.check()
    info = ConnInfo(("127.0.0.1", 40000), ("127.0.0.1", 8080))

    async def handler(stream: Any) -> None:
        await server.serve_stream(stream, info)

    samples: dict[str, list[float]] = {"handler": [], "h11": []}
    for _ in range(rounds):  # interleaved
        samples["handler"].append(await _pipelined(handler, count, 16))
        samples["h11"].append(await _pipelined(h11_fixed_server.handle, count, 16))
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


# -- 3. where the time goes ------------------------------------------------------------------------

async def _per_call(step: Callable[[], Any], reps: int, batch: int = 50) -> float:
    """Median microseconds per call of ``step`` (awaited when it returns an awaitable)."""
    samples = []
    for _ in range(max(1, reps // batch)):
        started = time.process_time()
        for _ in range(batch):
            result = step()
            if result is not None:
                await result
        samples.append((time.process_time() - started) / batch * 1e6)
    return statistics.median(samples)


async def breakdown(reps: int) -> dict[str, float]:
    from asyncwasm.serve import Route, Router
    from asyncwasm.serve.cgi import ConnEnviron, ConnInfo, RequestMeta, cgi_environ, split_head
    from asyncwasm.serve.handler import RouteRunner

    runner = RouteRunner(Router([Route("/...", str(MINIMAL))]).routes[0])
    await runner.check()
    request = h11.Request(method="GET", target="/", headers=[("Host", "bench"), ("User-Agent", "bench/1"),
                                                            ("Accept", "*/*")])
    meta = RequestMeta(request.method, request.target, request.headers, request.http_version)
    conn_info = ConnInfo(("127.0.0.1", 40000), ("127.0.0.1", 8080))
    env = cgi_environ(meta, script_name=b"", path_info=b"/", query=b"", conn=conn_info, extra=runner.env)
    out: list[bytes] = []

    def h11_cycle() -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(REQUEST)
        conn.next_event(), conn.next_event()
        conn.send(h11.Response(status_code=200, reason=b"OK", headers=[(b"Date", b"x"), (b"Content-Type", b"text/plain"),
                                                                      (b"Content-Length", b"21")]))
        conn.send(h11.Data(data=BODY)), conn.send(h11.EndOfMessage())

    base = ConnEnviron(conn_info, b"", runner.env)  # made once per connection and route, as the gateway does

    def environ() -> None:
        base.environ(meta.method, meta.target, meta.headers, meta.http_version, False, b"/", b"")

    def parse_output() -> None:
        split_head(b"Content-Type: text/plain\r\nContent-Length: 21\r\n\r\n" + BODY)

    slot = runner._free[-1]
    ctx, shot = slot.ctx, slot.shot

    def renew() -> None:
        ctx.renew(env=env, stdin=b"", stdout=out.append, stderr=None)

    async def run_once() -> None:
        await shot.run(wasi=ctx)

    def teardown() -> None:
        ctx.close()

    async def split_steps(reps_: int) -> dict[str, float]:
        sums = {"renew WASI context": 0.0, "instantiate + run _start + release (OneShot.run)": 0.0,
                "teardown (context close)": 0.0}
        clock = time.thread_time
        for _ in range(reps_):
            t0 = clock()
            renew()
            t1 = clock()
            await run_once()
            t2 = clock()
            teardown()
            t3 = clock()
            for key, value in zip(sums, (t1 - t0, t2 - t1, t3 - t2)):
                sums[key] += value
        return {key: value / reps_ * 1e6 for key, value in sums.items()}

    result = {"h11 parse + serialize": await _per_call(h11_cycle, reps),
              "CGI environment": await _per_call(environ, reps),
              "CGI output parse": await _per_call(parse_output, reps)}
    result["of which: engine instantiate + release"] = await _per_call(shot.check, reps)
    await split_steps(200)  # warm
    result.update(await split_steps(reps))
    result["RouteRunner.run (instantiate + run + teardown)"] = await _per_call(
        lambda: runner.run(env, b"", out.append, None), reps)
    out.clear()
    return result


# -- report ----------------------------------------------------------------------------------------

def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", choices=["auto", "wrk", "trio"], default="auto")
    parser.add_argument("--concurrency", "-c", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--duration", "-d", type=float, default=5.0, help="seconds per target (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians (default 1)")
    parser.add_argument("--quick", action="store_true", help="2 s per target, fewer repetitions")
    parser.add_argument("--skip-load", action="store_true", help="only the in-process measurements")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 0.5
    args.echo = None
    args.instances = None
    args.rate = None  # (http_load.py's --rate: an open-loop load; this one is closed-loop)
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if http_load.shutil.which("wrk") else "trio"
    report: dict[str, Any] = {}

    if not args.skip_load:
        print(f"# 1. load: {tool}, {args.concurrency} keep-alive connections, GET /, {args.duration:g} s per "
              f"target, {os.cpu_count()} CPUs", flush=True)
        rounds: dict[str, list[Result]] = {t: [] for t in TARGETS}
        for number in range(args.rounds):
            for target in TARGETS:
                result = load(target, args, tool)
                print(f"  round {number + 1}: {target}: {result.rps:.0f} req/s, p99 {result.p99_ms:.3f} ms",
                      flush=True)
                rounds[target].append(result)
        results = {t: http_load.median_result(rounds[t]) for t in TARGETS}
        print(f"{'target':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us/req':>11}")
        for r in results.values():
            print(f"{r.target:10} {r.rps:9.0f} {r.p50_ms:8.3f} {r.p99_ms:8.3f} {r.errors:7d} {r.cpu_us_per_request:11.1f}")
        ratio = results["handler"].rps / results["h11"].rps if results["h11"].rps else 0.0
        print(f"target: handler >= {RATIO_TARGET}x h11 req/s: {ratio:.2f}x "
              f"({'met' if ratio >= RATIO_TARGET else 'NOT met'})")
        if results["handler"].cpu_us_per_request:
            print(f"per server CPU-second: handler {results['h11'].cpu_us_per_request / results['handler'].cpu_us_per_request:.2f}x h11")
        report["load"] = {t: r.__dict__ for t, r in results.items()}
        report["load_ratio"] = ratio

    count = 2000 if args.quick else 5000
    memory = trio.run(in_memory, count, 3 if args.quick else 5)
    print(f"\n# 2. in memory: {count} pipelined GET / per round, CPU time per request (median; client included)")
    for name, us in memory.items():
        print(f"  {name:10} {us:8.1f} us  ({1e6 / us:8.0f} req/s on one core)")
    print(f"  handler / h11 throughput: {memory['h11'] / memory['handler']:.2f}x")
    report["in_memory_us"] = memory

    steps = trio.run(breakdown, 1000 if args.quick else 4000)
    print("\n# 3. one handler request, step by step (us, medians)")
    for name, us in steps.items():
        print(f"  {name:48} {us:7.1f}")
    whole = steps["RouteRunner.run (instantiate + run + teardown)"]
    print(f"target: instantiate + run + teardown <= {RUN_TARGET_US:g} us: {whole:.1f} us "
          f"({'met' if whole <= RUN_TARGET_US else 'NOT met'})")
    report["steps_us"] = steps
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
