"""What it costs to cross between Python, trio and the guest.

    python benchmarks/crossings.py            # full run, about 20 s
    python benchmarks/crossings.py --quick    # smaller counts and kernels

Measures (issue 4; targets from the issue's note):

- ``Func(*args)``: a trivial export called from Python (target <= 0.2 us);
- sync host call: guest -> Python -> guest round trip, from a guest loop,
  less the same loop without the call (target <= 0.3 us);
- the same with ``access_caller=True`` (the host function receives a
  Caller; target <= 0.4 us), and with the host reading ``caller.memory``;
- a guest's call into another instance's function (``define_instance``),
  less a call within the instance: on the synchronous fast path (no
  Python) and under ``call_async`` (the callee's turn is taken through its
  gate);
- async host call: a host ``async def`` that returns at once, so the guest
  suspends, the driver awaits the coroutine and resumes the guest
  (target <= 3 us), also less the loop;
- ``call_async`` of a trivial export (no target: for the record);
- the cost of one slice boundary (OUT_OF_FUEL, pacer, trio checkpoint,
  next run) from a loop given the shortest slices;
- trio checkpoint share on the CPU kernels (benchmarks/wasm/*.wasm): a
  kernel run with ``call_async`` (slices of ``yield_interval`` / 2, a
  checkpoint after each) against the same fiber run in one slice
  (target < 2%). The measured difference is at the mercy of other
  processes on a shared machine, so the table also gives the estimate
  slices x boundary cost / run time.

Each figure is the best of several repeats (the least disturbed by other
processes). Prints a table; ``--json`` adds the figures as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

import asyncwasm  # noqa: E402
from asyncwasm import I32, FuncType, Linker, Module  # noqa: E402
from asyncwasm.lowlevel import Fiber  # noqa: E402
from asyncwasm._pacer import FixedPacer  # noqa: E402

LOOP_WAT = """
(module
  (import "env" "host" (func $host (param i32) (result i32)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "with_calls") (param $n i32) (result i32) (local $acc i32)
    (block $d (loop $l
      (br_if $d (i32.eqz (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (call $host (local.get $n))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc))
  (func (export "without_calls") (param $n i32) (result i32) (local $acc i32)
    (block $d (loop $l
      (br_if $d (i32.eqz (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc)))
"""


def _best(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started
    finally:
        gc.enable()


def _loop_module() -> bytes:
    import wasmtime  # the text parser (a dev dependency)

    return bytes(wasmtime.wat2wasm(LOOP_WAT))


def _instance(host: Callable[..., object], access_caller: bool = False) -> asyncwasm.Instance:
    linker = Linker()
    linker.define_func("env", "host", FuncType([I32], [I32]), host, access_caller=access_caller)
    return linker.instantiate(Module(_loop_module()))


def func_call(count: int, repeats: int) -> float:
    add = _instance(lambda x: x).exports["add"]

    def run() -> float:
        def body() -> None:
            for _ in range(count // 10):
                add(1, 2); add(1, 2); add(1, 2); add(1, 2); add(1, 2)  # noqa: E702
                add(1, 2); add(1, 2); add(1, 2); add(1, 2); add(1, 2)  # noqa: E702

        loop_only = _timed(lambda: [None for _ in range(count // 10)])
        return (_timed(body) - loop_only) / count

    return _best(repeats, run)


def sync_host_call(count: int, repeats: int, host: Callable[..., object] = lambda x: x,
                   access_caller: bool = False) -> float:  # fmt: skip
    exports = _instance(host, access_caller).exports

    def run() -> float:
        with_calls = _timed(lambda: exports["with_calls"](count))
        without = _timed(lambda: exports["without_calls"](count))
        return (with_calls - without) / count

    return _best(repeats, run)


def _caller_identity(caller: asyncwasm.Caller, x: int) -> int:
    return x


def _caller_memory(caller: asyncwasm.Caller, x: int) -> int:
    caller.memory  # noqa: B018  (the lookup is the cost measured)
    return x


CROSS_WAT = """
(module
  (import "lib" "inc" (func $inc (param i32) (result i32)))
  (func $own (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "cross") (param $n i32) (result i32) (local $acc i32)
    (block $d (loop $l
      (br_if $d (i32.eqz (local.get $n)))
      (local.set $acc (call $inc (local.get $acc)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc))
  (func (export "within") (param $n i32) (result i32) (local $acc i32)
    (block $d (loop $l
      (br_if $d (i32.eqz (local.get $n)))
      (local.set $acc (call $own (local.get $acc)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc)))
"""
LIB_WAT = '(module (func (export "inc") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))'


def cross_instance_call(count: int, repeats: int, driven: bool) -> float:
    """Seconds a call into another instance's function costs more than a
    call within the instance, from a guest loop; ``driven``: under
    ``call_async`` (the callee's turn goes through its gate)."""
    import wasmtime

    library = Linker().instantiate(Module(bytes(wasmtime.wat2wasm(LIB_WAT))))
    linker = Linker()
    linker.define_instance("lib", library)
    exports = linker.instantiate(Module(bytes(wasmtime.wat2wasm(CROSS_WAT)))).exports
    cross, within = exports["cross"], exports["within"]
    assert isinstance(cross, asyncwasm.Func) and isinstance(within, asyncwasm.Func)

    if driven:
        return _async_difference(cross, within, count, repeats)
    return _best(repeats, lambda: (_timed(lambda: cross(count)) - _timed(lambda: within(count))) / count)


async def _async_identity(x: int) -> int:
    return x


def _async_difference(longer: asyncwasm.Func, shorter: asyncwasm.Func, count: int, repeats: int) -> float:
    """The best per-call difference between ``await longer.call_async(count)``
    and the same with ``shorter``, measured back to back in one trio run."""

    async def main() -> float:
        best = float("inf")
        for _ in range(repeats):
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                await longer.call_async(count)
                longer_s = time.perf_counter() - started
                started = time.perf_counter()
                await shorter.call_async(count)
                shorter_s = time.perf_counter() - started
            finally:
                gc.enable()
            best = min(best, (longer_s - shorter_s) / count)
        return best

    return trio.run(main)


def async_host_call(count: int, repeats: int) -> float:
    exports = _instance(_async_identity).exports
    with_calls, without_calls = exports["with_calls"], exports["without_calls"]
    assert isinstance(with_calls, asyncwasm.Func) and isinstance(without_calls, asyncwasm.Func)
    return _async_difference(with_calls, without_calls, count, repeats)


def call_async_trivial(count: int, repeats: int) -> float:
    add = _instance(lambda x: x).exports["add"]

    async def main() -> float:
        best = float("inf")
        for _ in range(repeats):
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                for _ in range(count):
                    await add.call_async(1, 2)
                best = min(best, (time.perf_counter() - started) / count)
            finally:
                gc.enable()
        return best

    return trio.run(main)


def checkpoint_share(kernel: benchlib.Kernel, n: int, repeats: int) -> tuple[float, float, int]:
    """(one-slice seconds, call_async seconds, slices of one call_async
    run), each the best of ``repeats``.

    The baseline is the same fiber run in a single slice (no checkpoint),
    not the synchronous fast path: both then use a freshly allocated fiber
    stack, whose address relative to guest memory can change a kernel's
    speed by a few percent (cache aliasing) and would drown the figure.
    The two runs alternate so that both see the same disturbances."""
    instance = Linker().instantiate(Module(kernel.wasm.read_bytes()))
    run = instance.exports["run"]
    expected = run(n)  # warm up; also the checksum both runs must give

    def one_slice() -> None:
        fiber = Fiber(run, (n,))
        if fiber.run(1 << 62) != 0 or fiber.results != (expected,):
            raise AssertionError(f"{kernel.name}: one-slice run did not give {expected}")

    async def runs() -> tuple[float, float, int]:
        base_best = async_best = float("inf")
        slices = 0
        for _ in range(repeats):
            base_best = min(base_best, _timed(one_slice))
            before = instance.statistics().slices
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                result = await run.call_async(n)
                elapsed = time.perf_counter() - started
            finally:
                gc.enable()
            assert result == expected, f"{kernel.name}: call_async gave {result}, sync {expected}"
            if elapsed < async_best:
                async_best, slices = elapsed, instance.statistics().slices - before
        return base_best, async_best, slices

    return trio.run(runs)


def slice_boundary_cost(count: int, repeats: int) -> float:
    """Seconds one slice boundary costs the async driver (run() returning
    OUT_OF_FUEL, a trio checkpoint, the next run()): a guest loop driven in
    slices of 1,000 fuel (a fraction of a microsecond of guest work, taken
    off using the same loop's speed on the synchronous fast path)."""
    linker = Linker()
    linker.define_func("env", "host", FuncType([I32], [I32]), lambda x: x)
    module = Module(_loop_module())
    instance = linker.instantiate(module)
    loop = instance.exports["without_calls"]
    loop._gate.pacer = FixedPacer(1_000)

    async def main() -> float:
        best = float("inf")
        for _ in range(repeats):
            before = instance.statistics()
            sync_s = _timed(lambda: loop(count))
            middle = instance.statistics()
            gc.disable()
            try:
                started = time.perf_counter()
                await loop.call_async(count)
                async_s = time.perf_counter() - started
            finally:
                gc.enable()
            after = instance.statistics()
            slices = after.slices - middle.slices
            guest_work = sync_s  # the same fuel on the fast path
            assert after.fuel_used - middle.fuel_used == middle.fuel_used - before.fuel_used
            best = min(best, (async_s - guest_work) / slices)
        return best

    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and kernel sizes")
    parser.add_argument("--kernels", help="comma-separated kernel names (default: all)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    count = 200_000 if args.quick else 1_000_000
    repeats = 3 if args.quick else 7

    rows: list[tuple[str, float, str, str]] = []
    figures: dict[str, float] = {}

    def row(name: str, seconds: float, target: float | None) -> None:
        figures[name] = seconds
        verdict = "" if target is None else ("ok" if seconds <= target else "MISSED")
        rows.append((name, seconds * 1e6, "" if target is None else f"<= {target * 1e6:.1f}", verdict))

    row("Func(*args), trivial export", func_call(count, repeats), 0.2e-6)
    row("sync host call round trip", sync_host_call(count, repeats), 0.3e-6)
    row("sync host call with a Caller", sync_host_call(count, repeats, _caller_identity, True), 0.4e-6)
    row("  ... reading caller.memory", sync_host_call(count, repeats, _caller_memory, True), 0.4e-6)
    row("call into another instance (sync)", cross_instance_call(count, repeats, False), None)
    row("call into another instance (async)", cross_instance_call(count // 10, repeats, True), None)
    row("async host call, suspend + resume", async_host_call(count // 5, repeats), 3e-6)
    row("call_async, trivial export", call_async_trivial(count // 20, repeats), None)
    boundary = slice_boundary_cost(count // 2, repeats)
    row("slice boundary (checkpoint + re-entry)", boundary, None)

    print(f"{'crossing':40} {'us':>8} {'target us':>10}  verdict")
    for name, micros, target, verdict in rows:
        print(f"{name:40} {micros:8.3f} {target:>10}  {verdict}")

    print(f"\n{'kernel (call_async vs 1 slice)':30} {'1 slice ms':>10} {'async ms':>9} {'slices':>7} {'share':>7} "
          f"{'est.':>7}  (target < 2%)")
    shares = []
    for kernel in benchlib.select_kernels(args.kernels):
        n = kernel.n_quick if args.quick else kernel.n
        sync_s, async_s, slices = checkpoint_share(kernel, n, repeats)
        share = (async_s - sync_s) / async_s
        shares.append(share)
        figures[f"checkpoint share {kernel.name}"] = share
        estimate = slices * boundary / async_s  # the share the boundaries account for
        figures[f"checkpoint share estimate {kernel.name}"] = estimate
        print(f"{kernel.name:30} {sync_s * 1e3:10.2f} {async_s * 1e3:9.2f} {slices:7d} {share * 100:6.2f}% "
              f"{estimate * 100:6.2f}%")
    mean = sum(shares) / len(shares)
    worst_estimate = max(v for k, v in figures.items() if k.startswith("checkpoint share estimate"))
    print(f"{'mean':30} {'':10} {'':9} {'':7} {mean * 100:6.2f}%")
    print(f"checkpoint share (worst estimate, the robust figure): {worst_estimate * 100:.2f}% "
          f"{'ok' if worst_estimate < 0.02 else 'MISSED'}; measured differences are only as good as the machine is "
          f"quiet (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
