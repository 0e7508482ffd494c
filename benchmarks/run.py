"""Run the benchmark kernels on every engine, side by side, in one process.

    python benchmarks/run.py                  all kernels, 5 rounds (a few minutes)
    python benchmarks/run.py --quick          a tenth of the work, 3 rounds
    python benchmarks/run.py --kernels fib,sha256 --rounds 9 --json

Engines (a missing one is skipped with a message, never fatal):
  native     gcc -O2 shared library (build/lib<name>.so) called through ctypes
  asyncwasm  this project: Module(bytes), Linker().instantiate(m).exports["run"]
  pywasm3    wasm3 0.5 interpreter (wasm/<name>.m3.wasm: same instructions)
  wasmtime   Cranelift JIT, the compiled-code reference
  python     pure_python.py at a smaller n, time scaled to n by the kernel's
             cost model (marked * in the table)

Rounds are interleaved (every engine runs every kernel once per round, the
engine order rotating between rounds) and the table shows medians, because
the machines are noisy. Every call's checksum is checked against the
expected value (benchlib.EXPECTED) and against the other engines.
Build first: python benchmarks/build.py
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import importlib.metadata
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import benchlib
import pure_python
from benchlib import Kernel

# Benchmark the asyncwasm of this checkout (an in-place build), not an
# installed copy.
sys.path.insert(0, str(benchlib.BENCH_DIR.parent))

Runner = Callable[[int], int]

# How a cell's samples become one number; --stat min switches it.
STATISTIC: Callable[[list[float]], float] = statistics.median


class Unavailable(Exception):
    """An engine cannot run here (not installed, not built, not working yet)."""


# --- engines --------------------------------------------------------------------


class Engine:
    name = ""
    label = ""

    def check_available(self) -> None:
        """Raise Unavailable if the engine cannot run at all."""

    def prepare(self, kernel: Kernel) -> Runner:
        raise NotImplementedError

    def version(self) -> str:
        return ""


class Native(Engine):
    name, label = "native", "native"

    def prepare(self, kernel: Kernel) -> Runner:
        if not kernel.native.exists():
            raise Unavailable(f"{kernel.native} missing: run python benchmarks/build.py")
        run = ctypes.CDLL(str(kernel.native)).run
        run.argtypes = [ctypes.c_int32]
        run.restype = ctypes.c_int32
        return run

    def version(self) -> str:
        try:
            out = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
            return out.splitlines()[0]
        except OSError:
            return "?"


class AsyncWasm(Engine):
    name, label = "asyncwasm", "asyncwasm"

    def check_available(self) -> None:
        try:
            import asyncwasm  # noqa: F401
        except Exception as exc:  # the package may be half-built: any error
            raise Unavailable(f"import asyncwasm failed: {exc.__class__.__name__}: {exc}")
        for attr in ("Module", "Linker"):
            if not hasattr(asyncwasm, attr):
                raise Unavailable(f"asyncwasm.{attr} does not exist yet")

    def prepare(self, kernel: Kernel) -> Runner:
        import asyncwasm

        try:
            module = asyncwasm.Module(kernel.wasm.read_bytes())
            return asyncwasm.Linker().instantiate(module).exports["run"]
        except Exception as exc:
            raise Unavailable(f"{exc.__class__.__name__}: {exc}")

    def version(self) -> str:
        try:
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, cwd=benchlib.BENCH_DIR).stdout.strip()
        except OSError:
            rev = ""
        return f"git {rev or '?'}" + (" (ASan build)" if self.sanitized() else "")

    @staticmethod
    def sanitized() -> bool:
        """True if the loaded C extension was built with AddressSanitizer,
        whose timings say nothing about the release engine."""
        try:
            from asyncwasm import _engine

            with open(_engine.__file__, "rb") as f:
                return b"__asan_init" in f.read()
        except Exception:
            return False


class PyWasm3(Engine):
    name, label = "pywasm3", "pywasm3"

    def check_available(self) -> None:
        try:
            import wasm3  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"pip install pywasm3 ({exc})")

    def prepare(self, kernel: Kernel) -> Runner:
        import wasm3

        env = wasm3.Environment()
        runtime = env.new_runtime(64 * 1024)
        runtime.load(env.parse_module(kernel.wasm_m3.read_bytes()))
        run = runtime.find_function("run")
        keep_alive = (env, runtime)  # the function needs its runtime alive
        return lambda n, _keep=keep_alive: run(n)

    def version(self) -> str:
        return _dist_version("pywasm3")


class Wasmtime(Engine):
    name, label = "wasmtime", "wasmtime"

    def check_available(self) -> None:
        try:
            import wasmtime  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"pip install wasmtime ({exc})")

    def prepare(self, kernel: Kernel) -> Runner:
        import wasmtime

        store = wasmtime.Store()
        module = wasmtime.Module(store.engine, kernel.wasm.read_bytes())
        run = wasmtime.Instance(store, module, []).exports(store)["run"]
        return lambda n: run(store, n)

    def version(self) -> str:
        return _dist_version("wasmtime")


class PurePython(Engine):
    """Runs at a smaller n; Measurement.scale turns its time into one for n."""

    name, label = "python", "python*"

    def prepare(self, kernel: Kernel) -> Runner:
        return pure_python.KERNELS[kernel.name]

    def version(self) -> str:
        return platform.python_implementation() + " " + platform.python_version()


ENGINES: dict[str, Engine] = {e.name: e for e in (Native(), AsyncWasm(), PyWasm3(), Wasmtime(), PurePython())}


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# --- measuring ------------------------------------------------------------------


@dataclass
class Cell:
    """One (kernel, engine) pair: the runner, its size and its samples."""

    run: Runner
    n: int
    scale: float = 1.0  # multiply a sample by this to get the time at the table's n
    seconds: list[float] = field(default_factory=list)
    checksum: int | None = None
    error: str | None = None

    def value(self) -> float:
        """The table's statistic (median, or min with --stat min), scaled."""
        return STATISTIC(self.seconds) * self.scale

    def spread(self) -> float:
        """(max - min) / median of the samples: how noisy this cell was."""
        return (max(self.seconds) - min(self.seconds)) / statistics.median(self.seconds)


