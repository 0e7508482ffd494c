"""Multi-memory (Wasm 3.0): any number of memories, defined and imported,
named by index on every load, store and memory.* instruction.

The 3.0 spec testsuite covers the instruction semantics (tests/spec:
memory-multi, load0..2, store0..2, memory_copy1, data0..1, ...); these tests
check what the engine promises beyond it: the Python API sees each memory,
WASI binds the memory exported as "memory", bounds are exact per memory,
memory.copy crosses memories, and limits apply to every memory.
"""

from __future__ import annotations

import gc

import pytest

from asyncwasm import (
    Caller,
    FuncType,
    I32,
    Instance,
    LinkError,
    Limits,
    Linker,
    Memory,
    MemoryBudget,
    MemoryType,
    Module,
    Trap,
    WasiConfig,
)

from .wat import wat

PAGE = 65536

THREE = """
(module
  (memory $a (export "a") 1 4)
  (memory $b (export "b") 2 4)
  (memory $c (export "c") 0 4)
  (data (memory $b) (i32.const 16) "in b")
  (data (memory $a) (i32.const 16) "in a")
  (data $init "passive")

  (func (export "load_a") (param i32) (result i32) (i32.load $a (local.get 0)))
  (func (export "load_b") (param i32) (result i32) (i32.load $b (local.get 0)))
  (func (export "load8_b") (param i32) (result i32) (i32.load8_u $b offset=1 (local.get 0)))
  (func (export "store_b") (param i32 i64) (i64.store $b (local.get 0) (local.get 1)))
  (func (export "store_a") (param i32 i64) (i64.store $a (local.get 0) (local.get 1)))
  (func (export "copy_a_to_b") (param i32 i32 i32)
    (memory.copy $b $a (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy_b_to_a") (param i32 i32 i32)
    (memory.copy $a $b (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fill_b") (param i32 i32 i32) (memory.fill $b (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init_b") (param i32 i32 i32) (memory.init $b $init (local.get 0) (local.get 1) (local.get 2)))
  (func (export "sizes") (result i32 i32 i32)
    (memory.size $a) (memory.size $b) (memory.size $c))
  (func (export "grow_c") (param i32) (result i32) (memory.grow $c (local.get 0)))
  (func (export "grow_a") (param i32) (result i32) (memory.grow $a (local.get 0)))
)
"""


@pytest.fixture
def three():
    return Linker().instantiate(Module(wat(THREE)))


def test_each_memory_is_its_own_export(three) -> None:
    a, b, c = (three.exports[n] for n in "abc")
    assert all(isinstance(m, Memory) for m in (a, b, c))
    assert (a.size, b.size, c.size) == (1, 2, 0)
    assert a.read(16, 4) == b"in a" and b.read(16, 4) == b"in b"  # each segment in its memory
    three.exports["store_b"](100, 0x1122334455667788)
    assert b.read(100, 8) == (0x1122334455667788).to_bytes(8, "little")
    assert a.read(100, 8) == bytes(8)  # memory a untouched
    a.write(200, b"\x01\x02\x03\x04")
    assert three.exports["load_a"](200) == 0x04030201
    assert three.exports["load_b"](200) == 0
    assert three.exports["load8_b"](15) == ord("i")


def test_sizes_and_grow_are_per_memory(three) -> None:
    assert three.exports["sizes"]() == (1, 2, 0)
    assert three.exports["grow_c"](3) == 0
    assert three.exports["sizes"]() == (1, 2, 3)
    assert three.exports["grow_c"](2) == -1  # past c's declared maximum 4
    assert three.exports["c"].size == 3
    three.exports["c"].write(3 * PAGE - 1, b"z")  # committed: the grown memory is usable from Python
    assert three.exports["grow_a"](3) == 1
    assert three.exports["sizes"]() == (4, 2, 3)
    # memory 0 grew through the _X path: its cached fast-path size follows.
    assert three.exports["load_a"](4 * PAGE - 4) == 0
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["load_a"](4 * PAGE - 3)


def test_bounds_are_exact_per_memory(three) -> None:
    assert three.exports["load_b"](2 * PAGE - 4) == 0
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["load_b"](2 * PAGE - 3)  # memory b has two pages
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["load_a"](PAGE - 3)  # memory a has one
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["load_b"](0xFFFF_FFFF)  # a memory32 address + width: no wrap to 3
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["store_a"](PAGE - 7, -1)
    assert three.exports["a"].read(PAGE - 8, 8) == bytes(8)  # nothing written by the trapping store


def test_memory_copy_between_memories(three) -> None:
    a, b = three.exports["a"], three.exports["b"]
    a.write(1000, b"cross-memory")
    three.exports["copy_a_to_b"](2 * PAGE - 12, 1000, 12)  # to the very end of b
    assert b.read(2 * PAGE - 12, 12) == b"cross-memory"
    three.exports["copy_b_to_a"](PAGE - 12, 2 * PAGE - 12, 12)  # and back, to the end of a
    assert a.read(PAGE - 12, 12) == b"cross-memory"
    # The destination is a (one page): a length that fits b but not a traps, writing nothing.
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["copy_b_to_a"](PAGE - 11, 2 * PAGE - 12, 12)
    with pytest.raises(Trap, match="out of bounds memory access"):  # source past b's end
        three.exports["copy_b_to_a"](0, 2 * PAGE - 11, 12)
    assert a.read(0, 12) == bytes(12)
    three.exports["copy_a_to_b"](0, PAGE, 0)  # empty copies at the very end are fine
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["copy_a_to_b"](0, PAGE + 1, 0)


