"""Fixed-width SIMD as asyncwasm users see it.

The spec suite (tests/spec, every simd_* script) checks the instructions;
these tests check what is particular to asyncwasm: v128 values in Python
(a 128-bit little-endian int), canonical NaNs, v128 values at any slot of a
frame, a full constant pool, fuel and resumption on SIMD code, traps.
"""

from __future__ import annotations

import struct

import pytest

import asyncwasm
from asyncwasm import V128, FuncType, Global, GlobalType, Limits, Linker, Module, Trap
from asyncwasm.lowlevel import Fiber, Outcome

from .wat import wat

F32_NAN_PAYLOAD = 0x7FA00001  # a signalling NaN with a payload
CANONICAL_F32_NAN = 0x7FC00000


def _lanes32(*values: int) -> int:
    return sum((v & 0xFFFFFFFF) << (32 * i) for i, v in enumerate(values))


def _instance(text: str, linker: Linker | None = None, **limits: int) -> asyncwasm.Instance:
    return (linker or Linker()).instantiate(Module(wat(text)), Limits(**limits) if limits else None)


def test_v128_is_a_little_endian_int_in_calls_and_results() -> None:
    inst = _instance("""(module (func (export "add") (param v128 v128) (result v128)
        (i32x4.add (local.get 0) (local.get 1))))""")
    add = inst.exports["add"]
    assert add.type == FuncType([V128, V128], [V128])
    got = add(_lanes32(1, 2, 3, 4), _lanes32(10, 20, 30, 0xFFFFFFFF))
    assert got == _lanes32(11, 22, 33, 3)  # lane 0 is the low 32 bits; lanes wrap
    assert add.call_raw(_lanes32(1, 2, 3, 4), 0) == (_lanes32(1, 2, 3, 4),)
    assert add(-1, _lanes32(1, 1, 1, 1)) == 0  # -1 is all ones (two's complement)
    assert add(-2, 0) == 2**128 - 2  # results are unsigned
    assert add(2**128 - 1, 0) == 2**128 - 1
    with pytest.raises(OverflowError):
        add(2**128, 0)
    with pytest.raises(OverflowError):
        add(-(2**127) - 1, 0)
    with pytest.raises(TypeError):
        add(1.5, 0)


def test_v128_globals_and_host_functions() -> None:
    linker = Linker()
    seen = []

    def host(v: int) -> int:
        seen.append(v)
        return v ^ (2**128 - 1)

    linker.define_func("env", "flip", FuncType([V128], [V128]), host)
    linker.define("env", "g", Global(GlobalType(V128, mutable=True), _lanes32(7, 0, 0, 9)))
    inst = _instance("""(module
        (import "env" "flip" (func $flip (param v128) (result v128)))
        (import "env" "g" (global $g (mut v128)))
        (global $mine (export "mine") (mut v128) (v128.const i64x2 5 6))
        (func (export "run") (result v128)
          (global.set $mine (call $flip (global.get $g)))
          (global.get $mine)))""", linker)
    expect = _lanes32(7, 0, 0, 9) ^ (2**128 - 1)
    assert inst.exports["run"]() == expect
    assert seen == [_lanes32(7, 0, 0, 9)]
    assert inst.exports["mine"].value == expect
    inst.exports["mine"].value = 5 | 6 << 64
    assert inst.exports["mine"].value == 5 | 6 << 64


def test_float_lanes_produce_canonical_nans() -> None:
    inst = _instance("""(module
        (func (export "add") (param v128 v128) (result v128) (f32x4.add (local.get 0) (local.get 1)))
        (func (export "min") (param v128 v128) (result v128) (f32x4.min (local.get 0) (local.get 1)))
        (func (export "sqrt") (param v128) (result v128) (f32x4.sqrt (local.get 0)))
        (func (export "pmin") (param v128 v128) (result v128) (f32x4.pmin (local.get 0) (local.get 1)))
        (func (export "neg") (param v128) (result v128) (f32x4.neg (local.get 0))))""")
    one = struct.unpack("<I", struct.pack("<f", 1.0))[0]
    nans = _lanes32(F32_NAN_PAYLOAD, 0xFFC00001, one, 0x7F800000)
    ones = _lanes32(one, F32_NAN_PAYLOAD, 0xFF800000, 0xFF800000)  # inf + -inf: NaN too
    canon = CANONICAL_F32_NAN
    assert inst.exports["add"](nans, ones) == _lanes32(canon, canon, 0xFF800000, canon)
    assert inst.exports["min"](nans, ones) == _lanes32(canon, canon, 0xFF800000, 0xFF800000)
    assert inst.exports["sqrt"](nans) == _lanes32(canon, canon, one, 0x7F800000)
    # pmin and neg are bit operations: a NaN comes through as it is
    assert inst.exports["pmin"](nans, ones) == _lanes32(F32_NAN_PAYLOAD, 0xFFC00001, 0xFF800000, 0xFF800000)
    assert inst.exports["neg"](nans) == nans ^ _lanes32(*[0x80000000] * 4)


def _add16(x: int, y: int) -> int:
    return sum((((x >> s) + (y >> s)) & 0xFFFF) << s for s in range(0, 128, 16))