def python_size(kernel: Kernel, n: int) -> int:
    """Pure Python runs at n_python unless n itself is cheaper."""
    return n if kernel.cost(n) <= kernel.cost(kernel.n_python) else kernel.n_python


def time_call(run: Runner, n: int) -> tuple[float, int]:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        checksum = run(n)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed, checksum


def check_checksum(kernel: Kernel, n: int, checksum: int, reference: dict[int, int]) -> str | None:
    """Compare with EXPECTED, else with the first engine that ran this n."""
    expected = benchlib.EXPECTED.get(kernel.name, {}).get(n, reference.setdefault(n, checksum))
    if not benchlib.same_checksum(checksum, expected):
        return f"checksum {checksum} != expected {expected}"
    return None


def prepare_cells(kernels: list[Kernel], engines: list[Engine], quick: bool,
                  log: Callable[[str], None]) -> dict[tuple[str, str], Cell]:
    cells: dict[tuple[str, str], Cell] = {}
    for kernel in kernels:
        n = kernel.n_quick if quick else kernel.n
        reference: dict[int, int] = {}
        for engine in engines:
            engine_n = python_size(kernel, n) if isinstance(engine, PurePython) else n
            try:
                run = engine.prepare(kernel)
            except Exception as exc:
                log(f"  {engine.name} cannot run {kernel.name}: {exc}")
                continue
            cell = Cell(run, engine_n, kernel.cost(n) / kernel.cost(engine_n))
            try:  # warm-up call, also the first correctness check
                _, checksum = time_call(run, engine_n)
            except Exception as exc:
                log(f"  {engine.name} failed on {kernel.name}({engine_n}): {exc.__class__.__name__}: {exc}")
                continue
            cell.checksum = checksum
            cell.error = check_checksum(kernel, engine_n, checksum, reference)
            if cell.error:
                log(f"  {engine.name} {kernel.name}({engine_n}): {cell.error}")
            cells[kernel.name, engine.name] = cell
    return cells


