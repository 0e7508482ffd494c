"""Shared definitions for the benchmark scripts (not a public module).

The kernels, their problem sizes and cost models, the file layout, and a
tiny WebAssembly section reader. build.py, run.py, pure_python.py and
compile_speed.py all import this module; run them as scripts from any
directory, e.g. ``python benchmarks/run.py``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

BENCH_DIR = Path(__file__).resolve().parent
KERNEL_DIR = BENCH_DIR / "kernels"
WASM_DIR = BENCH_DIR / "wasm"  # committed, deterministic builds
BUILD_DIR = BENCH_DIR / "build"  # native builds and scratch files (gitignored)
RESULTS_DIR = BENCH_DIR / "results"  # JSON results (gitignored)

# Returned by a kernel's run(n) when n is outside its supported range.
BAD_N = -1


def _fib_calls(n: int) -> float:
    """Number of calls naive fib(n) makes: 2*F(n+1) - 1."""
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2.0 * a - 1.0


@dataclass(frozen=True)
class Kernel:
    """One benchmark kernel: kernels/<name>.c exporting run(n) -> i32.

    n: the full size (native gcc -O2 takes about 20-50 ms on the reference
    machine); n_quick: about a tenth of the work, for --quick; n_python: the
    size the pure-Python version runs at; cost(n): relative work, used to
    scale the pure-Python time from n_python to n.
    """

    name: str
    n: int
    n_quick: int
    n_python: int
    cost: Callable[[int], float]
    measures: str

    @property
    def source(self) -> Path:
        return KERNEL_DIR / f"{self.name}.c"

    @property
    def wasm(self) -> Path:
        """The module as zig/wasm-ld emits it (for asyncwasm and wasmtime)."""
        return WASM_DIR / f"{self.name}.wasm"

    @property
    def wasm_simd(self) -> Path:
        """The same kernel built with -msimd128 (clang's vectorizers on)."""
        return WASM_DIR / f"{self.name}.simd.wasm"

    @property
    def wasm_m3(self) -> Path:
        """The same instructions re-encoded with minimal LEB128s (pywasm3)."""
        return WASM_DIR / f"{self.name}.m3.wasm"

    @property
    def native(self) -> Path:
        return BUILD_DIR / f"lib{self.name}.so"


KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        Kernel("fib", 37, 32, 29, _fib_calls, "calls and returns"),
        Kernel("sieve", 12_000_000, 1_200_000, 4_000_000, float, "byte loads/stores, loops"),
        Kernel("matmul", 448, 208, 128, lambda n: float(n) ** 3, "f64 mul/add, indexing"),
        Kernel("sha256", 10_000_000, 1_000_000, 40_000, float, "32-bit ALU, rotates"),
        Kernel("quicksort", 400_000, 40_000, 100_000,
               lambda n: n * math.log2(max(n, 2)), "compares, swaps, branches"),
        Kernel("strings", 120_000, 12_000, 60_000, float, "byte loops, small calls"),
        Kernel("nbody", 600_000, 60_000, 20_000, float, "f64 arithmetic, sqrt, div"),
    )
}

# run(n) results at each kernel's n, n_quick and n_python, established by the
# native build (and, for sha256, by hashlib) and checked on every engine. A
# size missing here is only compared across engines. Regenerate them when a
# kernel or a size changes: python benchmarks/run.py --print-expected
EXPECTED: dict[str, dict[int, int]] = {
    "fib": {29: 514229, 32: 2178309, 37: 24157817},
    "sieve": {1_200_000: 1609120810, 4_000_000: 1883583272, 12_000_000: 460120120},
    "matmul": {128: -1357226555, 208: 11252165, 448: -439755323},
    "sha256": {40_000: 581647708, 1_000_000: 775064091, 10_000_000: -1030412306},
    "quicksort": {40_000: 1509693430, 100_000: -2020186164, 400_000: 762591343},
    "strings": {12_000: 500523516, 60_000: 826941693, 120_000: -2053025509},
    "nbody": {20_000: 576942646, 60_000: -178372840, 600_000: -1624226819},
}


def select_kernels(names: str | None) -> list[Kernel]:
    """Kernels named in a comma-separated list (all when None/empty)."""
    if not names:
        return list(KERNELS.values())
    chosen = []
    for name in names.split(","):
        name = name.strip()
        if name not in KERNELS:
            raise SystemExit(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
        chosen.append(KERNELS[name])
    return chosen


def same_checksum(a: int, b: int) -> bool:
    """Checksums are i32; engines may return them signed or unsigned."""
    return (a - b) % (1 << 32) == 0


# --- WebAssembly binary sections -------------------------------------------

SECTION_NAMES = {
    0: "custom", 1: "type", 2: "import", 3: "function", 4: "table",
    5: "memory", 6: "global", 7: "export", 8: "start", 9: "element",
    10: "code", 11: "data", 12: "datacount",
}
CODE_SECTION = 10
IMPORT_SECTION = 2


def read_uleb128(data: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 at pos; return (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated LEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 35:
            raise ValueError("LEB128 too long for a u32")


def wasm_sections(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Yield (section id, payload offset, payload size) for each section."""
    if data[:4] != b"\0asm" or struct.unpack("<I", data[4:8])[0] != 1:
        raise ValueError("not a WebAssembly version-1 binary")
    pos = 8
    while pos < len(data):
        section_id = data[pos]
        size, payload = read_uleb128(data, pos + 1)
        if payload + size > len(data):
            raise ValueError(f"section {section_id} at {pos} runs past the end")
        yield section_id, payload, size
        pos = payload + size


def section_size(data: bytes, section_id: int) -> int:
    """Payload bytes of the section with this id (0 if absent)."""
    return sum(size for sid, _, size in wasm_sections(data) if sid == section_id)


def import_count(data: bytes) -> int:
    """Number of imports the module declares."""
    for sid, payload, _ in wasm_sections(data):
        if sid == IMPORT_SECTION:
            return read_uleb128(data, payload)[0]
    return 0
