"""Every benchmark, one after the other: the one command for issue 7's table.

    python benchmarks/all.py            everything (several minutes)
    python benchmarks/all.py --quick    the short versions (about a minute)

Runs, each in its own process so that one failing does not stop the rest:

1. run.py            the seven kernels on native, asyncwasm, pywasm3, wasmtime, python
2. compile_speed.py  compile throughput (first run builds its modules)
3. instances.py      instantiate time and RSS per instance
4. crossings.py      Python <-> guest call costs (when present)
5. http_load.py      requests/second of the hosted HTTP server (when present)
6. handler_load.py   handler mode (an instance per request) vs trio + h11
7. simd.py           the kernels' -msimd128 builds against their scalar builds
8. reload.py         hot reload: publish -> first answer of the new version, req/s during swaps

A benchmark that is not there yet is skipped with a message. Build the
kernels first: python benchmarks/build.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

# (script, arguments for a full run, arguments for --quick)
BENCHMARKS = [
    ("run.py", [], ["--quick"]),
    ("compile_speed.py", [], ["--reps", "3"]),
    ("instances.py", [], []),
    ("crossings.py", [], ["--quick"]),
    ("http_load.py", [], ["--duration", "2", "--warmup", "0.5"]),
    ("handler_load.py", [], ["--quick"]),
    ("simd.py", [], ["--quick"]),
    ("reload.py", [], ["--quick"]),
]


def supports(path: Path, option: str) -> bool:
    """Whether a script (maybe written after this one) takes `option`."""
    return f'"{option}"' in path.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark.")
    parser.add_argument("--quick", action="store_true", help="the short version of each benchmark")
    args = parser.parse_args(argv)
    failed = []
    for script, full, quick in BENCHMARKS:
        path = BENCH_DIR / script
        print(f"\n=== {script} " + "=" * max(0, 60 - len(script)), flush=True)
        if not path.exists():
            print(f"{script}: not present yet; skipped")
            continue
        t0 = time.perf_counter()
        extra = quick if args.quick else full
        if extra and not supports(path, extra[0]):
            extra = []
        rc = subprocess.call([sys.executable, str(path)] + extra)
        print(f"--- {script}: exit {rc}, {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
