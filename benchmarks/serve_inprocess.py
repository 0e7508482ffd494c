"""The serve path measured inside one process: CPU per request, host calls,
suspensions and slices per request, the server's own latency, and
(optionally) a profile.

    python benchmarks/serve_inprocess.py                        # 32 instances of http_server, wrk -c32, 3 s
    python benchmarks/serve_inprocess.py --poll -c 1000         # one http_server_poll instance, 1,000 connections
    python benchmarks/serve_inprocess.py --profile cprofile     # where the time goes (top functions)
    python benchmarks/serve_inprocess.py --rounds 3             # medians
    python benchmarks/serve_inprocess.py --poll -c 1000 --rate 10000   # latency below saturation
    python benchmarks/serve_inprocess.py --requests 100          # exactly 100 paced requests per connection

The server (:class:`asyncwasm.serve.Server` over a :class:`Handoff`) runs in
this process's trio loop; ``wrk`` is a subprocess (``-t1``). CPU per
request is this process's user + system time (``getrusage``) over the
requests wrk counted: the server's own cost, without the load generator's,
whatever else loads the machine. Answer times (``answer_p50_ms``...) are
the server's own latency, measured in the engine: from the kernel's arrival
time of a request to the hand-over of its answer
(:func:`asyncwasm.wasi.fastpath.answer_times`), so a slow or descheduled
load generator does not count; the bucket bounds are 25 % apart. They
still include the server's own waits for a CPU, which ``runqueue_share``
tells (the time its threads were runnable but not running, from
schedstat, over the wall time; ``cpu_share`` is the CPU it used).
``--rate`` makes every wrk connection pause before each request so that
about that many requests per second are offered (below saturation).
``--latency`` adds how late the event loop runs (a trio task sleeping
1 ms, lateness p50/p99). The heap is frozen after start-up, as
``asyncwasm serve`` does.

``--requests N`` replaces wrk with ``paced_client.py``: exactly N requests
per connection, every connection's next one ``--pause`` seconds after the
answers (so each request wakes its instance once: the path of a server
that is not saturated). The work is the same in every run, so instruction
counts compare between builds: run it under callgrind with two values of
N and divide the difference by the difference in requests,

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/serve_inprocess.py --requests 50
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from asyncwasm import Module  # noqa: E402
from asyncwasm.serve.embedded import embedded_module  # noqa: E402
from asyncwasm.serve.handoff import Handoff  # noqa: E402
from asyncwasm.serve.server import Server  # noqa: E402
from asyncwasm.wasi.fastpath import answer_percentile, answer_times  # noqa: E402
from http_load import _WRK_DELAY_LUA, rate_delay_ms  # noqa: E402


def _runqueue_wait() -> float:
    """Seconds this process's threads were ready to run but waited for a CPU (Linux schedstat)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _lateness(samples: list[float], stop: trio.Event) -> None:
    """How late a 1 ms sleep wakes, while the load runs."""
    while not stop.is_set():
        start = trio.current_time()
        await trio.sleep(0.001)
        samples.append(trio.current_time() - start - 0.001)


def _paced(port: int, connections: int, requests: int, pause: float) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "paced_client.py"), str(port), f"-c{connections}",
                          f"-n{requests}", f"--pause={pause}"], capture_output=True, text=True, check=True,
                         timeout=requests * (pause + 1) + 60).stdout
    return {"requests": int(out.split()[-1]), "p99": "-"}


def _wrk(port: int, connections: int, seconds: float, threads: int, rate: float | None) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if rate is not None:
            script.write(_WRK_DELAY_LUA % rate_delay_ms(connections, rate))
            script.flush()
            argv += ["-s", script.name]
        out = subprocess.run(argv + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True,
                             timeout=seconds + 60).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"\n\s+99%\s+(\S+)", out).group(1)
    return {"requests": requests, "p99": p99}


