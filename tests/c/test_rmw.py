"""Loads fused into what they feed: read-modify-write rows, a load, an
operation and a store back to the same address as one instruction
(compile.c F13; opcodes.def RMW, RMW_CHAIN_R, RMW_CHAIN: c[i] = a * b + c[i]), and a load feeding a chain
(F14; LOAD_CHAIN, LOAD_CHAIN_R: v += x * dt).

Every row is built from Wasm (`local.get p local.get p T.load ... op
T.store` at one offset; `T.load ... mul add`) and checked against the same
computation the compiler cannot fuse (the store's address in another local,
the loaded value in a local, so the slot forms run), bit for bit, for NaN, signalling NaN, infinities, -0.0 and
ordinary values, and against wasmtime (equal, or both NaN). Each runs in
every fuel slice from 1 to 13, traps at its load with nothing written, and
is found in front_check's dump, so that no row goes untested.

    python -m pytest tests/c/test_rmw.py -q
"""

from __future__ import annotations

import math
import re
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
from tests.c.rows import OPCODES, mnemonic, sliced  # noqa: E402
from tests.wat import wat  # noqa: E402

RMW = re.findall(r"^RMW\((\w+),\s*\w+,\s*(\w+),\s*(\w+),\s*(\w+),", OPCODES, re.M)
RMW_CHAIN_R = re.findall(r"^RMW_CHAIN_R\((\w+),\s*\w+,\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+),", OPCODES, re.M)
RMW_CHAIN = re.findall(r"^RMW_CHAIN\((\w+),\s*\w+,\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+),", OPCODES, re.M)
LOAD_CHAIN = re.findall(r"^LOAD_CHAIN(_R)?\((\w+),\s*\w+,\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+),", OPCODES, re.M)


def _f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


F64_BITS = [_f64(x) for x in (0.0, -0.0, 1.5, -3.25, 1e308, 5e-324, math.inf, -math.inf)] + [
    0x7FF8000000000000, 0xFFF8000000000001, 0x7FF4000000000000, 0x7FF0000000000001]
I32_BITS = [0, 1, 31, 32, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x12345678]
NEIGHBOUR = 0x5A5A5A5A  # the 4 bytes after an i32 row's cell: must survive


def _func(name: str, mode: str) -> str:
    """Stores $m at q+8, updates it there from operands $a ($b), returns the
    8 bytes at q+8. Mode "fused": the load and the store both address local
    p; "slots": the store addresses q (same value), so nothing fuses;
    "trap": fused, with no store before and no load after."""
    store_addr = "$q" if mode == "slots" else "$p"
    row = next(r for r in RMW + RMW_CHAIN_R + RMW_CHAIN if r[0] == name)
    ty = row[-1].lower()
    if ty == "f64":
        setup = "local.get $a f64.reinterpret_i64 local.set $fa local.get $b f64.reinterpret_i64 local.set $fb"
        prime = "local.get $q local.get $m i64.store offset=8"
        a, b = "local.get $fa", "local.get $fb"
    else:
        setup = "local.get $a i32.wrap_i64 local.set $ia local.get $b i32.wrap_i64 local.set $ib"
        prime = (f"local.get $q local.get $m i64.const 0xFFFFFFFF i64.and i64.const {NEIGHBOUR << 32} i64.or"
                 " i64.store offset=8")
        a, b = "local.get $ia", "local.get $ib"
    load = f"local.get {store_addr} local.get $p {ty}.load offset=8"
    if len(row) == 4:
        _, load_row, op, _ = row
        update = f"{load} {a} {mnemonic(op)}"
    elif row in RMW_CHAIN:  # a * b, then SECOND of that and the loaded value (F11's LOAD_OP)
        _, load_row, first, second, _ = row
        update = (f"local.get {store_addr} {a} {b} {mnemonic(first)} local.get $p {ty}.load offset=8"
                  f" {mnemonic(second)}")
    else:
        _, load_row, first, second, _ = row
        update = f"{load} {a} {b} {mnemonic(first)} {mnemonic(second)}"
    if mode == "trap":
        prime, after = "", "i64.const 0"
    else:
        after = "local.get $q i64.load offset=8"
    return (f'(func (export "{name}_{mode}")'
            " (param $p i32) (param $m i64) (param $a i64) (param $b i64) (result i64)"
            " (local $q i32) (local $fa f64) (local $fb f64) (local $ia i32) (local $ib i32)"
            f" local.get $p local.set $q {setup} {prime} {update} {ty}.store offset=8 {after})")


