"""STEP_TEST rows: a byte walk's step (an i32 add of a constant, after a
copy of the old value for a post-increment) and the LOAD_TEST row that
loads through it, as one instruction (compile_steps.inc; opcodes.def
STEP_TEST): `while (*++p)`, `while (s[++i])`, `while (*p++)`,
`while (s[i++])`, and `s[i]` with `i + 1` kept in two locals (the
step, then a COPY of the sum): strings' strlen and strchr loops.

Every row is built from loops whose back edge is such a walk, with steps
up and down and the loaded value, pointer, index and copy all feeding the
result; near neighbours that must not fuse (the copy overwritten by the
add, the add reading the copy, the loaded value landing in the pointer)
run beside them. Results are checked against wasmtime, every loop is run
in every fuel slice from 1 to 13 (the row writes its slots only once the
jump is paid, and must stop and resume exactly as its members did), a
walk off the end of memory traps where wasmtime says (the load's offset),
and every row is found in front_check's dump.

    python -m pytest tests/c/test_step_test.py -q
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

STEP_TEST = re.findall(r"^STEP_TEST\((\w+),", OPCODES, re.M)

# A loop of at most 40 rounds (the guard $g) whose back edge is {walk}; the
# pointer or index $p, the copy $t and the loaded byte $v feed $acc every
# round and the result, so a wrong slot shows.
LOOP = """(func (export "{name}") (param $p i32) (param $x i32) (result i32)
  (local $g i32) (local $v i32) (local $acc i32) (local $t i32) (local $q i32)
  i32.const 40 local.set $g
  local.get $x local.set $t
  (block $exit (loop $l
    local.get $g i32.eqz br_if $exit
    local.get $g i32.const -1 i32.add local.set $g
    local.get $acc i32.const 31 i32.mul local.get $v i32.xor local.get $p i32.xor
    local.get $t i32.const 7 i32.mul i32.xor local.set $acc
    {walk}))
  local.get $acc local.get $g i32.xor local.get $v i32.xor local.get $p i32.xor local.get $t i32.xor)"""

STEPS = (1, 3, -1, -2)
BASE = 2048  # where the index walks' string starts (their constant term)


def _tests() -> list[tuple[str, str, str]]:
    """(name, walk, the one STEP_TEST row expected in its dump, "" for none)."""
    tests = []
    for k, c in enumerate(STEPS):
        step = f"i32.const {c} i32.add"
        tests += [
            # *++p: the pointer's step, then the byte it now points at
            (f"pre_p{k}", f"local.get $p {step} local.tee $p i32.load8_u offset=1 local.tee $v br_if $l",
             "ADDI_I32_LOAD8_U_TEST_IF"),
            # s[++i]: the index's step, the byte at BASE + i
            (f"pre_i{k}", f"local.get $p {step} local.tee $p i32.const {BASE} i32.add i32.load8_u"
                          " local.tee $v br_if $l", "ADDI_I32_LOAD8_U_SUM_I_TEST_IF"),
            # *p++: the old pointer kept in $t, the byte at it
            (f"post_p{k}", f"local.get $p local.tee $t {step} local.set $p local.get $t i32.load8_u offset=2"
                           " local.tee $v br_if $l", "COPY_ADDI_I32_LOAD8_U_TEST_IF"),
            # s[i++]: strings' strlen(line)
            (f"post_i{k}", f"local.get $p local.tee $t {step} local.set $p local.get $t i32.const {BASE}"
                           " i32.add i32.load8_u local.tee $v br_if $l", "COPY_ADDI_I32_LOAD8_U_SUM_I_TEST_IF"),
            # s[i] at a summed address, i + 1 kept in two locals: strings' strlen(slot)
            (f"two_i{k}", f"local.get $x local.get $p i32.add local.set $q local.get $p {step} local.tee $t"
                          " local.set $p local.get $q i32.load8_u local.tee $v br_if $l",
             "ADDI_COPY_I32_LOAD8_U_TEST_IF"),
        ]
    tests += [
        # the byte lands in the pointer itself: p = p[1 + 1] (d is the add's y)
        ("pre_d_is_p", "local.get $p i32.const 1 i32.add local.tee $p i32.load8_u offset=1 local.tee $p br_if $l",
         "ADDI_I32_LOAD8_U_TEST_IF"),
        # the byte lands in the copy: d is the COPY's x
        ("post_d_is_t", "local.get $p local.tee $t i32.const 1 i32.add local.set $p local.get $t i32.load8_u"
                        " local.tee $t br_if $l", "COPY_ADDI_I32_LOAD8_U_TEST_IF"),
        # the add overwrites the copy (y is x): the load goes through the sum,
        # and the COPY stays out
        ("copy_overwritten", "local.get $p local.set $t local.get $p i32.const 1 i32.add local.set $t"
                             " local.get $t i32.load8_u local.tee $v br_if $l", "ADDI_I32_LOAD8_U_TEST_IF"),
        # the add reads the copy (q is x)
        ("add_reads_copy", "local.get $p local.set $t local.get $t i32.const 1 i32.add local.set $p"
                           " local.get $t i32.load8_u local.tee $v br_if $l", ""),
        # a jump lands on the load (it skips the step when x is odd): apart
        ("entered_between", "(block $b local.get $x i32.const 1 i32.and br_if $b local.get $p i32.const 1 i32.add"
                            " local.set $p) local.get $p i32.load8_u local.tee $v br_if $l", ""),
        # the sum kept in two locals, the load through one of them
        ("two_loaded", "local.get $p i32.const 1 i32.add local.tee $t local.set $p local.get $t i32.load8_u"
                       " local.tee $v br_if $l", ""),
        # the load goes through neither the sum nor the copy
        ("other_address", "local.get $t i32.const 1 i32.add local.set $t local.get $p i32.load8_u offset=3"
                          " local.tee $v br_if $l", ""),
    ]
    return tests


TESTS = _tests()
NAMES = [n for n, _, _ in TESTS]
# Bytes k of the first 4 KiB: a zero every 61 bytes, so that some walks end
# on a zero and others run the 40 rounds out; the last 64 bytes of memory
# are not zero, so that walks up run off its end.
DATA = "".join(f"\\{(k * 7 + 3) % 61:02x}" for k in range(4096))
TOP = "".join(f"\\{k + 1:02x}" for k in range(64))
MODULE = wat('(module (memory 1) (data (i32.const 0) "' + DATA + '") (data (i32.const 65472) "' + TOP + '")\n'
             + "\n".join(LOOP.format(name=n, walk=w) for n, w, _ in TESTS) + ")")
ARGS = [(100, 0), (300, 5), (1000, 7), (1010, -1), (150, 2), (500, 0x7FFFFFFF), (63, 1)]
# Off either end of memory, for pointers and for indexes (at BASE + i).
TRAP_ARGS = [(65530, 0), (65534, 65533), (5, 2), (65536 - BASE - 6, 0), (8 - BASE, 1)]


def _call(call, *args):
    try:
        return ("ok", u(call(*args), 32))
    except (asyncwasm.Trap, wasmtime.Trap) as exc:
        return ("trap", "out of bounds" in str(exc))


def test_step_tests_match_wasmtime(both):
    assert len(STEP_TEST) == 5, "opcodes.def STEP_TEST rows not found"
    store, ref, ours = both
    for name in NAMES:
        for args in ARGS + TRAP_ARGS:
            assert _call(ours[name], *args) == _call(lambda *a: ref[name](store, *a), *args), (name, args)


def test_step_tests_stop_and_resume_in_any_fuel_slice(both):
    _, _, ours = both
    for name in NAMES:
        for args in ARGS[:4]:
            if _call(ours[name], *args)[0] != "ok":
                continue
            whole = sliced(ours[name], args, 10**9)
            for fuel in range(1, 14):
                assert sliced(ours[name], args, fuel) == whole, (name, args, fuel)


def test_a_step_test_traps_at_its_load(both):
    """Where wasmtime traps, at the same module offset (the load's)."""
    store, ref, ours = both
    for name in NAMES:
        trapped = 0
        for args in TRAP_ARGS:
            try:
                ref[name](store, *args)
                continue
            except wasmtime.Trap as exc:
                theirs = exc.frames[0].module_offset
            with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
                ours[name](*args)
            assert info.value.frames[0].module_offset == theirs, (name, args)
            trapped += 1
        assert trapped, name


def test_every_step_test_row_occurs(dump):
    """The walks above run every row, and the near misses none."""
    for i, (name, _, row) in enumerate(TESTS):
        rows = set(re.findall(r"^\s+\d+\s+(\w+)", dump(MODULE, i), re.M))
        assert rows & set(STEP_TEST) == ({row} if row else set()), (name, sorted(rows))
    assert {row for _, _, row in TESTS} >= set(STEP_TEST)
