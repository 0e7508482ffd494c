"""Fixtures shared by the interpreter-row tests in tests/c."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def both(request):
    """The test module's ``MODULE`` instantiated in wasmtime and here:
    ``(store, wasmtime_exports, asyncwasm_exports)``."""
    import wasmtime

    import asyncwasm

    module = request.module.MODULE
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, module), []).exports(store)
    return store, ref, asyncwasm.Linker().instantiate(asyncwasm.Module(module)).exports


@pytest.fixture(scope="session")
def dump(tmp_path_factory):
    """front_check's dump of one function of a module (its code verified):
    ``dump(module_bytes, func_index) -> text``, one compiled row per line."""
    sys.path.insert(0, str(ROOT / "tests" / "c"))
    import front_check

    try:
        exe = front_check.build(asan=False)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"front_check needs gcc: {exc}")
    path = tmp_path_factory.mktemp("dump") / "m.wasm"

    def run(module: bytes, func: int) -> str:
        path.write_bytes(module)
        out = subprocess.run([str(exe), "--dump", str(path), str(func)], capture_output=True, text=True,
                             timeout=60).stdout
        assert "VERIFY" not in out, out
        return out

    return run
