"""SIMD builds of the kernels against their scalar builds, on asyncwasm.

    python benchmarks/simd.py                       all kernels, 5 rounds (about two minutes)
    python benchmarks/simd.py --quick               a tenth of the work, 3 rounds
    python benchmarks/simd.py --baseline ../main    also: the scalar builds on another
                                                    checkout's asyncwasm (built in place)

For each kernel, wasm/<name>.wasm (scalar) and wasm/<name>.simd.wasm (the
same source with -msimd128, so clang's loop and SLP vectorizers emit v128
code; build.py makes both) run on this checkout's asyncwasm, in interleaved
rounds; the table shows the median time of each and their ratio. Both must
return the same checksum.

Which kernels did the compiler vectorize? A kernel counts as vectorized when
at least VECTORIZED_SHARE of the Wasm instructions its SIMD build executes
are SIMD instructions. That share is measured, not guessed: the SIMD build
runs once with a cost table that weighs every SIMD instruction 1001 and the
rest 1, and the extra fuel counts the SIMD instructions executed. The
geomean ratio is over the vectorized kernels.

--baseline runs the scalar builds on this checkout and on another checkout
(each in its own subprocess, alternating), to show that scalar code did not
get slower. Times are CPU time of the calling process (time.process_time),
which other load on a shared machine disturbs far less than wall time;
``--stat min`` takes the fastest sample instead of the median, which suits
a busy machine better still.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib

REPO = benchlib.BENCH_DIR.parent
VECTORIZED_SHARE = 0.05
STAT = statistics.median
SIMD_WEIGHT = 1001

# Run in a subprocess by --baseline: time `run(n)` of one module on the
# asyncwasm found first on sys.path (the checkout given as argv[1]).
CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import asyncwasm
run = asyncwasm.Linker().instantiate(asyncwasm.Module(open(sys.argv[2], "rb").read())).exports["run"]
n, reps = int(sys.argv[3]), int(sys.argv[4])
run(n)  # warm up
for _ in range(reps):
    t = time.process_time(); result = run(n); print(time.process_time() - t, result)
"""


def _runner(path: Path):
    import asyncwasm

    return asyncwasm.Linker().instantiate(asyncwasm.Module(path.read_bytes())).exports["run"]


def simd_share(kernel: benchlib.Kernel) -> float:
    """The share of SIMD instructions among those the SIMD build executes at n_quick."""
    import asyncwasm
    from asyncwasm.costs import OPCODES

    weights = asyncwasm.CostTable({name: SIMD_WEIGHT for name, code in OPCODES.items() if code >> 8 == 0xFD})
    used = []
    for costs in (None, weights):
        module = asyncwasm.Module(kernel.wasm_simd.read_bytes(), costs=costs)
        instance = asyncwasm.Linker().instantiate(module, asyncwasm.Limits(fuel=2**62))
        instance.exports["run"](kernel.n_quick)
        used.append(instance.statistics().fuel_used)
    return (used[1] - used[0]) / (SIMD_WEIGHT - 1) / used[0]


def timed(run, n: int) -> tuple[float, int]:
    start = time.process_time()
    result = run(n)
    return time.process_time() - start, result


def scalar_vs_simd(kernels: list[benchlib.Kernel], rounds: int, quick: bool) -> list[dict]:
    rows = []
    for kernel in kernels:
        n = kernel.n_quick if quick else kernel.n
        scalar, simd = _runner(kernel.wasm), _runner(kernel.wasm_simd)
        expected = scalar(n)
        if simd(n) != expected:
            raise SystemExit(f"{kernel.name}: the SIMD build returned {simd(n)}, the scalar build {expected}")
        times: dict[str, list[float]] = {"scalar": [], "simd": []}
        for r in range(rounds):
            for build in (("scalar", "simd") if r % 2 == 0 else ("simd", "scalar")):
                seconds, result = timed(scalar if build == "scalar" else simd, n)
                assert result == expected
                times[build].append(seconds)
        share = simd_share(kernel)
        row = {"kernel": kernel.name, "n": n, "share": share, "vectorized": share >= VECTORIZED_SHARE,
               "scalar": STAT(times["scalar"]), "simd": STAT(times["simd"])}
        row["ratio"] = row["simd"] / row["scalar"]
        rows.append(row)
        print(f"  {kernel.name:10} scalar {row['scalar'] * 1e3:8.1f} ms  simd {row['simd'] * 1e3:8.1f} ms  "
              f"ratio {row['ratio']:.3f}  SIMD share {share:6.1%}{'  (vectorized)' if row['vectorized'] else ''}",
              flush=True)
    return rows


def child_times(checkout: Path, kernel: benchlib.Kernel, n: int, reps: int) -> list[float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(checkout), str(kernel.wasm), str(n), str(reps)],
                         capture_output=True, text=True, check=True, timeout=600).stdout
    return [float(line.split()[0]) for line in out.splitlines()]


def scalar_vs_baseline(kernels: list[benchlib.Kernel], baseline: Path, rounds: int, quick: bool) -> list[float]:
    ratios = []
    for kernel in kernels:
        n = kernel.n_quick if quick else kernel.n
        times: dict[Path, list[float]] = {REPO: [], baseline: []}
        for r in range(rounds):
            for checkout in ((REPO, baseline) if r % 2 == 0 else (baseline, REPO)):
                times[checkout] += child_times(checkout, kernel, n, 2)
        here, there = STAT(times[REPO]), STAT(times[baseline])
        ratios.append(here / there)
        print(f"  {kernel.name:10} this {here * 1e3:8.1f} ms  baseline {there * 1e3:8.1f} ms  "
              f"ratio {here / there:.3f}", flush=True)
    return ratios


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the work, 3 rounds")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, or 3 with --quick)")
    parser.add_argument("--kernels", help="comma-separated kernel names (default: all)")
    parser.add_argument("--stat", choices=("median", "min"), default="median", help="how samples become one time")
    parser.add_argument("--baseline", type=Path, help="another checkout (engine built in place) to compare "
                                                      "the scalar builds with")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    global STAT
    STAT = min if args.stat == "min" else statistics.median
    kernels = benchlib.select_kernels(args.kernels)
    missing = [k.wasm_simd.name for k in kernels if not k.wasm_simd.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run python benchmarks/build.py")
    sys.path.insert(0, str(REPO))

    print(f"SIMD vs scalar builds on asyncwasm ({rounds} rounds, {args.stat} of CPU time):")
    rows = scalar_vs_simd(kernels, rounds, args.quick)
    vectorized = [row["ratio"] for row in rows if row["vectorized"]]
    print(f"geomean SIMD/scalar over the vectorized kernels ({len(vectorized)}): {geomean(vectorized):.3f}; "
          f"over all: {geomean([row['ratio'] for row in rows]):.3f}")
    if args.baseline:
        print(f"\nscalar builds, this checkout vs {args.baseline} ({rounds} rounds of 2 calls, {args.stat}):")
        ratios = scalar_vs_baseline(kernels, args.baseline.resolve(), rounds, args.quick)
        print(f"geomean this/baseline: {geomean(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
