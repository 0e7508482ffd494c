"""Real compiler output through the engine: the benchmark kernels (C built by
zig, committed under benchmarks/wasm/) must return the checksums that native
gcc -O2 builds, wasmtime and pywasm3 agree on (benchmarks/benchlib.EXPECTED)."""

import sys
from pathlib import Path

import pytest

import asyncwasm

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import benchlib  # noqa: E402

sys.path.remove(str(BENCH))


@pytest.mark.parametrize("name", sorted(benchlib.KERNELS))
def test_kernel_checksum(name):
    kernel = benchlib.KERNELS[name]
    n, expected = min(benchlib.EXPECTED[name].items())
    module = asyncwasm.Module.from_file(kernel.wasm)
    run = asyncwasm.Linker().instantiate(module).exports["run"]
    assert run(n) == expected


def test_kernel_rejects_out_of_range_n():
    module = asyncwasm.Module.from_file(benchlib.KERNELS["fib"].wasm)
    run = asyncwasm.Linker().instantiate(module).exports["run"]
    assert run(-5) == benchlib.BAD_N