def _chain_func(row: tuple, mode: str) -> str:
    """Stores $m at p+8, loads it back into a chain with $a and $b, returns
    the result's bits. "slots": the loaded value goes through a local."""
    r, name, load, first, second, ty = row
    m = "local.get $p f64.load offset=8" + (" local.set $fm local.get $fm" if mode == "slots" else "")
    prime = "" if mode == "trap" else "local.get $p local.get $m i64.store offset=8"
    c = "local.get $fc"
    inner = f"{m} local.get $fa {mnemonic(first)}"
    body = f"{c} {inner} {mnemonic(second)}" if r else f"{inner} {c} {mnemonic(second)}"
    return (f'(func (export "{name}_{mode}")'
            " (param $p i32) (param $m i64) (param $a i64) (param $b i64) (result i64)"
            " (local $fa f64) (local $fc f64) (local $fm f64)"
            " local.get $a f64.reinterpret_i64 local.set $fa local.get $b f64.reinterpret_i64 local.set $fc"
            f" {prime} {body} i64.reinterpret_f64)")


RMW_NAMES = [r[0] for r in RMW + RMW_CHAIN_R + RMW_CHAIN]
NAMES = RMW_NAMES + [r[1] for r in LOAD_CHAIN]
MODES = ("fused", "slots", "trap")
MODULE = wat('(module (memory (export "mem") 1)\n'
             + "\n".join(_func(n, mode) for n in RMW_NAMES for mode in MODES) + "\n"
             + "\n".join(_chain_func(r, mode) for r in LOAD_CHAIN for mode in MODES) + ")")


def _inputs(name: str) -> list[tuple[int, int, int]]:
    bits = F64_BITS if name.startswith("F64") else I32_BITS
    return [(m, a, b) for m in bits for a in bits[::2] for b in bits[1::3]]


def _s64(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def _is_nan(bits: int) -> bool:
    return (bits >> 52) & 0x7FF == 0x7FF and bits & ((1 << 52) - 1) != 0


def test_rmw_rows_match_the_slot_form_and_wasmtime(both):
    assert len(RMW) >= 7 and len(RMW_CHAIN_R) >= 2 and len(RMW_CHAIN) >= 2 and len(LOAD_CHAIN) >= 4, \
        "opcodes.def rows not found"
    store, ref, ours = both
    for name in NAMES:
        for m, a, b in _inputs(name):
            args = (16, _s64(m), _s64(a), _s64(b))
            got = ours[f"{name}_fused"](*args) & (2**64 - 1)
            assert got == ours[f"{name}_slots"](*args) & (2**64 - 1), (name, hex(m), hex(a), hex(b))
            want = ref[f"{name}_fused"](store, *args) & (2**64 - 1)
            if name.startswith("F64") and _is_nan(want):
                assert _is_nan(got), (name, hex(m), hex(a), hex(b))
            else:
                assert got == want, (name, hex(m), hex(a), hex(b))
            if name in RMW_NAMES and not name.startswith("F64"):
                assert got >> 32 == NEIGHBOUR, name


def test_rmw_rows_stop_and_resume_in_any_fuel_slice(both):
    _, _, ours = both
    for name in NAMES:
        args = (24, _s64(F64_BITS[2] if name.startswith("F64") else 77), 5, 3)
        whole = sliced(ours[f"{name}_fused"], args, 10**9)
        for fuel in range(1, 14):
            assert sliced(ours[f"{name}_fused"], args, fuel) == whole, (name, fuel)


def test_rmw_rows_trap_at_their_load_and_write_nothing(both):
    _, _, ours = both
    mem = ours["mem"]
    for name in NAMES:
        width = 8 if name.startswith("F64") else 4
        p = 65536 - 8 - width + 2  # the access's last two bytes lie outside memory
        mem.write(65534, b"\xC3\xC3")  # inside: a pattern the trap must leave alone
        with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
            ours[f"{name}_trap"](p, 0, 1, 1)
        assert mem.read(65534, 2) == b"\xC3\xC3", name
        off = info.value.frames[0].module_offset
        load = {8: 0x2B, 4: 0x28}[width]
        assert MODULE[off] == load and MODULE[off + 2] == 8, (name, off, MODULE[off:off + 3].hex())


def test_every_rmw_row_occurs_and_only_when_fused(dump):
    """Each `_fused` and `_trap` function compiles to its row; `_slots` to none."""
    rows = set(NAMES)
    for i, (name, mode) in enumerate((n, mode) for n in NAMES for mode in MODES):
        seen = set(re.findall(r"^\s+\d+\s+(\w+)", dump(MODULE, i), re.M))
        if mode == "slots":
            assert not (rows & seen), (name, rows & seen)
        else:
            assert name in seen, (name, mode, seen)
