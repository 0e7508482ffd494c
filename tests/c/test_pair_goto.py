"""PAIR_GOTO rows: a pair whose second member may trap, jump or call
(compile_pairs.inc; opcodes.def PAIR_GOTO). The handler runs the first's
body, steps ip to the second's own opcode word (left in place) and jumps
to the second's handler, so that the second traps, stops for fuel and
resumes as itself.

The rows were chosen from the benchmark kernels' hot loops, so the kernels
(at small sizes) are the programs that run every row: each is checked
against wasmtime, and run in every fuel slice from 1 to 13 with the same
result and the same fuel as in one go (with fuel 1 every chain stops: the
stops at a pair's jump or call resume at the second member alone, and a
first member such as `p += 1` run again would show). Hand-written loops
check that a trap in either member reports that member's module offset.
front_check's dump finds every row in the kernels' code and verifies it
(no jump into a pair; every member's opcode word and srcmap pair kept).

    python -m pytest tests/c/test_pair_goto.py -q
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import wasmtime

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
from tests.c.rows import OPCODES, sliced  # noqa: E402
from tests.c.test_pairs import KERNEL_PAIRS  # noqa: E402
from tests.wat import wat  # noqa: E402

PAIR_GOTO = re.findall(r"^PAIR_GOTO\((\w+),", OPCODES, re.M)
WASM = ROOT / "benchmarks" / "wasm"
# Sizes at which every kernel's loops run a few rounds, in a fraction of a second sliced.
SIZES = {"fib": 11, "sieve": 2000, "matmul": 10, "sha256": 200, "quicksort": 150, "strings": 40, "nbody": 20}


def _kernel(name: str) -> bytes:
    return (WASM / f"{name}.wasm").read_bytes()


def test_every_pair_goto_row_occurs_in_the_kernels(dump):
    """Every PAIR_GOTO row, and the PAIR rows of chains the random programs
    of test_pairs.py do not make, runs in the kernels (as an instruction or
    as a member of a longer pair, which the dump names too)."""
    assert len(PAIR_GOTO) >= 20, "opcodes.def PAIR_GOTO rows not found"
    seen = set()
    for module in [_kernel(name) for name in SIZES] + [HAND]:
        for i in range(16):  # the kernels have a few functions
            out = dump(module, i)
            if "not a defined function" in out:
                break
            seen.update(re.findall(r"\b[A-Z][A-Z0-9_]*\b", out))
    rows = set(PAIR_GOTO) | KERNEL_PAIRS
    assert rows <= seen, rows - seen


@pytest.mark.parametrize("name", sorted(SIZES))
def test_kernels_match_wasmtime_and_resume_in_any_fuel_slice(name):
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, _kernel(name)), []).exports(store)["run"]
    run = asyncwasm.Linker().instantiate(asyncwasm.Module(_kernel(name))).exports["run"]
    n = SIZES[name]
    assert run(n) == ref(store, n)
    whole = sliced(run, (n,), 10**9)
    assert whole[0] == (ref(store, n),)
    for fuel in range(1, 14):
        assert sliced(run, (n,), fuel) == whole, fuel


# A scan, `while (p[0] == p[2]) p++` over f64 (F64_LOAD_F64_LOAD: the load at
# the larger offset, the second member, leaves memory first), and a loop storing at p and loading near it (the store a
# first member, the load's LOAD_MUL_ADD_R row the second:
# F64_STORE_F64_LOAD_MUL_ADD_R), in two forms: whichever access has the
# larger offset leaves memory first.
AXPY = """(func (export "{name}") (param $p i32) (param $n i32) (param $x f64) (param $k f64) (result f64)
  (local $acc f64)
  (loop $l
    local.get $p local.get $x f64.store offset={store}
    local.get $acc local.get $p f64.load offset={load} local.get $k f64.mul f64.add local.set $acc
    local.get $p i32.const 8 i32.add local.set $p
    local.get $n i32.const -1 i32.add local.tee $n br_if $l)
  local.get $acc)"""
HAND = wat("""(module (memory 1) (data (i32.const 100) "\\01\\02\\03")
 (func (export "scan") (param $p i32) (result i32) (local $a f64) (local $b f64)
  (loop $l
    local.get $p f64.load local.set $a
    local.get $p f64.load offset=16 local.set $b
    local.get $p i32.const 8 i32.add local.set $p
    local.get $a local.get $b f64.eq br_if $l)
  local.get $p)
 (func $half (param i32) (result i32) local.get 0 i32.const 1 i32.shr_u)
 (func (export "call") (param $n i32) (result i32) (local $s i32)
  (loop $l
    local.get $n i32.const -3 i32.add call $half local.get $s i32.add local.set $s
    local.get $n i32.const -1 i32.add local.tee $n br_if $l)
  local.get $s)
 (func $deep (export "deep") (param i32) (result i32) local.get 0 i32.const 1 i32.add call $deep)"""
            + AXPY.format(name="store_first", store=24, load=8)
            + AXPY.format(name="load_first", store=0, load=24) + ")")


def _offsets(pattern: bytes) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(pattern), HAND)]


def _trap_offset(func, *args) -> int:
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        func(*args)
    return info.value.frames[0].module_offset


def test_a_trap_in_either_member_reports_that_member(dump):
    rows = "".join(dump(HAND, i) for i in range(6))
    assert rows.count("F64_LOAD_F64_LOAD") == 1, rows
    assert rows.count("F64_STORE_F64_LOAD_MUL_ADD_R") == 2, rows
    assert rows.count("I32_ADD_I_CALL_DEFINED") == 2, rows
    ours = asyncwasm.Linker().instantiate(asyncwasm.Module(HAND)).exports
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, HAND), []).exports(store)
    assert ours["scan"](64) == ref["scan"](store, 64) == 88
    for name in ("store_first", "load_first"):
        assert ours[name](64, 30, 1.5, 0.25) == ref[name](store, 64, 30, 1.5, 0.25), name
    # The scan runs off the end of memory: the load (the second member) traps.
    (load,) = _offsets(bytes([0x2B, 0x03, 0x10]))  # f64.load offset=16
    assert _trap_offset(ours["scan"], 65504) == load
    # 8 rounds from 65536 - 24 - 56: the access at offset 24 leaves memory in the last.
    stores, loads = _offsets(bytes([0x39, 0x03])), _offsets(bytes([0x2B, 0x03]))[2:]  # f64.store / AXPY f64.load
    assert len(stores) == len(loads) == 2
    assert _trap_offset(ours["store_first"], 65536 - 80, 8, 1.0, 2.0) == stores[0]
    assert _trap_offset(ours["load_first"], 65536 - 80, 8, 1.0, 2.0) == loads[1]
    # A call as the second member (I32_ADD_I_CALL_DEFINED; in fib it is the
    # second of a longer pair): it computes as apart, and the call stack
    # running out traps at the call.
    assert ours["call"](9) == ref["call"](store, 9)
    (call,) = _offsets(bytes([0x10, 0x03]))  # call $deep
    with pytest.raises(asyncwasm.Trap, match="call stack exhausted") as info:
        ours["deep"](0)
    assert info.value.frames[0].module_offset == call
    # The same stopped and resumed in every slice: the same result, or the same trap.
    for fuel in range(1, 14):
        assert sliced(ours["scan"], (64,), fuel) == sliced(ours["scan"], (64,), 10**9), fuel
        assert sliced(ours["call"], (9,), fuel) == sliced(ours["call"], (9,), 10**9), fuel
        assert (sliced(ours["load_first"], (64, 30, 1.5, 0.25), fuel)
                == sliced(ours["load_first"], (64, 30, 1.5, 0.25), 10**9)), fuel


# The sieve's two store loops (a store as the first member, the loop's test
# the second), on memory that starts dirty, so that every byte each store
# writes (or fails to) shows in memory afterwards.
STORES = wat("""(module (memory (export "memory") 1)
 (func (export "fill") (param $i i32) (param $n i32) (param $v i64)
  (loop $l
    local.get $i i32.const 64 i32.add local.get $v i64.store
    local.get $i i32.const 8 i32.add local.tee $i local.get $n i32.ne br_if $l))
 (func (export "mark") (param $i i32) (param $n i32) (param $step i32) (param $v i32)
  (loop $l
    local.get $i i32.const 64 i32.add local.get $v i32.store8
    local.get $i local.get $step i32.add local.tee $i local.get $n i32.lt_u br_if $l)))""")
DIRTY = bytes(range(256)) * 16


@pytest.mark.parametrize("name, args", [("fill", (8, 2000, 0x0102030405060708)), ("mark", (3, 3000, 7, 0x1FF))])
def test_store_pairs_write_what_the_stores_apart_write(dump, name, args):
    rows = dump(STORES, ["fill", "mark"].index(name))
    assert ("I64_STORE_SUM_I_ADDI_TEST_NE" if name == "fill" else "I32_STORE8_SUM_I_ADD_TEST_LT_U") in rows, rows
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, STORES), []).exports(store)
    ref["memory"].write(store, DIRTY, 0)
    ref[name](store, *args)
    expected = ref["memory"].read(store, 0, len(DIRTY))
    assert expected != DIRTY
    ours = asyncwasm.Linker().instantiate(asyncwasm.Module(STORES)).exports
    for fuel in (10**9, *range(1, 14)):
        ours["memory"].write(0, DIRTY)
        assert sliced(ours[name], args, fuel)[0] == ()
        assert bytes(ours["memory"].read(0, len(DIRTY))) == expected, fuel
