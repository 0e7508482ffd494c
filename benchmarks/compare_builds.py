"""The kernels on two builds of asyncwasm, side by side: this checkout and
another git ref (built in a temporary directory), to check that a change
costs the kernels nothing.

    python benchmarks/compare_builds.py                 this checkout vs main, full n, 7 rounds
    python benchmarks/compare_builds.py --ref HEAD~3 --quick --rounds 5
    python benchmarks/compare_builds.py --kernels fib,sha256 --rounds 11
    python benchmarks/compare_builds.py --callgrind      # instructions executed, not time

Both builds are the same release build (setup.py, in place). Each round
runs, in a fresh subprocess per build, every kernel once (after one untimed
warm-up call); the order of the two builds alternates between rounds, so
drift in the machine's speed hits both. The table shows, per kernel, the
ratio this/other of the medians and of the minimums (below 1.00: this
checkout is faster; on a shared machine the minimum, the run least
disturbed by other work, is the steadier of the two), and the spread of
the per-round ratios.

On a machine too busy for timings to mean anything, ``--callgrind`` counts
instead the machine instructions the interpreter loop (fiber_run, with
what is inlined into it) executes for each kernel at its quick n, under
valgrind's callgrind: deterministic, so one run per build suffices. It does not see
cache or branch-prediction effects; compare timings when the machine is
quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import io
from pathlib import Path

import benchlib

REPO = benchlib.BENCH_DIR.parent

# Runs in each build's subprocess: time every kernel once after a warm-up.
WORKER = r"""
import gc, json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import asyncwasm, benchlib
assert asyncwasm.__file__.startswith(sys.argv[1]), asyncwasm.__file__
times = {}
for name in sys.argv[4].split(","):
    kernel = benchlib.KERNELS[name]
    n = kernel.n_quick if sys.argv[3] == "quick" else kernel.n
    run = asyncwasm.Linker().instantiate(asyncwasm.Module(kernel.wasm.read_bytes())).exports["run"]
    run(kernel.n_quick)
    gc.collect(); gc.disable()
    start = time.perf_counter()
    checksum = run(n)
    times[name] = [time.perf_counter() - start, checksum]
    gc.enable()
print(json.dumps(times))
"""


def build_ref(ref: str, into: Path) -> Path:
    """Export `ref` of this repository into `into` and build its engine there."""
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=into, check=True,
                   capture_output=True)  # fmt: skip
    return into


def run_round(root: Path, quick: bool, kernels: list[str]) -> dict[str, list]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(root), str(benchlib.BENCH_DIR), "quick" if quick else "full",
         ",".join(kernels)],
        capture_output=True, text=True, check=True, env=env, cwd=root,
    )  # fmt: skip
    return json.loads(out.stdout)


def count_instructions(root: Path, kernel: str, work: Path, wasm: Path | None = None) -> int:
    """Instructions fiber_run itself executes (with what the compiler inlined
    into it; without the C library's, such as realloc's, which vary with the
    heap's layout) for one quick run of `kernel` (its build `wasm`, else
    the committed one)."""
    out = work / f"{root.name}-{kernel}-{(wasm or Path('wasm')).name}.callgrind"
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same heap layout every time
    env.pop("PYTHONPATH", None)
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--toggle-collect=fiber_run", f"--callgrind-out-file={out}",
         sys.executable, "-c", WORKER_ONCE, str(root), str(benchlib.BENCH_DIR), kernel, str(wasm or "")],
        capture_output=True, text=True, check=True, env=env, cwd=root,
    )  # fmt: skip
    report = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(out)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    # callgrind splits fiber_run by the source file of each line (interp.c,
    # the interp_*.inc fragments, opcodes.def for the handlers its macros
    # expand, ops_numeric.h): the count is the sum of those entries.
    counts = [int(line.split()[0].replace(",", "")) for line in report.splitlines()
              if line.rstrip().endswith(":fiber_run") or ":fiber_run " in line]
    if not counts:
        raise RuntimeError(f"no count for fiber_run in {out}:\n{report}")
    return sum(counts)


# One uninterrupted quick run of one kernel (for callgrind: no warm-up).
WORKER_ONCE = r"""
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import asyncwasm, benchlib
kernel = benchlib.KERNELS[sys.argv[3]]
wasm = sys.argv[4] or kernel.wasm
run = asyncwasm.Linker().instantiate(asyncwasm.Module(open(wasm, "rb").read())).exports["run"]
print(run(kernel.n_quick))
"""


def compare_instructions(ref: str, builds: dict[str, Path], kernels: list[str], work: Path) -> None:
    print(f"{'kernel':<10} {'this (Ir)':>15} {ref + ' (Ir)':>15} {'this/' + ref:>10}")
    ratios = []
    for name in kernels:
        this, other = (count_instructions(builds[b], name, work) for b in ("this", ref))
        ratios.append(this / other)
        print(f"{name:<10} {this:>15,} {other:>15,} {this / other:>10.4f}", flush=True)
    print(f"{'geomean':<10} {'':>15} {'':>15} {statistics.geometric_mean(ratios):>10.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="the git ref to compare with (default main)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="each kernel at n_quick (a tenth of the work)")
    parser.add_argument("--kernels", default=",".join(benchlib.KERNELS))
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind) instead of timing")
    args = parser.parse_args(argv)
    kernels = args.kernels.split(",")
    with tempfile.TemporaryDirectory(prefix="asyncwasm-ref-") as tmp:
        print(f"building {args.ref} in {tmp} ...", file=sys.stderr, flush=True)
        other = build_ref(args.ref, Path(tmp) / "ref")
        builds = {"this": REPO, args.ref: other}
        if args.callgrind:
            compare_instructions(args.ref, builds, kernels, Path(tmp))
            return 0
        samples: dict[str, dict[str, list[float]]] = {b: {k: [] for k in kernels} for b in builds}
        for r in range(args.rounds):
            order = list(builds) if r % 2 == 0 else list(reversed(builds))
            checksums = {}
            for build in order:
                for name, (seconds, checksum) in run_round(builds[build], args.quick, kernels).items():
                    samples[build][name].append(seconds)
                    if checksums.setdefault(name, checksum) != checksum:
                        raise SystemExit(f"{name}: the two builds disagree ({checksums[name]} != {checksum})")
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    this, ref = samples["this"], samples[args.ref]
    print(f"{'kernel':<10} {'this min (s)':>13} {args.ref + ' min (s)':>13} {'ratio of mins':>14} "
          f"{'ratio of medians':>17} {'per-round range':>17}")  # fmt: skip
    by_min, by_median = [], []
    for name in kernels:
        a, b = min(this[name]), min(ref[name])
        median = statistics.median(this[name]) / statistics.median(ref[name])
        per_round = sorted(x / y for x, y in zip(this[name], ref[name]))
        by_min.append(a / b)
        by_median.append(median)
        print(f"{name:<10} {a:>13.4f} {b:>13.4f} {a / b:>14.3f} {median:>17.3f} "
              f"{per_round[0]:>8.3f}..{per_round[-1]:<7.3f}")  # fmt: skip
    print(f"{'geomean':<10} {'':>13} {'':>13} {statistics.geometric_mean(by_min):>14.3f} "
          f"{statistics.geometric_mean(by_median):>17.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