async def _round(args: argparse.Namespace, module: Module) -> dict:
    handoff = Handoff.bind(["127.0.0.1:0"], backlog=max(1024, args.connections))
    port = handoff.addresses()[0][1]
    env = {"HTTP_MAX_CONNS": "4096"} if args.poll else {}
    server = Server(module, handoff, instances=args.instances, env=env, stdout=None, stderr=None)
    profiler = None
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        gc.collect()
        gc.freeze()  # as asyncwasm serve does after start-up
        if args.requests is None:
            await trio.to_thread.run_sync(_wrk, port, args.connections, 1, args.threads, args.rate)  # warm-up
        else:
            await trio.to_thread.run_sync(_paced, port, args.connections, 2, args.pause)
        _, _, calls0 = server.guest_totals()
        stats0 = _counts(server)
        stop = trio.Event()
        lateness: list[float] = []
        if args.latency:
            nursery.start_soon(_lateness, lateness, stop)
        if args.profile == "cprofile":
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        gc0 = sum(g["collections"] for g in gc.get_stats())
        answer_times(True)
        cpu0, wall0, queued0 = _cpu(), time.perf_counter(), _runqueue_wait()
        if args.requests is None:
            wrk = await trio.to_thread.run_sync(_wrk, port, args.connections, args.duration, args.threads,
                                                 args.rate)
        else:
            wrk = await trio.to_thread.run_sync(_paced, port, args.connections, args.requests, args.pause)
        cpu, wall, queued = _cpu() - cpu0, time.perf_counter() - wall0, _runqueue_wait() - queued0
        if profiler is not None:
            profiler.disable()
        answers = answer_times(False)
        stop.set()
        collections = sum(g["collections"] for g in gc.get_stats()) - gc0
        _, _, calls = server.guest_totals()
        stats = _counts(server)
        server.shutdown()
    n = wrk["requests"]
    result = {"requests": n, "rps": n / (wall if args.requests else args.duration), "cpu_us": cpu / n * 1e6, "wall": wall,
              "cpu_share": cpu / wall, "runqueue_share": queued / wall,
              "host_calls": (calls - calls0) / n, "gc_per_1k": collections / n * 1000, "wrk_p99": wrk["p99"]}
    for key in stats:
        result[key] = (stats[key] - stats0[key]) / n
    for fraction in (0.5, 0.99, 0.999):
        result[f"answer_p{fraction * 100:g}_ms"] = answer_percentile(answers, fraction) * 1e3
    if lateness:
        lateness.sort()
        result["late_p50_ms"] = lateness[len(lateness) // 2] * 1e3
        result["late_p99_ms"] = lateness[int(len(lateness) * 0.99)] * 1e3
    if profiler is not None:
        import pstats

        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return result


def _counts(server: Server) -> dict:
    totals = {"suspensions": 0, "slices": 0}
    for generation in server.generations:
        for instance in generation.instances:
            stats = instance.statistics()
            totals["suspensions"] += stats.suspensions
            totals["slices"] += stats.slices
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", action="store_true", help="one instance of netmods' http_server_poll")
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--instances", type=int, default=None, help="default: connections (1 with --poll)")
    parser.add_argument("--duration", "-d", type=float, default=3.0)
    parser.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rate", type=float, default=None, help="offered requests/s (default: as fast as answered)")
    parser.add_argument("--requests", "-n", type=int, default=None,
                        help="paced_client.py instead of wrk: exactly this many requests per connection")
    parser.add_argument("--pause", type=float, default=0.002, help="with --requests: seconds between rounds")
    parser.add_argument("--latency", action="store_true", help="measure the event loop's lateness under load")
    parser.add_argument("--nice", type=int, default=0,
                        help="add this to the process's (and wrk's) nice value first: a negative value (root) "
                             "lets a server on a busy machine wait less for a CPU")
    parser.add_argument("--profile", choices=["cprofile"], default=None)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("needs wrk (apt-get install wrk)")
    if args.nice:
        os.nice(args.nice)
    if args.instances is None:
        args.instances = 1 if args.poll else args.connections
    module = (Module.from_file(ROOT / "netmods" / "http_server_poll" / "http_server_poll.wasm") if args.poll
              else embedded_module())
    load = (f"wrk -t{args.threads} -c{args.connections}, {args.duration:g} s" if args.requests is None
            else f"paced_client -c{args.connections} -n{args.requests} --pause {args.pause:g}")
    print(f"# {'http_server_poll' if args.poll else 'http_server'} x{args.instances}, {load}"
          f"{f', offered {args.rate:g} req/s' if args.rate else ''}, load average {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for _ in range(args.rounds):
        result = trio.run(_round, args, module)
        results.append(result)
        print("  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
              flush=True)
    if args.rounds > 1:
        keys = [k for k, v in results[0].items() if isinstance(v, (int, float))]
        print("median: " + ", ".join(f"{k} {statistics.median(r[k] for r in results):.3g}" for k in keys))
    print(f"# load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
