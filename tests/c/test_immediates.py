"""Immediate operands: a constant in the code word instead of a pool slot
(compile.c "Immediate operands"; opcodes.def NUMERIC_I, JUMP_I, ADD_JUMP_I).

Every row with an immediate is built from Wasm that puts a constant on
either side of the operation (the compiler mirrors a constant on the left),
checked against wasmtime for edge-case constants and inputs, run in every
fuel slice from 1 to 13 (a rewritten instruction must stop, resume and
charge exactly as the slot form did), and found in front_check's dump, so
that no row goes untested. The pool keeps only the constants the code
still reads.

    python -m pytest tests/c/test_immediates.py -q
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
from tests.c.rows import OPCODES, mnemonic, sliced, u  # noqa: E402
from tests.wat import wat  # noqa: E402

NUMERIC_I = re.findall(r"^NUMERIC_I\((\w+),\s*(\w+),\s*(\w+)\)", OPCODES, re.M)
JUMP_I = re.findall(r"^JUMP_I\((\w+),\s*(\w+)\)", OPCODES, re.M)
ADD_JUMP_I = re.findall(r'^ADD_JUMP_I\((\w+),\s*(\w),\s*(\w+),\s*(\w),', OPCODES, re.M)
ADD_TEST = re.findall(r'^ADD_TEST\((\w+),\s*(\w),\s*(\w+),\s*(\w),', OPCODES, re.M)
CMPS = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]

CONSTS = {"i32": [0, 1, -1, 7, 31, 32, 0x7FFFFFFF, -0x80000000, 0x12345678],
          "i64": [0, 1, -1, 63, 64, 0x7FFFFFFF, -0x80000000, 0x100000000, -0x123456789A]}
INPUTS = {"i32": [0, 1, -1, 5, 0x7FFFFFFF, -0x80000000, 0x0F0F0F0F],
          "i64": [0, 1, -1, 5, 0x7FFFFFFFFFFFFFFF, -0x8000000000000000, 0x123456789ABCDEF]}



CHAIN_I = re.findall(r"^CHAIN_I\((\w+),\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w),\s*(\w)\)", OPCODES, re.M)


def _numeric_funcs() -> list[tuple[str, str, str]]:
    """(export name, type, body) per row base, constant and side; per CHAIN_I
    row, (x FIRST b) SECOND c with b and c constants where the row has
    immediates (b also on FIRST's left)."""
    funcs = []
    for name, _, first, second, ty, b_kind, c_kind in CHAIN_I:
        t = ty.lower()
        for k, (cb, cc) in enumerate(zip(CONSTS[t], reversed(CONSTS[t]))):
            b = f"{t}.const {cb}" if b_kind == "I" else "local.get 1"
            c = f"{t}.const {cc}" if c_kind == "I" else "local.get 1"
            for side, ab in (("r", f"local.get 0 {b}"), ("l", f"{b} local.get 0")):
                funcs.append((f"{name}_{side}{k}", f"(param {t} {t}) (result {t})",
                              f"{ab} {mnemonic(first)} {c} {mnemonic(second)}"))
    for _, base, ty in NUMERIC_I:
        t = ty.lower()
        result = "i32" if base.split("_", 1)[1] in {c.upper() for c in CMPS} else t
        for k, c in enumerate(CONSTS[t]):
            for side, body in (("r", f"local.get 0 {t}.const {c} {mnemonic(base)}"),
                               ("l", f"{t}.const {c} local.get 0 {mnemonic(base)}")):
                funcs.append((f"{base}_{side}{k}", f"(param {t}) (result {result})", body))
    return funcs


# Loops whose back edge is each jump form; a guard ends every loop after 40
# rounds. {test} is the code that ends in the br_if to $l (the acc update
# comes before it and ends in an xor, so that no add fuses with the jump
# unless the form puts one there).
LOOP = """(func (export "{name}") (param $x i32) (param $y i32) (result i32)
  (local $i i32) (local $g i32) (local $acc i32)
  local.get $x local.set $i
  i32.const 40 local.set $g
  (block $exit (loop $l
    local.get $g i32.eqz br_if $exit
    local.get $g i32.const -1 i32.add local.set $g
    local.get $acc i32.const 31 i32.mul local.get $i i32.xor local.set $acc
    {test}))
  local.get $acc local.get $i i32.xor local.get $g i32.xor)"""

STEPS = [1, -1, 3, 0x40000000, -0x7FFFFFFF]
LIMITS = [0, 5, -1, 0x7FFFFFFF, -0x80000000, 100]


def _jump_tests() -> list[tuple[str, str]]:
    """(name, test) for each form: a compare with an immediate on either side
    (JUMP_I); an add of a slot or an immediate whose sum the compare tests,
    against a slot or an immediate, on either side (ADD_TEST); the same add
    with the compare on another variable (ADD_JUMP_I); each add then a test
    of the sum or of another variable against zero."""
    tests = []
    for cmp in CMPS:
        for k, c in enumerate(LIMITS):
            step = STEPS[k % len(STEPS)]
            adv = f"local.get $i i32.const {-step} i32.sub local.set $i"  # a sub: it does not join the jump
            add = {"s": "local.get $i local.get $y i32.add", "i": f"local.get $i i32.const {step} i32.add"}
            tee = {q: f"{add[q]} local.tee $i" for q in add}
            other = {"s": "local.get $x", "i": f"i32.const {c}"}
            tests += [
                (f"j_{cmp}_r{k}", f"{adv} local.get $i i32.const {c} i32.{cmp} br_if $l"),
                (f"j_{cmp}_l{k}", f"{adv} i32.const {c} local.get $i i32.{cmp} br_if $l"),
            ]
            for q in "si":
                for b in "si":
                    tests += [
                        (f"t{q}{b}_{cmp}_r{k}", f"{tee[q]} {other[b]} i32.{cmp} br_if $l"),
                        (f"t{q}{b}_{cmp}_l{k}", f"{other[b]} {tee[q]} i32.{cmp} br_if $l"),
                        (f"g{q}{b}_{cmp}_r{k}",
                         f"{add[q]} local.set $i local.get $g {other[b]} i32.{cmp} br_if $l"),
                    ]
    for k, step in enumerate(STEPS):
        for q, add in (("s", "local.get $i local.get $y i32.add"), ("i", f"local.get $i i32.const {step} i32.add")):
            tests += [(f"t{q}z_if{k}", f"{add} local.tee $i br_if $l"),
                      (f"t{q}z_unless{k}", f"{add} local.tee $i i32.eqz br_if $l"),
                      (f"g{q}z_if{k}", f"{add} local.set $i local.get $g br_if $l"),
                      (f"g{q}z_unless{k}", f"{add} local.set $i local.get $g i32.eqz br_if $l")]
    return tests


def _module() -> bytes:
    funcs = [f'(func (export "{n}") {sig} {body})' for n, sig, body in _numeric_funcs()]
    funcs += [LOOP.format(name=n, test=t) for n, t in _jump_tests()]
    return wat("(module\n" + "\n".join(funcs) + ")")


MODULE = _module()
NUMERIC_NAMES = [n for n, _, _ in _numeric_funcs()]
CHAIN_NAMES = {n for n in NUMERIC_NAMES if n.rsplit("_", 1)[0] in {r[0] for r in CHAIN_I}}
JUMP_NAMES = [n for n, _ in _jump_tests()]
JUMP_ARGS = [(0, 1), (5, -1), (-3, 2), (0x7FFFFFF0, 3), (-0x80000000, -7)]



def test_numeric_immediates_match_wasmtime(both):
    assert len(NUMERIC_I) >= 20, "opcodes.def NUMERIC_I rows not found"
    store, ref, ours = both
    for name in NUMERIC_NAMES:
        ty = "i64" if name.startswith("I64") else "i32"
        for x in INPUTS[ty]:
            args = (x, INPUTS[ty][-1]) if name in CHAIN_NAMES else (x,)
            assert u(ours[name](*args), 64) == u(ref[name](store, *args), 64), (name, x)


def test_jump_immediates_match_wasmtime(both):
    store, ref, ours = both
    for name in JUMP_NAMES:
        for args in JUMP_ARGS:
            assert u(ours[name](*args), 32) == u(ref[name](store, *args), 32), (name, args)



def test_immediates_stop_and_resume_in_any_fuel_slice(both):
    _, _, ours = both
    for name in JUMP_NAMES[::3] + NUMERIC_NAMES[::7]:
        args = (5, -1) if name in JUMP_NAMES else (7, 3) if name in CHAIN_NAMES else (7,)
        whole = sliced(ours[name], args, 10**9)
        for fuel in range(1, 14):
            assert sliced(ours[name], args, fuel) == whole, (name, fuel)


def test_every_immediate_row_occurs(dump):
    """The functions above really run every row (else they prove little)."""
    rows = {r[0] for r in NUMERIC_I + JUMP_I + ADD_JUMP_I + CHAIN_I + ADD_TEST}
    assert len(JUMP_I) == 10 and len(ADD_JUMP_I) >= 20, "opcodes.def immediate rows not found"
    seen = set()
    for i in range(len(NUMERIC_NAMES) + len(JUMP_NAMES)):
        seen.update(re.findall(r"^\s+\d+\s+(\w+)", dump(MODULE, i), re.M))
    assert rows <= seen, rows - seen


def test_the_pool_keeps_only_constants_still_read(dump):
    # fib's constants all became immediates: nothing is copied into its frame per call.
    module = wat("""(module (func $fib (export "fib") (param i32) (result i32)
      local.get 0 i32.const 2 i32.lt_u if (result i32) local.get 0 else
      local.get 0 i32.const -1 i32.add call $fib local.get 0 i32.const -2 i32.add call $fib i32.add end)
      (func (export "g") (param f64) (result f64) local.get 0 f64.const 0.5 f64.mul))""")
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(module))
    assert inst.exports["fib"](20) == 6765
    assert inst.exports["g"](3.0) == 1.5
    fib, g = dump(module, 0), dump(module, 1)
    assert " 0 const," in fib and "JUMP_IF_GE_U_I" in fib and "I32_ADD_I" in fib, fib
    assert " 1 const," in g and "const 0x3fe0000000000000" in g, g  # an f64 keeps its pool slot


