"""The _M64 rows: loads and stores of memory 0 when it is a memory64.

A wasm64 program's usual single memory is memory 0 with i64 addresses; its
loads and stores run on opcodes.def's M64 rows (the interpreter's cached
base and size) instead of the general _X rows, with the i64.add of the
address (SUM) and an operation taking the loaded value (OP) folded in as on
memory32. The plain rows are checked against a Python model of the spec
at the edges that matter: the exact end of memory, an address + offset that wraps past 2^64, an address whose low
32 bits alone would be in bounds; a trap reports the access's own module
offset and writes nothing; a loop of them stops and resumes in any fuel
slice with the same result and fuel. The fused rows are checked against
the same instructions kept apart (through a local), at the same edges.

    python -m pytest tests/c/test_m64_rows.py -q
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
import asyncwasm._engine as E  # noqa: E402
from asyncwasm.execution import Outcome  # noqa: E402
from tests.c.rows import OPCODES, mnemonic  # noqa: E402
from tests.wat import wat  # noqa: E402

ROW = re.compile(r"^(LOAD|STORE)_M64\((\w+)_M64, (\w+), (\w+), (\d)\)", re.M)
PAGE = 65536
U64 = (1 << 64) - 1
PATTERN = bytes((i * 37 + 11) & 0xFF for i in range(PAGE))
OFFSETS = [0, 0x1000, U64 - 0x0F]  # the last wraps past 2^64 for any address >= 0x10


def _rows() -> list[tuple[str, str, str, int]]:
    """(kind, base row, type, access width) of every M64 row."""
    rows = [(kind, base, ty, 1 << int(log2)) for kind, _, base, ty, log2 in ROW.findall(OPCODES)]
    assert len(rows) == 23, "opcodes.def M64 rows not found"
    return rows



def _bits(ty: str) -> str:
    return {"I32": "i32", "F32": "i32", "I64": "i64", "F64": "i64"}[ty]


def _module() -> bytes:
    """l_<row>_<k>(addr): the load at offset OFFSETS[k], as integer bits;
    s_<row>_<k>(addr, value): the store. Memory 0 is the memory64."""
    funcs = []
    for kind, base, ty, _ in _rows():
        t = ty.lower()
        for k, off in enumerate(OFFSETS):
            if kind == "LOAD":
                back = {"f32": " i32.reinterpret_f32", "f64": " i64.reinterpret_f64"}.get(t, "")
                funcs.append(f'(func (export "l_{base}_{k}") (param i64) (result {_bits(ty)})'
                             f" local.get 0 {mnemonic(base)} offset={off}{back})")
            else:
                to = {"f32": " f32.reinterpret_i32", "f64": " f64.reinterpret_i64"}.get(t, "")
                funcs.append(f'(func (export "s_{base}_{k}") (param i64 {_bits(ty)})'
                             f" local.get 0 local.get 1{to} {mnemonic(base)} offset={off})")
    return wat('(module (memory (export "memory") i64 1 1)\n' + "\n".join(funcs) + ")")


def _addresses(off: int, width: int) -> list[int]:
    """Addresses around every edge for an access of `width` bytes at offset `off`."""
    end = PAGE - width - off  # the last in-bounds address (negative when there is none)
    near = [end - 1, end, end + 1] if end >= 0 else []
    return [a & U64 for a in near + [0, 1, 0x10, 1 << 32, (1 << 32) + 8, U64, U64 - 0x0F, U64 - width + 1,
                                     (-off) & U64]]


def _expected_load(base: str, ty: str, width: int, ea: int) -> int:
    value = int.from_bytes(PATTERN[ea:ea + width], "little")
    if base.endswith("_S") and value >> (8 * width - 1):
        value -= 1 << (8 * width)
    return value & ((1 << (32 if _bits(ty) == "i32" else 64)) - 1)


@pytest.fixture(scope="module")
def instance():
    return asyncwasm.Linker().instantiate(asyncwasm.Module(_module()))


@pytest.mark.parametrize("row", [r for r in _rows() if r[0] == "LOAD"], ids=lambda r: r[1])
def test_load_rows_match_the_spec_at_every_edge(instance, row):
    _, base, ty, width = row
    instance.exports["memory"].write(0, PATTERN)
    mask = (1 << (32 if _bits(ty) == "i32" else 64)) - 1
    for k, off in enumerate(OFFSETS):
        func = instance.exports[f"l_{base}_{k}"]
        for addr in _addresses(off, width):
            ea = addr + off  # the spec's effective address: no wrapping
            if ea + width <= PAGE:
                assert func(addr - (1 << 64) if addr >> 63 else addr) & mask == _expected_load(base, ty, width, ea), \
                    (base, off, addr)
            else:
                with pytest.raises(asyncwasm.Trap, match="out of bounds memory access"):
                    func(addr - (1 << 64) if addr >> 63 else addr)


@pytest.mark.parametrize("row", [r for r in _rows() if r[0] == "STORE"], ids=lambda r: r[1])
def test_store_rows_match_the_spec_at_every_edge(instance, row):
    _, base, ty, width = row
    memory = instance.exports["memory"]
    value = 0x8877665544332211 if _bits(ty) == "i64" else 0x44332211
    signed = value - (1 << 64) if value >> 63 else value
    for k, off in enumerate(OFFSETS):
        func = instance.exports[f"s_{base}_{k}"]
        for addr in _addresses(off, width):
            memory.write(0, PATTERN)
            ea = addr + off
            if ea + width <= PAGE:
                func(addr - (1 << 64) if addr >> 63 else addr, signed)
                want = bytearray(PATTERN)
                want[ea:ea + width] = value.to_bytes(8, "little")[:width]
                assert memory.read(0, PAGE) == bytes(want), (base, off, addr)
            else:
                with pytest.raises(asyncwasm.Trap, match="out of bounds memory access"):
                    func(addr - (1 << 64) if addr >> 63 else addr, signed)
                assert memory.read(0, PAGE) == PATTERN, (base, off, addr)  # nothing written


def _check_slices(make, args: tuple, expected, rounds: int) -> None:
    """make()(*args) gives `expected` (its results, masked to u64) run whole
    and in small fuel slices, stopping at least `rounds` times, with the same
    fuel; make() gives the function for each run (a fresh instance where a
    run leaves state behind)."""
    whole = E.Fiber(make(), args)
    assert whole.run(10**9) == Outcome.DONE
    assert tuple(r & U64 if isinstance(r, int) else r for r in whole.results) == expected
    for fuel in (1, 2, 3, 5, 7):
        fiber = E.Fiber(make(), args)
        slice_fuel, stops = fuel, 0
        while (outcome := fiber.run(slice_fuel)) == Outcome.OUT_OF_FUEL:
            slice_fuel = max(fuel, fiber.fuel_needed)
            stops += 1
        assert outcome == Outcome.DONE and stops >= rounds, fuel
        assert tuple(r & U64 if isinstance(r, int) else r for r in fiber.results) == expected, fuel
        assert fiber.fuel_used == whole.fuel_used, fuel


TRAPS = """
(module (memory i64 1)
  (func (export "f") (param i64 i64) (result i64)
    local.get 0 i64.const 7 i64.store offset=3
    local.get 1 i64.load offset=5))
