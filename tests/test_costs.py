"""Cost tables: per-instruction fuel weights compiled into the module."""

from __future__ import annotations

import pathlib
import re

import pytest
import trio

import asyncwasm
from asyncwasm import CostTable, Limits, Linker, Module
from asyncwasm.costs import OPCODES

from .wat import wat

OPCODES_DEF = pathlib.Path(__file__).resolve().parent.parent / "asyncwasm" / "_engine" / "opcodes.def"

# n iterations of: local.get, i32.const, i32.sub, local.tee, br_if  (+ a call each time)
LOOP = wat("""
(module
  (func $leaf)
  (func (export "run") (param $n i32)
    (loop $l
      (call $leaf)
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))
""")


def _fuel_used(module: Module, n: int) -> int:
    instance = Linker().instantiate(module, limits=Limits(fuel=10**9))
    instance.exports["run"](n)
    return instance.statistics().fuel_used


def test_names_agree_with_the_engine_opcode_table() -> None:
    rows = re.findall(r'^(?:NUMERIC\(\w+,\s*(0|0xFC),\s*(0x[0-9A-F]+|\d+),|(?:LOAD|STORE)\(\w+,\s*()(0x[0-9A-F]+),)'
                      r'\s*"([a-z0-9_.]+)"', OPCODES_DEF.read_text(), re.M)
    assert len(rows) > 150
    for prefix, code, _, memcode, name in rows:
        expected = (0xFC00 | int(code, 0)) if prefix == "0xFC" else int(code or memcode, 0)
        assert OPCODES[name] == expected, name


def test_simd_names_agree_with_the_engine_opcode_table() -> None:
    simd_def = OPCODES_DEF.with_name("opcodes_simd.def").read_text()
    rows = re.findall(r'^SIMD_\w+\(\w+,\s*(0x[0-9A-F]+),\s*"([a-z0-9_.]+)"', simd_def, re.M)
    assert len(rows) == 236  # every fixed-width SIMD instruction of Wasm 2.0
    for code, name in rows:
        assert OPCODES[name] == 0xFD00 | int(code, 16), name
    assert sum(1 for code in OPCODES.values() if code >> 8 == 0xFD) == len(rows)


def test_simd_instructions_are_weighted() -> None:
    add = wat("""(module (func (export "run") (param i32)
        (drop (i32x4.add (v128.const i32x4 1 2 3 4) (i32x4.splat (local.get 0))))))""")
    plain = _fuel_used(Module(add), 0)
    assert _fuel_used(Module(add, costs=CostTable({"i32x4.add": 40, "i32x4.splat": 3})), 0) == plain + 39 + 2


def test_weights_change_the_fuel_charged_by_exactly_their_sum() -> None:
    plain = _fuel_used(Module(LOOP), 100)
    weighted = _fuel_used(Module(LOOP, costs=CostTable({"call": 50, "i32.sub": 3})), 100)
    # per iteration: call +49, i32.sub +2 (the leaf's own `end` stays 1)
    assert weighted - plain == 100 * (49 + 2)


def test_default_weight_applies_to_every_other_instruction() -> None:
    plain = _fuel_used(Module(LOOP), 10)
    doubled = _fuel_used(Module(LOOP, costs=CostTable({}, default=2)), 10)
    assert doubled == 2 * plain


def test_cost_limit_stops_the_guest_with_the_cost_reported() -> None:
    module = Module(LOOP, costs=CostTable({"call": 1000}))
    instance = Linker().instantiate(module, limits=Limits(fuel=50_000))
    with pytest.raises(asyncwasm.FuelExhausted) as info:
        instance.exports["run"](1_000)
    assert info.value.consumed == instance.statistics().fuel_used <= 50_000
    assert info.value.consumed > 50_000 - 1010  # stopped at the first chain that did not fit


def test_prefixed_instructions_are_weighted_whatever_their_encoding() -> None:
    fill = wat('(module (memory 1) (func (export "run") (param i32) (memory.fill (i32.const 0) (i32.const 0) (i32.const 8))))')
    plain = _fuel_used(Module(fill), 0)
    assert _fuel_used(Module(fill, costs=CostTable({"memory.fill": 500})), 0) == plain + 499
    # 0xFC 0x0B with the sub-opcode as a padded LEB128 (0x8B 0x00): same instruction, same weight
    padded = fill.replace(b"\xfc\x0b\x00", b"\xfc\x8b\x00\x00")
    body_growth = len(padded) - len(fill)
    assert body_growth == 1
    padded = _fix_sizes(padded)
    assert _fuel_used(Module(padded, costs=CostTable({"memory.fill": 500})), 0) == plain + 499


def _fix_sizes(module: bytes) -> bytes:
    """Re-encode the code section of a one-function module after its body grew by one byte."""
    code = module.rindex(b"\x0a")  # last section here is the code section
    size, body = module[code + 1], module[code + 3]
    return module[:code + 1] + bytes([size + 1, module[code + 2], body + 1]) + module[code + 4:]


def test_select_weight_covers_both_encodings() -> None:
    table = CostTable({"select": 7})
    packed = memoryview(table.packed()).cast("H")
    assert packed[0x1B] == packed[0x1C] == 7


@pytest.mark.parametrize(("weights", "default", "error", "message"), [
    ({"i32.addd": 2}, 1, KeyError, "unknown instruction 'i32.addd'"),
    ({"i32.add": 0}, 1, ValueError, "from 1 to 65535, not 0"),
    ({"i32.add": 70_000}, 1, ValueError, "not 70000"),
    ({"i32.add": 2.5}, 1, ValueError, "not 2.5"),
    ({}, 0, ValueError, "weight of default"),
])
def test_bad_tables_are_refused(weights: dict, default: int, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        CostTable(weights, default=default)


def test_module_rejects_a_non_table() -> None:
    with pytest.raises(TypeError, match="CostTable"):
        Module(LOOP, costs={"call": 2})  # type: ignore[arg-type]


def test_module_remembers_its_table() -> None:
    table = CostTable({"call": 3})
    assert Module(LOOP, costs=table).costs == table
    assert Module(LOOP).costs is None


async def test_weighted_guest_is_still_paced_and_cancellable() -> None:
    spin = Module(wat('(module (func (export "run") (param i32) (loop (br 0))))'),
                  costs=CostTable({"br": 60_000}))
    instance = Linker().instantiate(spin)
    with trio.move_on_after(0.05):
        await instance.exports["run"].call_async(0)
    assert instance.interrupted
