"""memory64 (Wasm 3.0): memories and tables with i64 addresses.

The 3.0 spec testsuite covers the instruction semantics (tests/spec:
memory64, address64, load64, memory_trap64, memory_grow64, bulk64, table64,
table_*64, call_indirect64, ...); these tests check what the engine promises
beyond it: bounds checks that cannot wrap, addressing beyond 4 GiB in the
guest and from Python, reservations capped by the policy, and the Python
types, and a wasm64 program built by a real toolchain.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from asyncwasm import (
    FUNCREF,
    LinkError,
    Limits,
    Linker,
    Memory,
    MemoryType,
    Module,
    Table,
    TableType,
    Trap,
)

from asyncwasm import _engine
from asyncwasm.lowlevel import Fiber, Outcome

from .guests import build as guest_build
from .test_engine_runtime import vm_kib
from .wat import wat

PAGE = 65536
U64 = (1 << 64) - 1

ACCESS = """
(module
  (memory (export "memory") i64 1 8)
  (func (export "load") (param i64) (result i64) (i64.load (local.get 0)))
  (func (export "load_far") (param i64) (result i32) (i32.load8_u offset=0x20 (local.get 0)))
  (func (export "store") (param i64 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "size") (result i64) (memory.size))
  (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0)))
  (func (export "fill") (param i64 i32 i64) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i64 i64 i64) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
)
"""


@pytest.fixture
def access():
    return Linker().instantiate(Module(wat(ACCESS)))


def test_i64_addresses_and_sizes(access) -> None:
    access.exports["store"](PAGE - 8, 0x0102030405060708)
    assert access.exports["load"](PAGE - 8) == 0x0102030405060708
    assert access.exports["memory"].read(PAGE - 8, 8) == (0x0102030405060708).to_bytes(8, "little")
    assert access.exports["size"]() == 1
    assert access.exports["grow"](2) == 1
    assert access.exports["size"]() == 3
    assert access.exports["grow"](6) == -1  # past the declared maximum 8: -1 as an i64
    assert access.exports["grow"](1 << 40) == -1
    assert access.exports["grow"](U64) == -1  # a delta near 2^64 does not wrap into a small one
    assert access.exports["size"]() == 3


def test_bounds_are_exact_and_cannot_wrap(access) -> None:
    assert access.exports["load"](PAGE - 8) == 0
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["load"](PAGE - 7)
    assert access.exports["load_far"](PAGE - 0x21) == 0
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["load_far"](PAGE - 0x20)
    # address + offset wraps past 2^64 to 0x10, in bounds: must trap all the same.
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["load_far"](U64 - 0x0F)
    # ... and so must address + width (0xFFFF...F8 + 8 wraps to 0).
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["load"](U64 - 7)
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["load"](1 << 32)  # the low 32 bits (0) would be in bounds
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["store"](1 << 32, -1)
    assert access.exports["memory"].read(0, 8) == bytes(8)


def test_bulk_ranges_cannot_wrap(access) -> None:
    access.exports["fill"](PAGE - 4, 0x5A, 4)
    assert access.exports["memory"].read(PAGE - 4, 4) == b"ZZZZ"
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["fill"](U64, 0, 2)  # d + n wraps to 1
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["fill"](16, 0, U64 - 15)  # so does n + d
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["copy"](0, U64, 2)
    with pytest.raises(Trap, match="out of bounds memory access"):
        access.exports["copy"](1 << 32, 0, 1)
    access.exports["copy"](0, PAGE - 4, 4)
    assert access.exports["memory"].read(0, 4) == b"ZZZZ"
    access.exports["fill"](PAGE, 0, 0)  # empty at the very end: fine


def test_limits_cap_a_memory64() -> None:
    module = Module(wat(ACCESS))
    instance = Linker().instantiate(module, limits=Limits(max_memory_pages=2))
    assert instance.exports["grow"](1) == 1
    assert instance.exports["grow"](1) == -1  # the policy caps it at 2 pages, below its max 8
    with pytest.raises(LinkError, match="memory 0 needs 3 pages, above the limit of 2 pages"):
        Linker().instantiate(Module(wat('(module (memory i64 3))')), limits=Limits(max_memory_pages=2))


def test_reservation_is_capped_like_a_memory32() -> None:
    """No declared maximum: the default policy reserves 4 GiB of address
    space (as for a memory32), not the 2^48 pages a memory64 may address."""
    _engine.release_memory_pool()  # reservations kept from freed memories would be reused
    before = vm_kib("VmSize")
    small = Memory(MemoryType(1, 16, is_64=True))
    assert vm_kib("VmSize") - before <= 2 * 1024  # 1 MiB, its declared maximum
    unbounded = Linker().instantiate(Module(wat('(module (memory (export "m") i64 1))')))
    grown = vm_kib("VmSize") - before  # other mappings may come and go meanwhile (allocators): +-64 MiB
    assert 4 * 1024 * 1024 - 65536 <= grown <= 4 * 1024 * 1024 + 65536
    assert unbounded.exports["m"].grow(65535) == 1  # up to 4 GiB under the default policy ...
    with pytest.raises(Exception, match="refused"):
        unbounded.exports["m"].grow(1)  # ... and not a page more
    del small, unbounded


BIG_PAGES = 65536 + 2  # 4 GiB + 128 KiB
BIG = f"""
(module
  (memory (export "memory") i64 {BIG_PAGES} {BIG_PAGES})
  (func (export "store") (param i64 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "load") (param i64) (result i64) (i64.load (local.get 0)))
  (func (export "load32") (param i32) (result i64) (i64.load (i64.extend_i32_u (local.get 0))))
)
"""


def test_a_memory_beyond_4_gib() -> None:
    """Sparse: the pages are reserved and made accessible, but only the few
    touched ones are ever backed by RAM."""
    try:
        instance = Linker().instantiate(Module(wat(BIG)), limits=Limits(max_memory_pages=BIG_PAGES))
    except MemoryError as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"cannot reserve a {BIG_PAGES * PAGE} byte memory here: {e}")
    end = BIG_PAGES * PAGE
    far = (1 << 32) + 0x10  # aliases 0x10 if anything truncates to 32 bits
    memory = instance.exports["memory"]
    instance.exports["store"](far, 0x7766554433221100)
    assert instance.exports["load"](far) == 0x7766554433221100
    assert instance.exports["load"](0x10) == 0
    assert memory.read(far, 8) == (0x7766554433221100).to_bytes(8, "little")
    memory.write(end - 8, b"the end!")
    assert instance.exports["load"](end - 8) == int.from_bytes(b"the end!", "little")
    with pytest.raises(Trap, match="out of bounds memory access"):
        instance.exports["load"](end - 7)
    with pytest.raises(IndexError):
        memory.read(end - 7, 8)
    view = memory.view()
    assert len(view) == end
    assert bytes(view[far:far + 8]) == (0x7766554433221100).to_bytes(8, "little")
    assert memory.data_len == end and memory.size == BIG_PAGES


TABLE64 = """
(module
  (type $v (func (result i32)))
  (table $t (export "t") i64 2 10 funcref)
  (elem (table $t) (i64.const 0) func $zero $one)
  (func $zero (type $v) (i32.const 0))
  (func $one (type $v) (i32.const 1))
  (func (export "call") (param i64) (result i32) (call_indirect $t (type $v) (local.get 0)))
  (func (export "is_null") (param i64) (result i32) (ref.is_null (table.get $t (local.get 0))))
  (func (export "set_null") (param i64) (table.set $t (local.get 0) (ref.null func)))
  (func (export "size") (result i64) (table.size $t))
  (func (export "grow") (param i64) (result i64) (table.grow $t (ref.null func) (local.get 0)))
  (func (export "fill") (param i64 i64) (table.fill $t (local.get 0) (ref.null func) (local.get 1)))
)
"""


def test_table64_indices_are_not_truncated() -> None:
    instance = Linker().instantiate(Module(wat(TABLE64)))
    e = instance.exports
    assert e["call"](1) == 1
    with pytest.raises(Trap, match="undefined element"):
        e["call"]((1 << 32) + 1)  # would call $one if the index were truncated
    with pytest.raises(Trap, match="out of bounds table access"):
        e["is_null"]((1 << 32) + 1)
    with pytest.raises(Trap, match="out of bounds table access"):
        e["set_null"](-1)
    assert e["size"]() == 2
    assert e["grow"](3) == 2
    assert e["grow"](1 << 40) == -1  # -1 as an i64
    assert e["size"]() == 5
    with pytest.raises(Trap, match="out of bounds table access"):
        e["fill"](1, U64)
    assert e["call"](1) == 1  # the trapping fill wrote nothing
    e["fill"](0, 2)
    assert e["is_null"](1) == 1


def test_python_types_carry_the_address_type() -> None:
    module = Module(wat('(module (import "env" "m" (memory i64 1)) (table (export "t") i64 1 funcref))'))
    assert module.imports[0].type == MemoryType(1, is_64=True)
    assert str(module.imports[0].type) == "memory i64 1"
    assert module.exports[0].type == TableType(FUNCREF, 1, is_64=True)
    linker = Linker()
    linker.define("env", "m", Memory(MemoryType(1)))  # a memory32 does not satisfy a memory64 import
    with pytest.raises(LinkError, match="expected memory i64 1, found memory 1"):
        linker.instantiate(module)
    linker = Linker()
    linker.define("env", "m", Memory(MemoryType(2, is_64=True)))
    instance = linker.instantiate(module)
    assert instance.exports["t"].type == TableType(FUNCREF, 1, is_64=True)
    assert Table(TableType(FUNCREF, 1, is_64=True)).type.is_64
    with pytest.raises(ValueError):
        MemoryType((1 << 48) + 1, is_64=True)
    with pytest.raises(ValueError):
        MemoryType(65537)  # a memory32 stays within 4 GiB


GUEST = Path(__file__).resolve().parent / "guests" / "mem64.wasm"
GUEST_ARGS = (0, 1, 1000, 20_000)


def test_a_wasm64_program_built_by_zig_matches_its_native_build(tmp_path: Path) -> None:
    """tests/guests/mem64.c, built by zig cc for wasm64 (64-bit pointers, a
    heap grown with i64 memory.grow): the same checksums as a gcc build,
    called directly and run in fuel slices of a few units."""
    try:
        native = guest_build.build_native("mem64", tmp_path / "mem64")
    except guest_build.ToolchainMissing as e:
        pytest.skip(str(e))
    out = subprocess.run([str(native), *map(str, GUEST_ARGS)], capture_output=True, text=True, timeout=60, check=True)
    want = [int(line) for line in out.stdout.split()]
    module = Module.from_file(GUEST)
    assert module.exports[0].type.is_64
    instance = Linker().instantiate(module)
    assert [instance.exports["run"](n) & U64 for n in GUEST_ARGS] == want
    assert instance.exports["heap_pages"]() > module.exports[0].type.min  # it grew its heap
    fiber = Fiber(Linker().instantiate(module).exports["run"], (300,))
    runs = 0
    while (outcome := fiber.run(max(5, fiber.fuel_needed))) == Outcome.OUT_OF_FUEL:
        runs += 1
    out = subprocess.run([str(native), "300"], capture_output=True, text=True, timeout=60, check=True)
    assert outcome == Outcome.DONE and fiber.results[0] & U64 == int(out.stdout) and runs > 1000


def test_run_max_memory_above_4_gib_caps_a_memory64(tmp_path: Path) -> None:
    """``asyncwasm run --max-memory`` takes caps above 4 GiB: they apply to a
    memory64 (a grow to 4 GiB + 64 KiB succeeds under 5GiB and is refused
    under 4GiB), while a 32-bit memory still stops at 4 GiB."""
    from .test_cli_run import run_cli

    module = tmp_path / "grow64.wasm"
    module.write_bytes(wat('(module (memory i64 0) '
                           '(func (export "grow") (param i64) (result i64) (memory.grow (local.get 0))))'))
    wanted = (1 << 16) + 1  # pages: one past what a 32-bit memory can have
    above = run_cli("--max-memory", "5GiB", "--invoke", "grow", module, wanted)
    if above.returncode != 0 and b"cannot reserve" in above.stderr:  # pragma: no cover - depends on the machine
        pytest.skip(f"cannot reserve 5 GiB of address space here: {above.stderr.decode().strip()}")
    assert (above.returncode, above.stdout.split()) == (0, [b"0"]), above.stderr
    below = run_cli("--max-memory", "4GiB", "--invoke", "grow", module, wanted)
    assert (below.returncode, below.stdout.split()) == (0, [b"-1"]), below.stderr
    huge = run_cli("--max-memory", "20000000TiB", "--invoke", "grow", module, 1)
    assert huge.returncode == 2 and b"more than a memory can hold" in huge.stderr


def test_a_wasm64_wasi_import_is_a_link_error() -> None:
    """WASI preview1 is a 32-bit interface: a wasm64 program importing it with
    i64 pointers gets a LinkError naming the import, not a guest that reads
    truncated pointers."""
    from asyncwasm import WasiConfig

    module = Module(wat('(module (import "wasi_snapshot_preview1" "fd_write" '
                        '(func (param i64 i64 i64 i64) (result i32))) (memory (export "memory") i64 1))'))
    linker = Linker()
    linker.define_wasi(WasiConfig())
    with pytest.raises(LinkError, match="fd_write"):
        linker.instantiate(module)
