"""The compiler's fused instructions compute what the instructions apart do.

compile.c fuses an operation into the one that consumes its result
(opcodes.def CHAIN / CHAIN_R rows, "Operand folding" F9) and an i32.add into
the conditional jump after it (F10). Each test runs the same computation
twice: once in the shape that fuses, and once with a ``local.set $t
local.get $t`` in between, which keeps the two instructions apart. Results
must agree bit for bit, and a fused jump must resume correctly when fuel
runs out on it.

    python -m pytest tests/c/test_fusion.py -q
"""

from __future__ import annotations

import re
from functools import partial
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
from tests.c.rows import OPCODES, mnemonic, sliced  # noqa: E402
from tests.wat import wat  # noqa: E402

ROW = re.compile(r"^(CHAIN|CHAIN_R)\((\w+),\s*(\w+),\s*(\w+),\s*(\w+)\)", re.M)

INT_VALUES = {
    "I32": [0, 1, 2, 5, 31, 32, 33, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x12345678],
    "I64": [0, 1, 7, 63, 64, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF,
            0x0123456789ABCDEF],
}
FLOAT_VALUES = [0.0, -0.0, 1.5, -2.25, 3.0e38, 1e-45, float("inf"), float("-inf"), float("nan")]
FLOAT_BITS = {  # plus a NaN with a payload, and for f64 values beyond f32's range
    "F64": [struct.unpack("<Q", struct.pack("<d", x))[0] for x in FLOAT_VALUES + [3.0e300, 5e-324]]
    + [0x7FF4000000000001],
    "F32": [struct.unpack("<I", struct.pack("<f", x))[0] for x in FLOAT_VALUES] + [0x7FA00001],
}


def _chain_rows() -> list[tuple[str, str, str, str, str]]:
    """(kind, name, first, second, type) of every chain row of opcodes.def."""
    rows = ROW.findall(OPCODES)
    assert len(rows) > 50, "opcodes.def chain rows not found"
    return rows



def _chain_body(kind: str, first: str, second: str, ty: str, apart: bool) -> str:
    """a, b, c are the params (as the row's type); the result is the row's value."""
    t = ty.lower()
    # floats arrive as bits, reinterpreted into locals first: a reinterpret
    # between the two operations would keep them from fusing
    to_float = {"f32": "f32.reinterpret_i32", "f64": "f64.reinterpret_i64"}.get(t)
    setup = "".join(f"local.get {i} {to_float} local.set ${v} " for i, v in enumerate("abc")) if to_float else ""
    a, b, c = ("local.get $" + v if to_float else f"local.get {i}" for i, v in enumerate("abc"))
    keep_apart = "local.set $t local.get $t" if apart else ""
    inner = f"{a} {b} {mnemonic(first)} {keep_apart}"
    if kind == "CHAIN":
        body = f"{setup}{inner} {c} {mnemonic(second)}"
    else:
        body = f"{setup}{c} {inner} {mnemonic(second)}"
    back = {"f32": " i32.reinterpret_f32", "f64": " i64.reinterpret_f64"}.get(t, "")
    return body + back


def _chain_module(rows, ty: str) -> bytes:
    t = ty.lower()
    bits = {"i32": "i32", "i64": "i64", "f32": "i32", "f64": "i64"}[t]
    funcs = []
    for kind, name, first, second, _ in rows:
        for apart in (False, True):
            export = f"{name}{'_apart' if apart else ''}"
            funcs.append(
                f'(func (export "{export}") (param {bits} {bits} {bits}) (result {bits}) (local $t {t})'
                f" (local $a {t}) (local $b {t}) (local $c {t})"
                f" {_chain_body(kind, first, second, ty, apart)})"
            )
    return wat("(module " + "\n".join(funcs) + ")")


@pytest.mark.parametrize("ty", ["I32", "I64", "F32", "F64"])
def test_every_chain_row_matches_its_two_instructions(ty):
    rows = [r for r in _chain_rows() if r[4] == ty]
    assert rows
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(_chain_module(rows, ty)))
    values = INT_VALUES.get(ty) or FLOAT_BITS[ty]
    width = 32 if ty in ("I32", "F32") else 64
    signed = [v - (1 << width) if v >> (width - 1) else v for v in values]
    triples = [(a, b, c) for a in signed for b in signed[::2] for c in signed[::3]]
    for _, name, *_ in rows:
        fused, apart = inst.exports[name], inst.exports[name + "_apart"]
        for a, b, c in triples:
            assert fused(a, b, c) == apart(a, b, c), (name, a, b, c)