# ---- summed addresses with an immediate term (LOAD_SUM_I, STORE_SUM_I, LOAD_SUM_OP_I) ----

LOAD_SUM_I = re.findall(r"^LOAD_SUM_I\((\w+),\s*(\w+),\s*(\w+),\s*(\w+),\s*(\d)\)", OPCODES, re.M)
STORE_SUM_I = re.findall(r"^STORE_SUM_I\((\w+),\s*(\w+),\s*(\w+),\s*(\w+),\s*(\d)\)", OPCODES, re.M)
LOAD_SUM_OP_I = re.findall(r"^LOAD_SUM_OP_I\((\w+),\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+),\s*(\d)\)", OPCODES, re.M)
TERMS = [0, 24, 0x20, -8]  # the constant added to the address (0x20 with p = -16 wraps to 16)
PTRS = [0, 8, 100, -16, 65536 - 20, 65536 - 4, 70000]  # the last ones trap for the wider accesses
AS_BITS = {"i32": "", "i64": "", "f32": "i32.reinterpret_f32", "f64": "i64.reinterpret_f64"}
BITS_TYPE = {"i32": "i32", "i64": "i64", "f32": "i32", "f64": "i64"}


def _memory_funcs() -> list[tuple[str, str]]:
    """(export name, func) for every summed-address row, the constant on
    either side of the add; results as integer bits, so NaNs compare exactly."""
    funcs = []
    for k, c in enumerate(TERMS):
        for side in "rl":
            addr = (f"local.get $p i32.const {c} i32.add" if side == "r"
                    else f"i32.const {c} local.get $p i32.add")
            for name, _, base, ty, _ in LOAD_SUM_I:
                t = ty.lower()
                funcs.append((f"{name}_{side}{k}", f"(param $p i32) (result {BITS_TYPE[t]})"
                              f" {addr} {mnemonic(base)} offset=3 {AS_BITS[t]}"))
            for name, _, base, ty, _ in STORE_SUM_I:
                t = ty.lower()
                value = {"i32": "i32.const 0x5A6B7C8D", "i64": "i64.const 0x123456789ABCDEF0",
                         "f32": "f32.const -1.5", "f64": "f64.const 0.1"}[t]
                funcs.append((f"{name}_{side}{k}", f"(param $p i32) (result i64)"
                              f" {addr} {value} {mnemonic(base)} offset=2"
                              f" local.get $p i32.const {c} i32.add i64.load offset=2"))
            for name, _, load, op, ty, _ in LOAD_SUM_OP_I:
                t = ty.lower()
                x = {"i32": "i32.const 0x01020304", "i64": "i64.const -5", "f64": "f64.const 3.25"}[t]
                funcs.append((f"{name}_{side}{k}", f"(param $p i32) (result {BITS_TYPE[t]})"
                              f" {x} {addr} {mnemonic(load)} offset=1 {mnemonic(op)} {AS_BITS[t]}"))
            funcs.append((f"SELECT_{side}{k}", f"(param $p i32) (result i32)"
                           f" i32.const 7 local.get $p {addr} i32.load8_u offset=1 select"))
    return [(n, f'(func (export "{n}") {body})') for n, body in funcs]