"""


def test_a_trap_reports_the_access_that_failed():
    binary = wat(TRAPS)
    store = binary.index(bytes([0x37, 0x03, 0x03]))  # i64.store align=3 offset=3
    load = binary.index(bytes([0x29, 0x03, 0x05]))  # i64.load align=3 offset=5
    func = asyncwasm.Linker().instantiate(asyncwasm.Module(binary)).exports["f"]
    assert func(PAGE - 11, PAGE - 13) == 7
    for args, at in [((PAGE - 10, 0), store), ((0, PAGE - 12), load), ((-1, 0), store), ((0, -5), load)]:
        with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
            func(*args)
        assert info.value.frames[0].module_offset == at, args


LOOP = """
(module (memory i64 1)
  (func (export "f") (param $n i64) (result i64) (local $i i64) (local $acc i64)
    (loop $l
      (i64.store offset=8 (i64.shl (local.get $i) (i64.const 3))
        (i64.add (local.get $acc) (local.get $i)))
      (local.set $acc (i64.add (local.get $acc)
        (i64.load offset=8 (i64.shl (local.get $i) (i64.const 3)))))
      (f64.store (i64.const 0) (f64.add (f64.load (i64.const 0)) (f64.convert_i64_u (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (i64.add (local.get $acc) (i64.trunc_f64_u (f64.load (i64.const 0))))))
"""


def test_a_loop_of_them_stops_and_resumes_in_any_fuel_slice():
    n = 100
    acc = 0
    for i in range(n):
        acc += acc + i
    expected = (acc + sum(range(n))) & U64
    _check_slices(lambda: asyncwasm.Linker().instantiate(asyncwasm.Module(wat(LOOP))).exports["f"],
                  (n,), (expected,), n)


# ---- LOAD_OP_M64: a load feeding an operation (compile.c F11) ----------------------

FUSED = re.compile(r"^LOAD_OP_M64\((\w+), (\w+), (\w+), (\w+), (\d)\)", re.M)


def _fused_module(rows, apart: bool) -> bytes:
    """f_<name>(x, addr): OP(x, LOAD(addr + 0x100)) as integer bits, fused
    unless `apart` keeps the load and the operation apart through a local."""
    funcs = []
    for name, load, op, ty, _ in rows:
        t = ty.lower()
        to = {"f64": " f64.reinterpret_i64"}.get(t, "")
        back = {"f64": " i64.reinterpret_f64"}.get(t, "")
        keep = f"local.set 2 local.get 2" if apart else ""
        funcs.append(f'(func (export "f_{name}") (param {_bits(ty)} i64) (result {_bits(ty)}) (local {t})'
                     f" local.get 0{to} local.get 1 {mnemonic(load)} offset=0x100 {keep} {mnemonic(op)}{back})")
    return wat('(module (memory (export "memory") i64 1 1)\n' + "\n".join(funcs) + ")")


def test_load_op_rows_match_the_load_and_operation_apart():
    rows = FUSED.findall(OPCODES)
    assert len(rows) >= 11, "opcodes.def LOAD_OP_M64 rows not found"
    fused, apart = (asyncwasm.Linker().instantiate(asyncwasm.Module(_fused_module(rows, a))) for a in (False, True))
    for inst in (fused, apart):
        inst.exports["memory"].write(0, PATTERN)
    for name, _, _, ty, log2 in rows:
        width = 1 << int(log2)
        xs = [0, 1, 0x7FF8000000000001, 0x4010000000000000] if ty == "F64" else [0, 5, 0xFFFFFFFF]
        for addr in _addresses(0x100, width):
            arg = addr - (1 << 64) if addr >> 63 else addr
            for x in xs:
                x = x - (1 << 64) if x >> 63 else x
                if addr + 0x100 + width <= PAGE:
                    assert fused.exports[f"f_{name}"](x, arg) == apart.exports[f"f_{name}"](x, arg), (name, addr, x)
                else:
                    for inst in (fused, apart):
                        with pytest.raises(asyncwasm.Trap, match="out of bounds memory access"):
                            inst.exports[f"f_{name}"](x, arg)


DOT = """
(module (memory (export "memory") i64 1 1)
  (func (export "dot") (param $n i64) (result f64) (local $i i64) (local $acc f64)
    (loop $l
      (local.set $acc (f64.add (local.get $acc)
        (f64.mul (f64.load (i64.shl (local.get $i) (i64.const 3)))
                 (f64.load offset=0x8000 (i64.shl (local.get $i) (i64.const 3))))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))
"""


def test_a_fused_load_traps_at_its_load_and_resumes_in_any_fuel_slice():
    import struct

    binary = wat(DOT)
    second = binary.index(bytes([0x2B, 0x03, 0x80, 0x80, 0x02]))  # f64.load align=3 offset=0x8000
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(binary))
    values = [float(i % 7) - 2.5 for i in range(PAGE // 8)]
    inst.exports["memory"].write(0, struct.pack(f"<{len(values)}d", *values))
    n = 100
    expected = 0.0
    for i in range(n):
        expected += values[i] * values[i + 0x1000]
    _check_slices(lambda: inst.exports["dot"], (n,), (expected,), n)
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        inst.exports["dot"](0x1001)  # the second load of the last round reads past the end
    assert info.value.frames[0].module_offset == second


# ---- LOAD_SUM_M64 / STORE_SUM_M64: the i64.add of the address folded in ------------

SUMMED = re.compile(r"^(LOAD|STORE)_SUM_M64\((\w+), (\w+), (\w+), (\d)\)", re.M)


def _summed_module(rows, apart: bool) -> bytes:
    """l_<base>_<k>(a, b) loads at a + b + OFFSETS[k], s_<base>_<k>(a, b, v)
    stores there; the add is folded into the access unless `apart`."""
    keep = "local.set 3 local.get 3" if apart else ""
    funcs = []
    for kind, _, base, ty, _ in rows:
        t = ty.lower()
        for k, off in enumerate(OFFSETS):
            addr = f"local.get 0 local.get 1 i64.add {keep}"
            if kind == "LOAD":
                back = {"f32": " i32.reinterpret_f32", "f64": " i64.reinterpret_f64"}.get(t, "")
                funcs.append(f'(func (export "l_{base}_{k}") (param i64 i64 {_bits(ty)}) (result {_bits(ty)})'
                             f" (local i64) {addr} {mnemonic(base)} offset={off}{back})")
            else:
                to = {"f32": " f32.reinterpret_i32", "f64": " f64.reinterpret_i64"}.get(t, "")
                funcs.append(f'(func (export "s_{base}_{k}") (param i64 i64 {_bits(ty)}) (local i64)'
                             f" {addr} local.get 2{to} {mnemonic(base)} offset={off})")
    return wat('(module (memory (export "memory") i64 1 1)\n' + "\n".join(funcs) + ")")


def _split(addr: int) -> list[tuple[int, int]]:
    """(a, b) pairs summing to addr mod 2^64, one of them through the wrap."""
    return [(addr, 0), (0x10, (addr - 0x10) & U64), (U64, (addr + 1) & U64)]


def _signed(x: int) -> int:
    return x - (1 << 64) if x >> 63 else x


def test_summed_rows_match_the_add_and_access_apart():
    rows = SUMMED.findall(OPCODES)
    assert len(rows) == 14, "opcodes.def SUM_M64 rows not found"
    fused, apart = (asyncwasm.Linker().instantiate(asyncwasm.Module(_summed_module(rows, a))) for a in (False, True))
    for kind, _, base, ty, log2 in rows:
        width = 1 << int(log2)
        value = 0x8877665544332211 if _bits(ty) == "i64" else 0x44332211
        for k, off in enumerate(OFFSETS):
            for addr in _addresses(off, width):
                for a, b in _split(addr):
                    args = (_signed(a), _signed(b), _signed(value) if _bits(ty) == "i64" else value)
                    outcomes = []
                    for inst in (fused, apart):
                        inst.exports["memory"].write(0, PATTERN)
                        try:
                            got = inst.exports[f"{kind[0].lower()}_{base}_{k}"](*args)
                        except asyncwasm.Trap as trap:
                            assert "out of bounds memory access" in str(trap)
                            got = "trap"
                        outcomes.append((got, inst.exports["memory"].read(0, PAGE)))
                    assert outcomes[0] == outcomes[1], (base, off, a, b)
                    assert (outcomes[0][0] == "trap") == (addr + off + width > PAGE), (base, off, a, b)


SUM_LOOP = """
(module (memory (export "memory") i64 1 1)
  (func (export "f") (param $base i64) (param $n i64) (result i64) (local $i i64) (local $acc i64)
    (loop $l
      (i64.store offset=8 (i64.add (local.get $base) (local.get $i)) (local.get $i))
      (local.set $acc (i64.add (local.get $acc)
        (i64.extend_i32_u (i32.load8_u offset=8 (i64.add (local.get $base) (local.get $i))))))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))
"""


def test_a_summed_access_traps_at_itself_and_resumes_in_any_fuel_slice():
    binary = wat(SUM_LOOP)
    store = binary.index(bytes([0x37, 0x03, 0x08]))  # i64.store align=3 offset=8
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(binary))
    n = 800
    expected = sum(i & 0xFF for i in range(0, n, 8))
    base = _signed(U64 - 0x0F)  # base + i wraps past 2^64: the addresses are 0xFFFF...F1 + i, i.e. i - 0x0F
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        inst.exports["f"](base, n)  # the first store, at 2^64 - 7: out of bounds, not wrapped to 1
    assert info.value.frames[0].module_offset == store
    _check_slices(lambda: inst.exports["f"], (0x100, n), (expected,), n // 8)
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        inst.exports["f"](PAGE - 95, 8 * 11)  # the eleventh round's store ends 1 byte past the end
    assert info.value.frames[0].module_offset == store


SUM_FUSED = re.compile(r"^LOAD_SUM_OP_M64\((\w+), (\w+), (\w+), (\w+), (\d)\)", re.M)


def _sum_fused_module(rows, apart: bool) -> bytes:
    """f_<name>(x, a, b): OP(x, LOAD(a + b + 0x100)) as integer bits, the add
    and the operation fused into the load unless `apart` keeps them apart."""
    funcs = []
    for name, load, op, ty, _ in rows:
        t = ty.lower()
        to = {"f64": " f64.reinterpret_i64"}.get(t, "")
        back = {"f64": " i64.reinterpret_f64"}.get(t, "")
        keep = "local.set 4 local.get 4" if apart else ""
        keep_sum = "local.set 3 local.get 3" if apart else ""
        funcs.append(f'(func (export "f_{name}") (param {_bits(ty)} i64 i64) (result {_bits(ty)}) (local i64 {t})'
                     f" local.get 0{to} local.get 1 local.get 2 i64.add {keep_sum}"
                     f" {mnemonic(load)} offset=0x100 {keep} {mnemonic(op)}{back})")
    return wat('(module (memory (export "memory") i64 1 1)\n' + "\n".join(funcs) + ")")


def test_summed_load_op_rows_match_the_three_apart():
    rows = SUM_FUSED.findall(OPCODES)
    assert len(rows) >= 11, "opcodes.def LOAD_SUM_OP_M64 rows not found"
    binary = _sum_fused_module(rows, False)
    fused, apart = (asyncwasm.Linker().instantiate(asyncwasm.Module(b)) for b in (binary, _sum_fused_module(rows, True)))
    for inst in (fused, apart):
        inst.exports["memory"].write(0, PATTERN)
    for name, _, _, ty, log2 in rows:
        width = 1 << int(log2)
        xs = [0, 0x7FF8000000000001, 0x4010000000000000] if ty == "F64" else [5, 0xFFFFFFFF]
        for addr in _addresses(0x100, width):
            for a, b in _split(addr):
                for x in xs:
                    args = (_signed(x), _signed(a), _signed(b))
                    if addr + 0x100 + width <= PAGE:
                        assert fused.exports[f"f_{name}"](*args) == apart.exports[f"f_{name}"](*args), (name, a, b, x)
                    else:
                        for inst in (fused, apart):
                            with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
                                inst.exports[f"f_{name}"](*args)
    # the fused instruction traps at the load: the first function's only load
    load = binary.index(bytes([0x2B, 0x03, 0x80, 0x02]))  # f64.load align=3 offset=0x100
    with pytest.raises(asyncwasm.Trap) as info:
        fused.exports[f"f_{rows[0][0]}"](0, PAGE, 0)
    assert rows[0][1] == "F64_LOAD" and info.value.frames[0].module_offset == load


SUM_DOT = """
(module (memory (export "memory") i64 1 1)
  (func (export "dot") (param $n i64) (result f64) (local $i i64) (local $acc f64) (local $b i64)
    (local.set $b (i64.const 0x8000))
    (loop $l
      (local.set $acc (f64.add (local.get $acc)
        (f64.load (i64.add (local.get $b) (i64.shl (local.get $i) (i64.const 3))))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))
"""


def test_a_summed_fused_load_resumes_in_any_fuel_slice():
    import struct

    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(wat(SUM_DOT)))
    values = [float(i % 5) + 0.25 for i in range(PAGE // 8)]
    inst.exports["memory"].write(0, struct.pack(f"<{len(values)}d", *values))
    n = 100
    expected = 0.0
    for i in range(n):
        expected += values[0x1000 + i]
    _check_slices(lambda: inst.exports["dot"], (n,), (expected,), n)