def test_every_chain_row_occurs(dump):
    """The fused functions above really compile to their row (the tests of
    float rows a fused form could round or propagate NaNs wrongly in)."""
    for ty in ("F32", "F64"):
        rows = [r for r in _chain_rows() if r[4] == ty]
        module = _chain_module(rows, ty)
        for i, (_, name, *_) in enumerate(rows):
            assert re.search(rf"^\s+\d+\s+{name}\s", dump(module, 2 * i), re.M), name


def test_every_unary_chain_row_matches_its_two_instructions():
    rows = re.findall(r"^CHAIN1\((\w+),\s*(\w+),\s*(\w+),\s*(\w+)\)", OPCODES, re.M)
    assert rows, "opcodes.def CHAIN1 rows not found"
    funcs = []
    for name, first, second, ty in rows:
        t = ty.lower()
        for side in ("l", "r"):
            for apart in (False, True):
                keep_apart = "local.set $t local.get $t" if apart else ""
                inner = f"local.get 0 {mnemonic(first)} {keep_apart}"
                body = f"{inner} local.get 1" if side == "l" else f"local.get 1 {inner}"
                funcs.append(f'(func (export "{name}_{side}{"_apart" if apart else ""}") (param {t} {t})'
                             f" (result {t}) (local $t {t}) {body} {mnemonic(second)})")
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(wat("(module " + "\n".join(funcs) + ")")))
    for name, *_ in rows:
        for side in ("l", "r"):
            for a in (0, 1, -1, 0x1234):
                for c in (0, 1, -1, 7):
                    assert inst.exports[f"{name}_{side}"](a, c) == inst.exports[f"{name}_{side}_apart"](a, c)


def _fib_module() -> bytes:
    """Recursive fib whose last instruction is an i32.add feeding the return."""
    return wat('(module (func $fib (export "fib") (param i32) (result i32)'
               " local.get 0 i32.const 2 i32.lt_u (if (then local.get 0 return))"
               " local.get 0 i32.const 1 i32.sub call $fib"
               " local.get 0 i32.const 2 i32.sub call $fib i32.add))")


def test_add_joined_to_return():
    fib = asyncwasm.Linker().instantiate(asyncwasm.Module(_fib_module())).exports["fib"]
    assert [fib(n) for n in range(12)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    assert fib(25) == 75025


def test_commuted_integer_chain():
    """c + (a ^ b): the chained value is the right operand of a commuting add."""
    body = "local.get 2 local.get 0 local.get 1 i32.xor {} i32.add"
    src = (f'(module (func (export "f") (param i32 i32 i32) (result i32) (local $t i32) {body.format("")})'
           f'(func (export "g") (param i32 i32 i32) (result i32) (local $t i32) '
           f'{body.format("local.set $t local.get $t")}))')
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(wat(src)))
    for a, b, c in [(1, 2, 3), (-1, 0x55555555, 7), (0x7FFFFFFF, -1, 1)]:
        assert inst.exports["f"](a, b, c) == inst.exports["g"](a, b, c)


# A loop whose counter update (i32.add) sits right before its exit test, in
# each conditional-jump shape: br_if on a comparison, br_if on a value, if;
# and a COPY (local.set of a local) right before the test.
LOOPS = {
    "lt_u": "local.get $i i32.const 1 i32.add local.set $i "
            "local.get $s local.get $i i32.add local.set $s local.get $i local.get 0 i32.lt_u br_if $l",
    "ne": "local.get $i i32.const 3 i32.add local.set $i "
          "local.get $s local.get $i i32.xor local.set $s local.get $i local.get 0 i32.ne br_if $l",
    "value": "local.get $s local.get $i i32.add local.set $s "
             "local.get 0 local.get $i i32.const 1 i32.add local.tee $i i32.sub br_if $l",
    "copy": "local.get $i i32.const 2 i32.add local.set $i local.get $s local.get $i i32.add local.set $s "
            "local.get $i local.set $s local.get $i local.get 0 i32.lt_s br_if $l",
    "if": "local.get $i i32.const 1 i32.add local.set $i "
          "local.get $i local.get 0 i32.ge_s (if (then) (else local.get $s i32.const 5 i32.add local.set $s br $l))",
}