MEMORY_FUNCS = _memory_funcs()
MEMORY_MODULE = wat('(module (memory (export "mem") 1) (data (i32.const 0) "'
                    + "".join(f"\\{(i * 37 + 11) & 255:02x}" for i in range(256)) + '")\n'
                    + "\n".join(f for _, f in MEMORY_FUNCS) + ")")


def _call(call, *args):
    try:
        return ("ok", call(*args))
    except (asyncwasm.Trap, wasmtime.Trap) as exc:
        return ("trap", "out of bounds" in str(exc))


def test_summed_address_immediates_match_wasmtime():
    assert len(LOAD_SUM_I) == 8 and len(STORE_SUM_I) == 6 and len(LOAD_SUM_OP_I) >= 10
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, MEMORY_MODULE), []).exports(store)
    ours = asyncwasm.Linker().instantiate(asyncwasm.Module(MEMORY_MODULE)).exports
    for name, _ in MEMORY_FUNCS:
        for p in PTRS:
            got, want = _call(ours[name], p), _call(lambda q: ref[name](store, q), p)
            if got[0] == "ok" and want[0] == "ok":
                got, want = ("ok", u(got[1], 64)), ("ok", u(want[1], 64))
            assert got == want, (name, p)


def test_summed_address_immediates_resume_and_trap_at_their_instruction(dump):
    ours = asyncwasm.Linker().instantiate(asyncwasm.Module(MEMORY_MODULE)).exports
    for name, _ in MEMORY_FUNCS[::5]:
        whole = sliced(ours[name], (8,), 10**9)
        for fuel in range(1, 14):
            assert sliced(ours[name], (8,), fuel) == whole, (name, fuel)
    # A trap names the access (its module offset), as it did in the slot form.
    load = MEMORY_MODULE.index(bytes([0x2D, 0x00, 0x01]))  # the first i32.load8_u offset=1
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        ours["SELECT_r0"](70000)
    assert info.value.frames[0].module_offset == load
    rows = {r[0] for r in LOAD_SUM_I + STORE_SUM_I + LOAD_SUM_OP_I} | {"I32_LOAD8_U_SUM_I_SELECT"}
    seen = set()
    for i in range(len(MEMORY_FUNCS)):
        seen.update(re.findall(r"^\s+\d+\s+(\w+)", dump(MEMORY_MODULE, i), re.M))
    assert rows <= seen, rows - seen