def test_fill_and_init_name_their_memory(three) -> None:
    a, b = three.exports["a"], three.exports["b"]
    three.exports["fill_b"](PAGE + 10, 0xAB, 5)
    assert b.read(PAGE + 10, 5) == b"\xab" * 5 and a.read(10, 5) == bytes(5)
    three.exports["init_b"](PAGE + 100, 0, 7)
    assert b.read(PAGE + 100, 7) == b"passive"
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["init_b"](2 * PAGE - 6, 0, 7)
    with pytest.raises(Trap, match="out of bounds memory access"):
        three.exports["fill_b"](2 * PAGE - 4, 0, 5)


def test_limits_apply_to_every_memory() -> None:
    module = Module(wat(THREE))
    instance = Linker().instantiate(module, limits=Limits(max_memory_pages=3))
    assert instance.exports["grow_c"](3) == 0
    assert instance.exports["grow_c"](1) == -1  # the policy caps memory c at 3 pages, below its max 4
    assert instance.exports["grow_a"](2) == 1
    assert instance.exports["grow_a"](1) == -1
    with pytest.raises(LinkError, match=r"memory 1 needs 2 pages, above the limit of 1 pages"):
        Linker().instantiate(module, limits=Limits(max_memory_pages=1))  # b's minimum is 2


IMPORTS = """
(module
  (import "env" "m0" (memory 1))
  (import "env" "m1" (memory 1 2))
  (memory $own (export "own") 1)
  (func (export "move") (param i32)   ;; m1[p] = m0[p] + own[p]
    (i32.store 1 (local.get 0)
      (i32.add (i32.load 0 (local.get 0)) (i32.load 2 (local.get 0)))))
)
"""


def test_imported_memories_are_shared_by_index() -> None:
    m0, m1 = Memory(MemoryType(1)), Memory(MemoryType(1, 2))
    linker = Linker()
    linker.define("env", "m0", m0)
    linker.define("env", "m1", m1)
    instance = linker.instantiate(Module(wat(IMPORTS)))
    m0.write(8, (40).to_bytes(4, "little"))
    instance.exports["own"].write(8, (2).to_bytes(4, "little"))
    instance.exports["move"](8)
    assert m1.read(8, 4) == (42).to_bytes(4, "little")
    wrong = Linker()
    wrong.define("env", "m0", m0)
    wrong.define("env", "m1", Memory(MemoryType(1)))  # no maximum: does not match "1 2"
    with pytest.raises(LinkError, match="m1"):
        wrong.instantiate(Module(wat(IMPORTS)))


WASI_GUEST = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory $scratch 1)
  (memory $main (export "{name}") 1)
  ;; In both memories: an iovec at 0 for the text at 16, and the text itself.
  (data (memory $scratch) (i32.const 0) "\\10\\00\\00\\00\\0e\\00\\00\\00")
  (data (memory $scratch) (i32.const 16) "from memory 0\\n")
  (data (memory $main) (i32.const 0) "\\10\\00\\00\\00\\0e\\00\\00\\00")
  (data (memory $main) (i32.const 16) "from memory 1\\n")
  (func (export "_start") (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
)
"""


@pytest.mark.parametrize(("export_name", "expected"), [("memory", b"from memory 1\n"), ("other", b"from memory 0\n")])
def test_wasi_binds_the_memory_exported_as_memory(export_name: str, expected: bytes) -> None:
    out = bytearray()
    linker = Linker()
    linker.define_wasi(WasiConfig(stdout=out))
    instance = linker.instantiate(Module(wat(WASI_GUEST.replace("{name}", export_name))))
    try:
        instance.exports["_start"]()
    finally:
        instance.close()
    assert bytes(out) == expected


def test_a_caller_sees_the_memory_exported_as_memory() -> None:
    seen = []

    def peek(caller: Caller, at: int) -> None:
        seen.append(caller.memory.read(at, 2))

    linker = Linker()
    linker.define_func("env", "peek", FuncType([I32], []), peek, access_caller=True)
    module = Module(wat("""
      (module
        (import "env" "peek" (func $peek (param i32)))
        (memory 1) (memory (export "memory") 1)
        (data (memory 0) (i32.const 0) "m0") (data (memory 1) (i32.const 0) "m1")
        (func (export "go") (call $peek (i32.const 0))))"""))
    linker.instantiate(module).exports["go"]()
    assert seen == [b"m1"]


def test_a_memory_budget_counts_every_memory_of_every_address_type():
    """One MemoryBudget holds the pages of all of an instance's memories,
    32- and 64-bit alike: grows of any of them draw on it, a grow past it
    is -1 on that memory only, and every page comes back with the instance."""
    module = Module(wat("""
      (module
        (memory $a (export "a") 1 8)
        (memory $b (export "b") i64 2 8)
        (func (export "grow_a") (param i32) (result i32) (memory.grow $a (local.get 0)))
        (func (export "grow_b") (param i64) (result i64) (memory.grow $b (local.get 0))))"""))
    budget = MemoryBudget(6)
    instance = Instance(module, limits=Limits(memory_budget=budget))
    exports = instance.exports
    assert budget.used_pages == 3 and exports["a"].budget is budget and exports["b"].budget is budget
    assert exports["grow_b"](2) == 2 and budget.used_pages == 5
    assert exports["grow_a"](2) == -1 and exports["a"].refused_grows == 1  # 1 page left, 2 asked
    assert exports["grow_a"](1) == 1 and budget.used_pages == 6
    assert exports["grow_b"](1) == -1 and budget.refused == 2
    assert (exports["a"].size, exports["b"].size) == (2, 4)
    del instance, exports
    gc.collect()
    assert budget.used_pages == 0