def measure(cells: dict[tuple[str, str], Cell], kernels: list[Kernel], engines: list[Engine],
            rounds: int, log: Callable[[str], None]) -> None:
    for round_index in range(rounds):
        start = time.perf_counter()
        # Rotate the engine order so no engine always runs right after another.
        shift = round_index % len(engines)
        order = engines[shift:] + engines[:shift]
        for kernel in kernels:
            for engine in order:
                cell = cells.get((kernel.name, engine.name))
                if cell is None:
                    continue
                elapsed, checksum = time_call(cell.run, cell.n)
                if not benchlib.same_checksum(checksum, cell.checksum):
                    cell.error = f"checksum changed between calls: {cell.checksum} then {checksum}"
                cell.seconds.append(elapsed)
        log(f"  round {round_index + 1}/{rounds}: {time.perf_counter() - start:.1f} s")


# --- reporting ------------------------------------------------------------------

RATIOS = [  # (label, numerator engine, denominator engine)
    ("aw/native", "asyncwasm", "native"),
    ("aw/m3", "asyncwasm", "pywasm3"),
    ("m3/native", "pywasm3", "native"),
    ("wt/native", "wasmtime", "native"),
    ("py/aw", "python", "asyncwasm"),
]


def ratio(cells, kernel: str, top: str, bottom: str) -> float | None:
    a, b = cells.get((kernel, top)), cells.get((kernel, bottom))
    if a is None or b is None or a.error or b.error or not a.seconds or not b.seconds:
        return None
    return a.value() / b.value()


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def shown_ratios(engines: list[Engine]) -> list[tuple[str, str, str]]:
    """The ratios whose two engines both ran."""
    names = {e.name for e in engines}
    return [r for r in RATIOS if r[1] in names and r[2] in names]


def format_table(cells, kernels: list[Kernel], engines: list[Engine], quick: bool) -> str:
    ratios = shown_ratios(engines)
    head = f"{'kernel':10} {'n':>10}" + "".join(f" {e.label:>10}" for e in engines)
    head += "".join(f" {label:>9}" for label, _, _ in ratios)
    statistic = "min" if STATISTIC is min else "median"
    lines = [f"times: {statistic} ms per run(n) over the rounds; ratios: time / time", head, "-" * len(head)]
    ratio_columns: dict[str, list[float]] = {label: [] for label, _, _ in ratios}
    for kernel in kernels:
        n = kernel.n_quick if quick else kernel.n
        row = f"{kernel.name:10} {n:>10}"
        for engine in engines:
            cell = cells.get((kernel.name, engine.name))
            if cell is None or not cell.seconds:
                text = "-"
            else:
                text = f"{cell.value() * 1e3:.1f}" + ("!" if cell.error else "")
            row += f" {text:>10}"
        for label, top, bottom in ratios:
            value = ratio(cells, kernel.name, top, bottom)
            if value is not None:
                ratio_columns[label].append(value)
            row += f" {_fmt_ratio(value):>9}"
        lines.append(row)
    lines.append("-" * len(head))
    row = f"{'geomean':10} {'':>10}" + "".join(f" {'':>10}" for _ in engines)
    for label, _, _ in ratios:
        row += f" {_fmt_ratio(geomean(ratio_columns[label])):>9}"
    lines.append(row)
    notes = []
    if any(isinstance(e, PurePython) for e in engines):
        notes.append("python*: pure_python.py run at a smaller n, time scaled by the kernel's cost model")
    for engine in engines:
        spreads = [c.spread() for (k, e), c in cells.items() if e == engine.name and len(c.seconds) > 1]
        if spreads:
            notes.append(f"{engine.name}: worst (max-min)/median over rounds {max(spreads):.0%}")
    if any(c.error for c in cells.values()):
        notes.append("!: checksum mismatch, excluded from the ratios")
    return "\n".join(lines + notes)


