"""Compile throughput: how fast asyncwasm turns module bytes into a Module.

    python benchmarks/compile_speed.py             build (cached) and measure
    python benchmarks/compile_speed.py --reps 9 --json

Builds two modules with zig for wasm32-wasi, into build/compile_speed/
(cached; rebuilt when a source, the generator or the zig version changes):

- realworld.wasm: real library code. bigmodule/app.cpp (a log analyser on
  libc++: regex, iostreams, locale, containers) and bigmodule/libc_table.c
  (a broad slice of wasi-libc/musl: stdio, strtod, regex, time, libm).
- large.wasm: realworld plus the seven benchmark kernels plus
  bigmodule/generate.py's deterministic C functions (loops, switches,
  direct and indirect calls, integer and f64 code), sized so the code
  section is over 1 MB.

For each module it reports the code section size (parsed from the binary,
section id 10), then the median time of asyncwasm.Module(bytes) (decode +
validate + compile to internal code) as ms and as MB/s of code section,
and wasmtime.Module(engine, bytes) (Cranelift to machine code; its default
uses every core, so it is also shown with parallel compilation off), and
pywasm3's parse+load, which compiles lazily (per function, on first call)
so it is not a compile time, only a floor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import benchlib

sys.path.insert(0, str(benchlib.BENCH_DIR.parent))  # this checkout's asyncwasm

SOURCE_DIR = benchlib.BENCH_DIR / "bigmodule"
OUT_DIR = benchlib.BUILD_DIR / "compile_speed"
GENERATED_FUNCTIONS = 600  # about 0.75 MB of code
GENERATOR_SEED = 1
TARGET = "--target=wasm32-wasi"
C_FLAGS = [TARGET, "-O2", "-g0", "-std=c11", "-Wall", "-Wextra", "-Werror"]
CXX_FLAGS = [TARGET, "-O2", "-g0", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fno-exceptions"]
# Generated code: constant-folded conditions are expected there.
GENERATED_FLAGS = C_FLAGS + ["-Wno-tautological-bitwise-compare", "-Wno-tautological-compare"]
LINK_FLAGS = [TARGET, "-O2", "-fno-exceptions", "-Wl,--strip-debug",
              "-Wl,--export=libc_functions"]
MB = 1_000_000


def zig(tool: str) -> list[str]:
    return [sys.executable, "-m", "ziglang", tool]


def run_tool(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")


def inputs_digest() -> str:
    """Hash of everything a build depends on, for the cache."""
    digest = hashlib.sha256()
    version = subprocess.run(zig("version"), capture_output=True, text=True).stdout
    parts = [version, str(GENERATED_FUNCTIONS), str(GENERATOR_SEED), repr(C_FLAGS + CXX_FLAGS + LINK_FLAGS)]
    for part in parts:
        digest.update(part.encode())
    for path in sorted(SOURCE_DIR.iterdir()) + [k.source for k in benchlib.KERNELS.values()]:
        if path.suffix in (".c", ".cpp", ".h", ".py"):
            digest.update(path.read_bytes())
    digest.update((benchlib.KERNEL_DIR / "bench.h").read_bytes())
    return digest.hexdigest()


def build_modules(log: Callable[[str], None]) -> dict[str, Path]:
    modules = {"realworld": OUT_DIR / "realworld.wasm", "large": OUT_DIR / "large.wasm"}
    stamp = OUT_DIR / "inputs.sha256"
    digest = inputs_digest()
    if stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in modules.values()):
        return modules
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log("building the compile-speed modules (libc++ may take a minute the first time) ...")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        app = scratch / "app.o"
        run_tool(zig("c++") + CXX_FLAGS + ["-c", "-o", str(app), str(SOURCE_DIR / "app.cpp")])
        libc_table = scratch / "libc_table.o"
        run_tool(zig("cc") + C_FLAGS + ["-c", "-o", str(libc_table), str(SOURCE_DIR / "libc_table.c")])
        real = [str(app), str(libc_table)]
        run_tool(zig("c++") + LINK_FLAGS + ["-o", str(modules["realworld"])] + real)

        generated_c = scratch / "generated.c"
        run_tool([sys.executable, str(SOURCE_DIR / "generate.py"), str(generated_c),
                  "--count", str(GENERATED_FUNCTIONS), "--seed", str(GENERATOR_SEED)])
        generated = scratch / "generated.o"
        run_tool(zig("cc") + GENERATED_FLAGS + ["-c", "-o", str(generated), str(generated_c)])
        kernels, exports = [], ["-Wl,--export=generated_functions"]
        for kernel in benchlib.KERNELS.values():
            obj = scratch / f"kernel_{kernel.name}.o"
            entry = f"kernel_{kernel.name}_run"
            run_tool(zig("cc") + C_FLAGS + ["-fno-builtin", f"-Drun={entry}", "-c", "-o", str(obj),
                                            str(kernel.source)])
            kernels.append(str(obj))
            exports.append(f"-Wl,--export={entry}")
        run_tool(zig("c++") + LINK_FLAGS + exports + ["-o", str(modules["large"])]
                 + real + kernels + [str(generated)])
    stamp.write_text(digest)
    return modules


def median_seconds(action: Callable[[], object], reps: int) -> float:
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def compilers() -> dict[str, Callable[[bytes], object] | str]:
    """name -> compile function, or a string saying why it is unavailable."""
    found: dict[str, Callable[[bytes], object] | str] = {}
    try:
        import asyncwasm

        found["asyncwasm"] = asyncwasm.Module
    except Exception as exc:  # a half-built package may fail in any way
        found["asyncwasm"] = f"import asyncwasm failed: {exc.__class__.__name__}: {exc}"
    try:
        import wasmtime

        engine = wasmtime.Engine()
        config = wasmtime.Config()
        config.parallel_compilation = False
        serial = wasmtime.Engine(config)
        found["wasmtime"] = lambda data: wasmtime.Module(engine, data)
        found["wasmtime-1core"] = lambda data: wasmtime.Module(serial, data)
    except ImportError as exc:
        found["wasmtime"] = f"wasmtime not installed ({exc})"
    try:
        import wasm3

        def wasm3_parse_load(data: bytes) -> object:
            env = wasm3.Environment()
            runtime = env.new_runtime(64 * 1024)
            runtime.load(env.parse_module(data))
            return runtime

        found["pywasm3-lazy"] = wasm3_parse_load
    except ImportError as exc:
        found["pywasm3-lazy"] = f"pywasm3 not installed ({exc})"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure compile throughput on large modules.")
    parser.add_argument("--reps", type=int, default=5, help="compilations per measurement (median)")
    parser.add_argument("--json", nargs="?", const="", metavar="PATH",
                        help="write results as JSON (default: benchmarks/results/compile-<time>.json)")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    modules = build_modules(log)
    engines = compilers()
    results: dict[str, dict] = {}
    print(f"{'module':10} {'code MB':>8} {'engine':>15} {'ms':>9} {'MB/s':>8}")
    for name, path in modules.items():
        data = path.read_bytes()
        code = benchlib.section_size(data, benchlib.CODE_SECTION)
        results[name] = {"bytes": len(data), "code_bytes": code, "imports": benchlib.import_count(data),
                         "engines": {}}
        for engine, compile_fn in engines.items():
            if isinstance(compile_fn, str):
                print(f"{name:10} {code / MB:8.3f} {engine:>15} {'-':>9} {'-':>8}  ({compile_fn})")
                continue
            try:
                compile_fn(data)  # warm-up, and proof that it accepts the module
                seconds = median_seconds(lambda: compile_fn(data), args.reps)
            except Exception as exc:
                print(f"{name:10} {code / MB:8.3f} {engine:>15} {'failed':>9} {'-':>8}  "
                      f"({exc.__class__.__name__}: {str(exc)[:120]})")
                results[name]["engines"][engine] = {"error": f"{exc.__class__.__name__}: {exc}"}
                continue
            print(f"{name:10} {code / MB:8.3f} {engine:>15} {seconds * 1e3:9.1f} {code / MB / seconds:8.1f}")
            results[name]["engines"][engine] = {"median_s": seconds, "code_mb_per_s": code / MB / seconds}
    print("MB = 10^6 bytes of code section; median of", args.reps, "compilations after one warm-up")

    if args.json is not None:
        path = args.json or str(benchlib.RESULTS_DIR / ("compile-" + time.strftime("%Y%m%d-%H%M%S") + ".json"))
        benchlib.RESULTS_DIR.mkdir(exist_ok=True)
        with open(path, "w") as f:
            json.dump({"reps": args.reps, "modules": results}, f, indent=1)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
