"""Real C libraries built with ``-msimd128`` give the same bytes as natively.

tests/guests/simd/ holds two WASI filters around libraries whose sources
come from PyPI sdists: ``deflate_tool`` (libdeflate: zlib/gzip compression
and decompression, CRC-32, Adler-32) and ``lz4_tool`` (LZ4: frames, LZ4-HC,
xxHash). Their committed .wasm files were compiled by clang with
``-msimd128``, so they run SIMD code (vectorized Adler-32 and xxHash loops,
v128 copies). Each case runs the Wasm build on asyncwasm and the same
sources built by gcc at test time on one input, and compares the output
byte for byte. Fetching the sdists needs PyPI (cached in build/simd-guests);
without it, or without gcc, the comparisons skip and say why.

LZ4's fast mode (frame levels 1-2, LZ4_compress_fast) hashes 5 bytes per
position on 64-bit hosts and 4 on 32-bit ones such as wasm32, so its output
legitimately differs from an x86-64 build; it is checked by round trip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import trio

import asyncwasm
from asyncwasm import CostTable, Linker, Module, WasiConfig
from asyncwasm.costs import OPCODES

from .guests.simd import build as simd_build

GUESTS = simd_build.HERE
REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def _corpus() -> bytes:
    """About 300 KB of text, binary and repetitive data, the same every run."""
    text = b"".join(p.read_bytes() for p in sorted((REPO / "asyncwasm" / "_engine").glob("*.[ch]")))[:200_000]
    state, noise = 0x12345678, bytearray()
    for _ in range(40_000):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        noise.append(state >> 16 & 0xFF)
    runs = b"".join(bytes([k]) * (k * 7 % 300 + 1) for k in range(256))
    return text + bytes(noise) + runs + text[:20_000]


CORPUS = _corpus()


def _run_wasm(name: str, args: list[str], stdin: bytes, module: Module | None = None
              ) -> tuple[int, bytes, bytes, int]:
    """Exit code, stdout, stderr and fuel used of one run of guest ``name``."""

    async def run() -> tuple[int, bytes, bytes, int]:
        out, err = bytearray(), bytearray()
        linker = Linker()
        linker.define_wasi(WasiConfig(argv=[name, *args], stdin=stdin, stdout=out, stderr=err))
        code = 0
        with await linker.instantiate_async(module or _module(name)) as instance:
            try:
                with trio.fail_after(TIMEOUT):
                    await instance.exports["_start"].call_async()
            except asyncwasm.Exit as exc:
                code = exc.code
            fuel = instance.statistics().fuel_used
        return code, bytes(out), bytes(err), fuel

    return trio.run(run)


_modules: dict[str, Module] = {}


def _module(name: str) -> Module:
    if name not in _modules:
        _modules[name] = Module.from_file(GUESTS / f"{name}.wasm")
    return _modules[name]


SIMD_WEIGHT = 1001
#: Every SIMD instruction weighs SIMD_WEIGHT, the others 1: the extra fuel
#: a run uses with it counts the SIMD instructions it executed.
SIMD_COSTS = CostTable({name: SIMD_WEIGHT for name, code in OPCODES.items() if code >> 8 == 0xFD})


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: cannot build the native reference programs")
    out = tmp_path_factory.mktemp("simd-native")
    try:
        return {name: simd_build.build_native(name, out / name) for name in simd_build.GUESTS}
    except simd_build.SourcesUnavailable as exc:
        pytest.skip(f"cannot fetch the library sources to build the native reference: {exc}")


def _run_native(exe: Path, args: list[str], stdin: bytes) -> bytes:
    proc = subprocess.run([str(exe), *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=True)
    return proc.stdout


@pytest.mark.parametrize(("name", "args"), [("deflate_tool", ["zlib", "6"]), ("lz4_tool", ["frame", "9"])])
def test_the_guests_run_simd_code(name: str, args: list[str]) -> None:
    assert {imp.module for imp in _module(name).imports} == {"wasi_snapshot_preview1"}
    code, out, _, plain = _run_wasm(name, args, CORPUS)
    weighted = Module.from_file(GUESTS / f"{name}.wasm", costs=SIMD_COSTS)
    code2, out2, _, heavy = _run_wasm(name, args, CORPUS, weighted)
    assert code == code2 == 0 and out == out2
    executed = (heavy - plain) // (SIMD_WEIGHT - 1)
    assert (heavy - plain) % (SIMD_WEIGHT - 1) == 0
    assert executed > 10_000, f"{name} {' '.join(args)} executed only {executed} SIMD instructions"


CASES = [
    ("deflate_tool", ["zlib", "1"]),
    ("deflate_tool", ["zlib", "6"]),
    ("deflate_tool", ["zlib", "12"]),
    ("deflate_tool", ["gzip", "9"]),
    ("deflate_tool", ["sums"]),
    ("lz4_tool", ["frame", "3"]),
    ("lz4_tool", ["frame", "12"]),
    ("lz4_tool", ["block", "9"]),
    ("lz4_tool", ["xxh"]),
]


@pytest.mark.parametrize(("name", "args"), CASES, ids=[f"{n}-{'-'.join(a)}" for n, a in CASES])
def test_compression_matches_the_native_build(native: dict[str, Path], name: str, args: list[str]) -> None:
    expected = _run_native(native[name], args, CORPUS)
    code, out, err, _ = _run_wasm(name, args, CORPUS)
    assert (code, err) == (0, b"")
    assert len(out) == len(expected) and out == expected


@pytest.mark.parametrize(
    ("name", "pack", "unpack"),
    [("deflate_tool", ["zlib", "9"], ["unzlib"]), ("deflate_tool", ["gzip", "4"], ["gunzip"]),
     ("lz4_tool", ["frame", "9"], ["unframe"])],
)
def test_decompression_of_native_output_gives_the_input(native: dict[str, Path], name: str, pack: list[str],
                                                         unpack: list[str]) -> None:
    packed = _run_native(native[name], pack, CORPUS)
    code, out, err, _ = _run_wasm(name, unpack, packed)
    assert (code, err) == (0, b"")
    assert out == CORPUS


@pytest.mark.parametrize("level", ["1", "2"])
def test_lz4_fast_frames_round_trip(level: str) -> None:
    code, packed, _, _ = _run_wasm("lz4_tool", ["frame", level], CORPUS)
    assert code == 0 and len(packed) < len(CORPUS)
    code, out, _, _ = _run_wasm("lz4_tool", ["unframe"], packed)
    assert code == 0 and out == CORPUS


def test_corrupt_input_is_reported_by_the_guest() -> None:
    code, packed, _, _ = _run_wasm("deflate_tool", ["zlib", "6"], CORPUS)
    damaged = packed[:100] + bytes([packed[100] ^ 0x55]) + packed[101:]
    code, out, err, _ = _run_wasm("deflate_tool", ["unzlib"], damaged)
    assert code == 1 and err == b"deflate_tool: corrupt input\n"
