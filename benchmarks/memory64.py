"""memory64 builds of the kernels against their wasm32 builds, on asyncwasm.

    python benchmarks/memory64.py                 all kernels, 5 rounds
    python benchmarks/memory64.py --quick         a tenth of the work, 3 rounds
    python benchmarks/memory64.py --kernels sieve,quicksort --rounds 7
    python benchmarks/memory64.py --callgrind     instructions executed, not time

Each kernel's source is compiled by zig cc (ziglang, a dependency) with
build.py's flags twice: for wasm32 (wasm/<name>.wasm, committed) and for
wasm64-freestanding into build/<name>.wasm64.wasm (64-bit pointers, every
load and store on an i64 address: memory 0's memory64 rows, `_M64`, and
the general `_X` ones, instead of its 32-bit rows). Both run on
this checkout's asyncwasm in interleaved rounds and must return the same
checksum; the table shows the median CPU time of each and their ratio, so
what memory64 costs per kernel is measured, not guessed. ``--callgrind``
counts instead the instructions the interpreter loop executes for each
build at the quick n (compare_builds.py's count): deterministic, for a
busy machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import build
from compare_builds import count_instructions


def wasm64_build(kernel: benchlib.Kernel) -> Path:
    """build/<name>.wasm64.wasm: the kernel compiled for wasm64."""
    benchlib.BUILD_DIR.mkdir(exist_ok=True)
    out = benchlib.BUILD_DIR / f"{kernel.name}.wasm64.wasm"
    flags = [f for f in build.WASM_FLAGS if not f.startswith("--target=")] + ["--target=wasm64-freestanding"]
    build.run_tool(build.zig_cc() + flags + ["-o", str(out), str(kernel.source)])
    return out


def _runner(path: Path):
    import asyncwasm

    return asyncwasm.Linker().instantiate(asyncwasm.Module(path.read_bytes())).exports["run"]


def timed(run, n: int) -> tuple[float, int]:
    start = time.process_time()
    result = run(n)
    return time.process_time() - start, result


def compare(kernels: list[benchlib.Kernel], rounds: int, quick: bool) -> list[float]:
    ratios = []
    for kernel in kernels:
        n = kernel.n_quick if quick else kernel.n
        runs = {"wasm32": _runner(kernel.wasm), "wasm64": _runner(wasm64_build(kernel))}
        expected = runs["wasm32"](n)
        if runs["wasm64"](n) != expected:
            raise SystemExit(f"{kernel.name}: the wasm64 build returned {runs['wasm64'](n)}, the wasm32 build {expected}")
        times: dict[str, list[float]] = {"wasm32": [], "wasm64": []}
        for r in range(rounds):
            for name in (("wasm32", "wasm64") if r % 2 == 0 else ("wasm64", "wasm32")):
                seconds, result = timed(runs[name], n)
                assert result == expected
                times[name].append(seconds)
        t32, t64 = statistics.median(times["wasm32"]), statistics.median(times["wasm64"])
        ratios.append(t64 / t32)
        print(f"  {kernel.name:10} wasm32 {t32 * 1e3:8.1f} ms  wasm64 {t64 * 1e3:8.1f} ms  ratio {t64 / t32:.3f}",
              flush=True)
    return ratios


def count(kernels: list[benchlib.Kernel]) -> list[float]:
    root, ratios = benchlib.BENCH_DIR.parent, []
    with tempfile.TemporaryDirectory() as work:
        for kernel in kernels:
            i32 = count_instructions(root, kernel.name, Path(work))
            i64 = count_instructions(root, kernel.name, Path(work), wasm64_build(kernel))
            ratios.append(i64 / i32)
            print(f"  {kernel.name:10} wasm32 {i32:>15,} Ir  wasm64 {i64:>15,} Ir  ratio {i64 / i32:.3f}", flush=True)
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the work, 3 rounds")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, or 3 with --quick)")
    parser.add_argument("--kernels", help="comma-separated kernel names (default: all)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind) instead of timing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(benchlib.BENCH_DIR.parent))
    kernels = benchlib.select_kernels(args.kernels)
    rounds = args.rounds or (3 if args.quick else 5)
    if args.callgrind:
        print("memory64 vs wasm32 builds, instructions in fiber_run (callgrind, quick n):")
        ratios = count(kernels)
        print(f"  geomean ratio wasm64/wasm32: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
        return 0
    print(f"memory64 vs wasm32 builds, {rounds} rounds{' (quick)' if args.quick else ''}, median CPU time:")
    ratios = compare(kernels, rounds, args.quick)
    print(f"  geomean ratio wasm64/wasm32: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
