"""Instances: how fast a compiled module is instantiated, and what each costs.

    python benchmarks/instances.py              the table (about 2 s)
    python benchmarks/instances.py --count 5000 --json

The module is small and typical of a service: one memory (1 page min,
256 max), four globals (i32, i64, f64, and a mutable i32), three active data
segments in the first page, a table with two functions and an `init` export.

It reports:

- instantiate: median microseconds of ``Linker().instantiate(module)``
  (allocate the instance, reserve and commit the memory, apply globals, data
  and elements), the Linker made once. Target: at most 20 us.
- RSS per instance: the growth of the process's resident set over ``--count``
  live instances of one module, divided by the count, minus the linear
  memory each touched (the data segments write one 4 KiB page each; nothing
  else touches memory). Target: at most 150 KiB.

RSS is read from /proc/self/statm (Linux); elsewhere that row is skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # the asyncwasm of this checkout

INSTANTIATE_TARGET_US = 20.0
RSS_TARGET_KIB = 150.0
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# One memory, a few globals and data segments, a small table: what a
# compiled service module declares, without the code.
SMALL_MODULE_WAT = """
(module
  (memory (export "memory") 1 256)
  (global $count (mut i32) (i32.const 0))
  (global i64 (i64.const 0x0123456789abcdef))
  (global f64 (f64.const 3.25))
  (global $base i32 (i32.const 1024))
  (table 2 funcref)
  (elem (i32.const 0) $init $bump)
  (data (i32.const 16) "asyncwasm small module")
  (data (i32.const 256) "\\01\\02\\03\\04\\05\\06\\07\\08")
  (data (i32.const 1024) "a third segment, in the same page")
  (func $init (export "init") (result i32)
    global.get $base i32.load8_u)
  (func $bump (export "bump") (result i32)
    global.get $count i32.const 1 i32.add global.set $count global.get $count))
"""


def small_module_bytes() -> bytes:
    """The module's binary (wasmtime's text parser, a benchmark dependency)."""
    import wasmtime

    return bytes(wasmtime.wat2wasm(SMALL_MODULE_WAT))


def touched_bytes_per_instance() -> int:
    """Linear memory each instance writes on instantiation: the pages the
    data segments cover (all three lie in the first page)."""
    return PAGE


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return None


def time_instantiate(instantiate, reps: int) -> list[float]:
    """Microseconds per instantiate, measured in batches of 100 (timer cost
    and the occasional GC pause averaged out), instances dropped as made."""
    batch = 100
    samples = []
    for _ in range(max(1, reps // batch)):
        t0 = time.perf_counter()
        for _ in range(batch):
            instantiate()
        samples.append((time.perf_counter() - t0) / batch * 1e6)
    return samples


def measure(count: int, reps: int) -> dict:
    import asyncwasm

    data = small_module_bytes()
    module = asyncwasm.Module(data)
    linker = asyncwasm.Linker()
    first = linker.instantiate(module)
    assert first.exports["init"]() == ord("a")  # data segments and globals applied
    assert first.exports["bump"]() == 1
    del first

    results: dict = {"module_bytes": len(data)}
    for _ in range(200):  # warm up allocators and caches
        linker.instantiate(module)
    samples = time_instantiate(lambda: linker.instantiate(module), reps)
    results["instantiate_us"] = statistics.median(samples)
    results["instantiate_us_min"] = min(samples)

    t0 = time.perf_counter()
    asyncwasm.Module(data)
    results["compile_us"] = (time.perf_counter() - t0) * 1e6

    gc.collect()
    before = rss_bytes()
    if before is not None:
        live = [linker.instantiate(module) for _ in range(count)]
        gc.collect()
        after = rss_bytes()
        assert all(inst.exports["init"]() == ord("a") for inst in live[:: max(1, count // 10)])
        growth = (after - before) / count
        results["rss_growth_per_instance_kib"] = growth / 1024
        results["touched_memory_per_instance_kib"] = touched_bytes_per_instance() / 1024
        results["rss_per_instance_kib"] = (growth - touched_bytes_per_instance()) / 1024
        results["instances"] = count
        del live
    return results


def format_table(r: dict) -> str:
    rows = [
        ("instantiate (median of batches)", f"{r['instantiate_us']:.1f} us",
         f"<= {INSTANTIATE_TARGET_US:.0f} us", r["instantiate_us"] <= INSTANTIATE_TARGET_US),
    ]
    if "rss_per_instance_kib" in r:
        rows.append((f"RSS per instance ({r['instances']} live), beyond touched memory",
                     f"{r['rss_per_instance_kib']:.1f} KiB", f"<= {RSS_TARGET_KIB:.0f} KiB",
                     r["rss_per_instance_kib"] <= RSS_TARGET_KIB))
    width = max(len(row[0]) for row in rows)
    lines = [f"{'measure':{width}}  {'value':>12}  {'target':>12}  met", "-" * (width + 34)]
    for name, value, target, met in rows:
        lines.append(f"{name:{width}}  {value:>12}  {target:>12}  {'yes' if met else 'NO'}")
    lines.append("-" * (width + 34))
    extra = f"module {r['module_bytes']} bytes, compiled in {r['compile_us']:.0f} us"
    if "rss_growth_per_instance_kib" in r:
        extra += (f"; raw RSS growth {r['rss_growth_per_instance_kib']:.1f} KiB per instance, of which "
                  f"{r['touched_memory_per_instance_kib']:.0f} KiB is linear memory the data segments touch")
    lines.append(extra)
    if "rss_per_instance_kib" not in r:
        lines.append("RSS: /proc/self/statm not readable here; skipped")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Instantiate time and memory per instance.")
    parser.add_argument("--count", type=int, default=1000, help="live instances for the RSS figure")
    parser.add_argument("--reps", type=int, default=3000, help="instantiations timed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    try:
        results = measure(args.count, args.reps)
    except ImportError as exc:
        print(f"instances: skipped ({exc})")
        return 0
    print(format_table(results))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
