"""LOAD_TEST rows: a load whose value the conditional jump right after it
tests (compile_immediate.inc load_test_form; opcodes.def LOAD_TEST), the
shape of quicksort's `while (a[i] < pivot)` and of strlen's `while (*p)`
or `while (p[K])` (a summed address, the byte load joined to the jump).

Every row is built from loops whose back edge loads, keeps the value in a
local (`local.tee`) and compares it against another local, on either side
of the compare, or tests it against zero; results are checked against
wasmtime, every loop is run in every fuel slice from 1 to 13 (the row is
charged after its load and must stop and resume exactly as the two
instructions did), a load out of bounds traps at the load's own offset,
and every row is found in front_check's dump, so that none goes untested.

    python -m pytest tests/c/test_load_test.py -q
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
from tests.c.rows import OPCODES, sliced, u  # noqa: E402
from tests.wat import wat  # noqa: E402

LOAD_TEST = re.findall(r"^LOAD_TEST\((\w+),\s*(\w+),\s*(\w+),\s*(\w)", OPCODES, re.M)
CMPS = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]
LOADS = {"I32_LOAD": "i32.load", "I32_LOAD8_U": "i32.load8_u"}

# A loop of at most 40 rounds (the guard $g) whose back edge is {test}; the
# pointer walks down by 3 (a sub: nothing fuses with the jump but the load),
# and the loaded value $v feeds the result, so a wrong d shows.
LOOP = """(func (export "{name}") (param $p i32) (param $x i32) (result i32)
  (local $g i32) (local $v i32) (local $acc i32)
  i32.const 40 local.set $g
  (block $exit (loop $l
    local.get $g i32.eqz br_if $exit
    local.get $g i32.const -1 i32.add local.set $g
    local.get $acc i32.const 31 i32.mul local.get $v i32.xor local.set $acc
    local.get $p i32.const 3 i32.sub local.set $p
    {test}))
  local.get $acc local.get $g i32.xor local.get $v i32.xor)"""


def _tests() -> list[tuple[str, str]]:
    """(name, test): per load, the value compared with $x on the compare's
    left and on its right, and tested against zero (br_if, i32.eqz br_if)."""
    tests = []
    for row, load in LOADS.items():
        value = f"local.get $p {load} offset=2 local.tee $v"
        for cmp in CMPS:
            tests += [(f"{row}_{cmp}_l", f"{value} local.get $x i32.{cmp} br_if $l"),
                      (f"{row}_{cmp}_r", f"local.get $x {value} i32.{cmp} br_if $l")]
        tests += [(f"{row}_if", f"{value} br_if $l"), (f"{row}_unless", f"{value} i32.eqz br_if $l")]
        # A list walk, p = *p: the row's d is its own address (a fuel stop
        # must leave p alone, or resuming loads from the wrong place).
        walk = f"local.get $p {load} offset=3 local.tee $p"  # the loop took 3 off p
        tests += [(f"{row}_walk_if", f"{walk} br_if $l"),
                  (f"{row}_walk_ne", f"{walk} local.get $x i32.ne br_if $l")]
    # strlen's `while (p[K])`: a byte at a summed address, K a constant (the
    # _SUM_I_TEST rows) or a local (the slot-sum LOAD_JUMP rows, which stay)
    for k, term in ((0, "i32.const 5"), (1, "i32.const -2"), (2, "local.get $x")):
        byte = f"local.get $p {term} i32.add i32.load8_u offset=1 local.tee $v"
        tests += [(f"SUM_if{k}", f"{byte} br_if $l"), (f"SUM_unless{k}", f"{byte} i32.eqz br_if $l"),
                  (f"SUM_l_if{k}", f"{term} local.get $p i32.add i32.load8_u local.tee $v br_if $l")]
    # quicksort's `a[j] > pivot; j--`: a load, then the pointer's step (the
    # I32_LOAD_I32_ADD_I pair), the step reading the load's address or value
    # (an xor between them and the jump, so that the add does not join the jump)
    tests += [("STEP_p", "local.get $p i32.load offset=2 local.set $v local.get $p i32.const -4 i32.add"
                         " local.set $x local.get $x local.get $v i32.xor local.set $x local.get $x br_if $l"),
              ("STEP_v", "local.get $p i32.load offset=2 local.tee $v i32.const 7 i32.add local.set $x"
                         " local.get $x local.get $p i32.xor local.set $x local.get $x br_if $l")]
    return tests


TESTS = _tests()
DATA = "".join(f"\\{b:02x}" for b in [0, 0x80, 0xFF, 5, 0x7F, 0, 0, 1, 0x92, 0x33, 0, 0xE0] * 32)
# Where the walks go: word k at 1024 + 4k points to word (5k + 1) mod 64 (word 21 ends the list).
LIST = "".join(f"\\{b:02x}" for k in range(64) for b in
               (0 if k == 21 else 1024 + 4 * ((5 * k + 1) % 64)).to_bytes(4, "little"))
MODULE = wat('(module (memory 1) (data (i32.const 0) "' + DATA + '") (data (i32.const 1024) "' + LIST + '")\n'
             + "\n".join(LOOP.format(name=n, test=t) for n, t in TESTS) + ")")
NAMES = [n for n, _ in TESTS]
ARGS = [(130, 0), (200, 5), (300, 0x80), (150, 0x7FFFFFFF), (240, -0x80000000), (360, -1)]  # p - 120 >= 0


def _call(call, *args):
    try:
        return ("ok", u(call(*args), 32))
    except (asyncwasm.Trap, wasmtime.Trap) as exc:
        return ("trap", "out of bounds" in str(exc))


def test_load_tests_match_wasmtime():
    assert len(LOAD_TEST) == 26, "opcodes.def LOAD_TEST rows not found"
    store = wasmtime.Store()
    ref = wasmtime.Instance(store, wasmtime.Module(store.engine, MODULE), []).exports(store)
    ours = asyncwasm.Linker().instantiate(asyncwasm.Module(MODULE)).exports
    for name in NAMES:
        for args in ARGS + WALK_ARGS + [(7, 0)]:  # p = 7 walks below 0: the load traps
            assert _call(ours[name], *args) == _call(lambda *a: ref[name](store, *a), *args), (name, args)


WALK_ARGS = [(1024 + 4 * k, x) for k in (0, 7, 30) for x in (0, 1044)]


def test_load_tests_stop_and_resume_in_any_fuel_slice():
    ours = asyncwasm.Linker().instantiate(asyncwasm.Module(MODULE)).exports
    for name in NAMES:
        # arguments with which the loop ends without a trap
        args = next(a for a in ARGS[len(name) % len(ARGS):] + WALK_ARGS if _call(ours[name], *a)[0] == "ok")
        whole = sliced(ours[name], args, 10**9)
        for fuel in range(1, 14):
            assert sliced(ours[name], args, fuel) == whole, (name, fuel)


def test_a_load_test_traps_at_its_load():
    ours = asyncwasm.Linker().instantiate(asyncwasm.Module(MODULE)).exports
    # Every i32.load is below -1 (no word of DATA is all ones): the loop runs
    # on to p = -2, and the load (`i32.load offset=2`, the function's only one) traps.
    k = NAMES.index("I32_LOAD_lt_u_l")
    load = [m.start() for m in re.finditer(re.escape(bytes([0x28, 0x02, 0x02])), MODULE)][k]
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        ours["I32_LOAD_lt_u_l"](7, -1)
    assert info.value.frames[0].module_offset == load
    # The pair's load traps as itself (at 65534 + 2: only 2 bytes left).
    assert NAMES[-2:] == ["STEP_p", "STEP_v"]  # the last two functions, one i32.load each
    load = [m.start() for m in re.finditer(re.escape(bytes([0x28, 0x02, 0x02])), MODULE)][-2]
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        ours["STEP_p"](65537, 0)
    assert info.value.frames[0].module_offset == load


def test_every_load_test_row_occurs(dump):
    """The loops above really run every row (else they prove little)."""
    seen = set()
    for i in range(len(TESTS)):
        seen.update(re.findall(r"^\s+\d+\s+(\w+)", dump(MODULE, i), re.M))
    rows = {r[0] for r in LOAD_TEST} | {"I32_LOAD8_U_SUM_JUMP_IF", "I32_LOAD8_U_SUM_JUMP_UNLESS",
                                        "I32_LOAD_I32_ADD_I"}
    assert rows <= seen, rows - seen