def test_v128_values_at_odd_slots_and_across_calls_blocks_and_branches() -> None:
    # An i32 param first: the v128 locals and operands start at odd slots.
    inst = _instance("""(module
        (func $swap (param v128 v128) (result v128 v128) (local.get 1) (local.get 0))
        (func (export "run") (param $k i32) (param $a v128) (result v128)
          (local $b v128) (local $i i32)
          (local.set $b (i8x16.splat (local.get $k)))
          (block $out (result v128)
            (local.get $a)
            (loop $next (param v128) (result v128)
              (local.set $a)
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (call $swap (local.get $a) (local.get $b))
              (local.set $b)
              (local.set $a)
              (i16x8.add (local.get $a) (local.get $b))
              (br_if $next (i32.lt_u (local.get $i) (i32.const 5)))
              (drop)
              (br $out (select (result v128) (local.get $b) (v128.const i64x2 0 0) (local.get $k)))))))""")
    start = 0x0102030405060708090A0B0C0D0E0F10
    for k in (3, 0x80, 0):
        p, b = start, int.from_bytes(bytes([k]) * 16, "little")
        for _ in range(5):
            a, b = b, p
            p = _add16(a, b)
        assert inst.exports["run"](k, start) == (b if k else 0)


def test_more_v128_constants_than_the_pool_holds() -> None:
    # 300 distinct constants: the pool (256 slots, 2 per v128) overflows and
    # the rest become V128_CONST instructions; the sum checks every one.
    body = "(v128.const i64x2 0 0)" + "".join(f" (v128.const i64x2 {k} {3 * k}) (i64x2.add)" for k in range(1, 301))
    inst = _instance(f'(module (func (export "sum") (result v128) {body}))')
    total = sum(range(1, 301))
    assert inst.exports["sum"]() == total | (3 * total) << 64


LOOP = """(module (memory (export "mem") 1)
  (func (export "run") (param $n i32) (result v128)
    (local $acc v128) (local $i i32)
    (loop $l
      (local.set $acc (i32x4.add (local.get $acc)
        (i32x4.mul (v128.load offset=16 (i32.and (i32.shl (local.get $i) (i32.const 4)) (i32.const 0xFFF)))
                   (i32x4.splat (local.get $i)))))
      (v128.store (i32.const 0) (local.get $acc))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (local.get $acc)))"""


def test_simd_code_resumes_at_every_instruction_and_counts_fuel() -> None:
    module = Module(wat(LOOP))
    whole = Linker().instantiate(module)
    whole.exports["mem"].write(16, bytes(range(256)) * 16)
    expected = whole.exports["run"](100)
    sliced = Linker().instantiate(module)
    sliced.exports["mem"].write(16, bytes(range(256)) * 16)
    fiber = Fiber(sliced.exports["run"], (100,), raw=True)
    runs = 0
    while (outcome := fiber.run(max(1, fiber.fuel_needed))) == Outcome.OUT_OF_FUEL:
        runs += 1
    assert outcome == Outcome.DONE
    assert fiber.results == (expected,)
    assert runs > 100  # stopped inside the loop many times
    # every Wasm instruction costs 1, SIMD or not: 22 per iteration
    counted = Linker().instantiate(module, Limits(fuel=10**6))
    used = []
    for n in (10, 20, 30):
        before = counted.statistics().fuel_used
        counted.exports["run"](n)
        used.append(counted.statistics().fuel_used - before)
    assert used[1] - used[0] == used[2] - used[1] == 10 * 22


def test_simd_memory_traps_name_the_instruction() -> None:
    inst = _instance("""(module (memory 1)
        (func (export "load") (param i32) (result v128) (v128.load offset=8 (local.get 0)))
        (func (export "lane") (param i32) (param v128) (v128.store64_lane 1 (local.get 0) (local.get 1))))""")
    assert inst.exports["load"](65536 - 24) == 0
    with pytest.raises(Trap) as info:
        inst.exports["load"](65536 - 23)
    assert info.value.kind == "out of bounds memory access"
    assert info.value.frames[0].func_index == 0
    with pytest.raises(Trap, match="out of bounds memory access"):
        inst.exports["lane"](65536 - 7, 0)


def test_simd_validation_errors_name_the_rule_and_instruction() -> None:
    with pytest.raises(asyncwasm.ValidationError, match=r"^invalid lane index 4 in i32x4.extract_lane.*must be below 4"):
        Module(wat('(module (func (result i32) (i32x4.extract_lane 3 (v128.const i64x2 0 0))))').replace(
            b"\xfd\x1b\x03", b"\xfd\x1b\x04"))
    with pytest.raises(asyncwasm.ValidationError, match=r"^type mismatch in i8x16.add.*: expected v128, found i32"):
        Module(wat('(module (func (result v128) (i8x16.add (v128.const i64x2 0 0) (v128.const i64x2 0 0))))').replace(
            b"\xfd\x0c" + bytes(16) + b"\xfd\x6e", b"\x41\x00" + b"\x01" * 16 + b"\xfd\x6e"))
    with pytest.raises(asyncwasm.MalformedError, match=r"^illegal opcode 0xfd 154"):
        Module(wat('(module (func (param v128) (result v128) (i16x8.abs (local.get 0))))').replace(
            b"\xfd\x80\x01", b"\xfd\x9a\x01"))