def _list_walk_module() -> bytes:
    """f(p) counts the nodes of a linked list in memory: each node's first
    word is the next node's address, 0 ends it. The loop's load writes the
    very slot it reads its address from, right before the jump."""
    nodes = list(range(64, 64 + 8 * 40, 8))
    data = b"".join((nodes[i + 1] if i + 1 < len(nodes) else 0).to_bytes(4, "little") + bytes(4)
                    for i in range(len(nodes)))
    escaped = "".join(f"\\{b:02x}" for b in data)
    return wat(f'(module (memory 1) (data (i32.const 64) "{escaped}")'
               ' (func (export "f") (param $p i32) (result i32) (local $n i32)'
               " (loop $l local.get $n i32.const 1 i32.add local.set $n"
               "   local.get $p i32.load local.tee $p br_if $l)"
               " local.get $n))")


def test_fused_load_and_jump_resume_in_any_fuel_slice():
    func = asyncwasm.Linker().instantiate(asyncwasm.Module(_list_walk_module())).exports["f"]
    assert func(64) == 40
    for fuel in (1, 2, 3, 4, 5, 7):
        assert sliced(func, (64,), fuel)[0] == (40,), fuel
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access"):
        func(65536)


def _loop_module(body: str) -> bytes:
    return wat(f'(module (func (export "f") (param i32) (result i32) (local $i i32) (local $s i32) '
               f"(loop $l {body}) local.get $s local.get $i i32.add))")


@pytest.mark.parametrize("shape", sorted(LOOPS))
def test_fused_add_and_jump_resume_in_any_fuel_slice(shape):
    func = asyncwasm.Linker().instantiate(asyncwasm.Module(_loop_module(LOOPS[shape]))).exports["f"]
    expected = func(300)
    whole = sliced(func, (300,), 10**9)
    assert whole[0] == (expected,)
    for fuel in (1, 2, 3, 5, 7, 11):  # a chain is paid whole or not at all
        assert sliced(func, (300,), fuel) == whole, (shape, fuel)


def test_dump_shows_the_fused_instructions(dump):
    """The shapes above really fuse (else the tests above prove nothing)."""
    dump = partial(dump, func=0)
    out = dump(wat(
        '(module (func (export "f") (param i32 i32 i32) (result i32) (local $i i32)'
        " (loop $l local.get $i i32.const 1 i32.add local.set $i"
        "   local.get $i local.get 0 i32.lt_u br_if $l)"
        " local.get 0 local.get 1 i32.rotl local.get 2 i32.xor))"))
    assert "ADDI_TEST_LT_U" in out and "I32_ROTL_XOR" in out, out  # the 1: an immediate; the sum tested
    out = dump(wat("(module (func (param i32 i32) (result i32) local.get 1 local.get 0 i32.eqz i32.add))"))
    assert "I32_EQZ_ADD" in out, out
    assert "ADD_RETURN" in dump(_fib_module())
    assert "COPY_JUMP_IF_LT_S" in dump(_loop_module(LOOPS["copy"]))
    out = dump(wat("(module (memory 1) (func (param f64 i32) (result f64)"
                   " local.get 0 local.get 1 f64.load offset=16 f64.add))"))
    assert "F64_ADD_LOAD" in out, out
    assert "I32_LOAD_TEST_IF" in dump(_list_walk_module())  # a LOAD_JUMP testing its own load
    out = dump(_store_of_module([("STORE_OF_CHAIN_R", "f", "F64_STORE", "F64_MUL_ADD_R",
                                  "F64_MUL", "F64_ADD", "F64", "3")]))
    assert "F64_STORE_MUL_ADD_R" in out, out


LOAD_ROW = re.compile(r"^(LOAD_OP|LOAD_SUM_OP)\((\w+),\s*(\w+),\s*(\w+),\s*(\w+),\s*(\d)\)", re.M)


def _load_op_module(rows) -> bytes:
    """Per row: f(x, addr) = x OP load(addr + 8), fused and kept apart; the
    SUM form computes its address as addr + 0 (an i32.add the load folds)."""
    funcs = []
    for kind, name, load, op, ty, _ in rows:
        t = ty.lower()
        addr = "local.get 1 i32.const 0 i32.add" if kind == "LOAD_SUM_OP" else "local.get 1"
        for apart in (False, True):
            keep_apart = "local.set $t local.get $t" if apart else ""
            funcs.append(
                f'(func (export "{name}{"_apart" if apart else ""}") (param {t} i32) (result {t}) (local $t {t})'
                f" local.get 0 {addr} {t}.load offset=8 {keep_apart} {mnemonic(op)})")
    return wat('(module (memory 1) (data (i32.const 0) "\\01\\80\\ff\\7f\\00\\00\\f0\\3f'
               '\\55\\aa\\00\\00\\00\\00\\f8\\7f\\00\\00\\00\\00\\00\\00\\f0\\bf")' + "\n".join(funcs) + ")")