def _fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def machine_info(engines: list[Engine]) -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "engines": {e.name: e.version() for e in engines},
    }


def results_json(cells, kernels, engines, args, quick: bool) -> dict:
    out = {"machine": machine_info(engines), "rounds": args.rounds, "quick": quick,
           "statistic": args.stat, "kernels": {}}
    for kernel in kernels:
        entry = {"n": kernel.n_quick if quick else kernel.n, "engines": {}}
        for engine in engines:
            cell = cells.get((kernel.name, engine.name))
            if cell is None:
                continue
            entry["engines"][engine.name] = {
                "n": cell.n, "scale": cell.scale, "checksum": cell.checksum, "error": cell.error,
                "samples_s": cell.seconds,
                "median_s": statistics.median(cell.seconds) * cell.scale if cell.seconds else None,
                "min_s": min(cell.seconds) * cell.scale if cell.seconds else None,
            }
        entry["ratios"] = {label: ratio(cells, kernel.name, top, bottom)
                           for label, top, bottom in shown_ratios(engines)}
        out["kernels"][kernel.name] = entry
    return out


def print_expected() -> None:
    """Print a fresh benchlib.EXPECTED table from the native builds."""
    native = Native()
    for kernel in benchlib.KERNELS.values():
        run = native.prepare(kernel)
        sizes = sorted({kernel.n, kernel.n_quick, kernel.n_python})
        print(f'    "{kernel.name}": {{' + ", ".join(f"{n:_}: {run(n)}" for n in sizes) + "},")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmark kernels on every engine.")
    parser.add_argument("--kernels", help="comma-separated kernel names (default: all)")
    parser.add_argument("--engines", help=f"comma-separated engines (default: {','.join(ENGINES)})")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 5, or 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="run each kernel at n_quick (a tenth of the work)")
    parser.add_argument("--json", nargs="?", const="", metavar="PATH",
                        help="write results as JSON (default path: benchmarks/results/<time>.json)")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="statistic over rounds (default median; min suits a busy machine)")
    parser.add_argument("--print-expected", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.print_expected:
        print_expected()
        return 0
    global STATISTIC
    STATISTIC = min if args.stat == "min" else statistics.median
    args.rounds = args.rounds or (3 if args.quick else 5)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    kernels = benchlib.select_kernels(args.kernels)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    engines = []
    for name in (args.engines.split(",") if args.engines else ENGINES):
        engine = ENGINES.get(name.strip())
        if engine is None:
            parser.error(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
        try:
            engine.check_available()
        except Unavailable as exc:
            log(f"skipping {engine.name}: {exc}")
            continue
        engines.append(engine)
        if isinstance(engine, AsyncWasm) and engine.sanitized():
            log("warning: asyncwasm._engine is an ASan build; rebuild it without "
                "sanitizers before trusting its times")

    log("preparing (one warm-up call per kernel and engine) ...")
    cells = prepare_cells(kernels, engines, args.quick, log)
    measure(cells, kernels, engines, args.rounds, log)
    print(format_table(cells, kernels, engines, args.quick))

    if args.json is not None:
        path = args.json or str(benchlib.RESULTS_DIR / (time.strftime("%Y%m%d-%H%M%S") + ".json"))
        benchlib.RESULTS_DIR.mkdir(exist_ok=True)
        with open(path, "w") as f:
            json.dump(results_json(cells, kernels, engines, args, args.quick), f, indent=1)
        log(f"wrote {path}")
    return 1 if any(c.error for c in cells.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