def test_every_load_op_row_matches_its_two_instructions():
    rows = LOAD_ROW.findall(OPCODES)
    assert len(rows) >= 10, "opcodes.def LOAD_OP rows not found"
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(_load_op_module(rows)))
    samples = {"i32": [0, 1, -1, 0x7FFFFFFF], "i64": [0, -1, 1 << 40],
               "f64": [0.0, -0.0, 1.5, float("inf"), float("nan")]}
    for _, name, _, _, ty, _ in rows:
        fused, apart = inst.exports[name], inst.exports[name + "_apart"]
        for x in samples[ty.lower()]:
            for addr in (0, 4, 8, 16):
                got, want = fused(x, addr), apart(x, addr)
                assert got == want or (got != got and want != want), (name, x, addr)
        with pytest.raises(asyncwasm.Trap, match="out of bounds memory access"):
            fused(samples[ty.lower()][0], 65536 - 8)


def test_fused_load_traps_at_the_load():
    src = ('(module (memory 1) (func (export "f") (param f64 i32) (result f64)'
           " local.get 0 local.get 1 f64.load offset=16 f64.add))")
    data = wat(src)
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(data))
    assert inst.exports["f"](1.0, 0) == 1.0
    with pytest.raises(asyncwasm.Trap) as info:
        inst.exports["f"](1.0, 65536)
    frame = info.value.frames[0]
    load_at = data.index(bytes([0x2B, 0x03, 0x10]))  # f64.load align=3 offset=16
    assert frame.module_offset == load_at


STORE_ROW = re.compile(r"^(STORE_OF|STORE_OF_CHAIN|STORE_OF_CHAIN_R)\((\w+),\s*(\w+),\s*(\w+),(?:\s*(\w+),\s*(\w+),)?\s*(\w+),\s*(\d)\)", re.M)


def _store_of_module(rows) -> bytes:
    """Per row: f(addr, a, b, c) stores the producer's value at addr + 8 and
    returns what was stored, fused and kept apart."""
    funcs = []
    for kind, name, store, producer, first, second, ty, _ in rows:
        t = ty.lower()
        if kind == "STORE_OF":
            value = f"local.get 1 local.get 2 {mnemonic(producer)}"
        elif kind == "STORE_OF_CHAIN":
            value = f"local.get 1 local.get 2 {mnemonic(first)} local.get 3 {mnemonic(second)}"
        else:
            value = f"local.get 3 local.get 1 local.get 2 {mnemonic(first)} {mnemonic(second)}"
        for apart in (False, True):
            keep_apart = "local.set $t local.get $t" if apart else ""
            funcs.append(
                f'(func (export "{name}{"_apart" if apart else ""}") (param i32 {t} {t} {t}) (result {t})'
                f" (local $t {t}) local.get 0 {value} {keep_apart} {t}.store offset=8"
                f" local.get 0 {t}.load offset=8)")
    return wat("(module (memory 1) " + "\n".join(funcs) + ")")


def test_every_store_of_row_matches_its_two_instructions():
    rows = STORE_ROW.findall(OPCODES)
    assert len(rows) >= 10, "opcodes.def STORE_OF rows not found"
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(_store_of_module(rows)))
    samples = {"i32": [0, 3, -1, 0x7FFFFFFF], "i64": [0, -1, 1 << 40, 5],
               "f64": [0.0, -0.0, 1.5, float("inf"), float("nan")]}
    for _, name, _, _, _, _, ty, _ in rows:
        fused, apart = inst.exports[name], inst.exports[name + "_apart"]
        vals = samples[ty.lower()]
        for a in vals:
            for b in vals[::2]:
                got, want = fused(16, a, b, b), apart(16, a, b, b)
                assert got == want or (got != got and want != want), (name, a, b)
        with pytest.raises(asyncwasm.Trap, match="out of bounds memory access"):
            fused(65536 - 8, vals[1], vals[1], vals[1])
