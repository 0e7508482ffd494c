"""Pairs: two neighbouring instructions run in one dispatch (compile_pairs.inc).

The PAIR rows of opcodes.def join two neighbouring slot moves or
non-trapping integer operations after everything else is compiled, in place
(the second's words stay where they were). These tests run random
straight-line programs of local copies, adds, rotates and the chains
compile.c makes of them (xor, and, shifts), whose compiled code is full of
pairs, against a Python model of
the same program; run them in every small fuel slice (a pair must stop and
resume exactly like the two instructions apart, and charge the same fuel);
check that a trap right after a pair is reported at its own instruction;
and check with front_check's dump (which also verifies the code: every jump
lands on an instruction) that every row occurs and that no pair spans a
jump target.

    python -m pytest tests/c/test_pairs.py -q
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
import asyncwasm._engine as E  # noqa: E402
from asyncwasm.execution import Outcome  # noqa: E402
from tests.c.rows import OPCODES, sliced  # noqa: E402
from tests.wat import wat  # noqa: E402

PAIR_ROWS = re.findall(r"^PAIR\((\w+),", OPCODES, re.M)
MEMORY_ROWS = {"F64_STORE_ADD_I32_ADD", "F64_STORE_I32_ADD", "F64_STORE_ADD_I32_ADD_I", "F64_STORE_I32_ADD_I",
               "I32_LOAD8_U_SUM_SELECT", "I32_LOAD8_U_SUM_I_SELECT"}  # tested apart
LOAD_TEST_ROWS = {"I32_LOAD_I32_ADD_I"}  # tested in test_load_test.py
KERNEL_PAIRS = {"I32_ADD_ADD_I32_EQZ_ADD"}  # the sieve's: tested in test_pair_goto.py
NPARAMS, NLOCALS = 4, 4  # i32 variables 0-3 are params, 4-7 locals
MASK = 0xFFFFFFFF
_rng = random.Random(99)
INPUTS = [(1, 2, 3, 4), (0, 0, 0, 0), (0xFFFFFFFF, 1, 0x80000000, 0x7FFFFFFF)] + [
    tuple(_rng.getrandbits(32) for _ in range(NPARAMS)) for _ in range(8)]


BINARY = {
    "add": lambda a, b: (a + b) & MASK,
    "xor": lambda a, b: a ^ b,
    "and": lambda a, b: a & b,
    "shr_u": lambda a, b: a >> (b & 31),
    "rotl": lambda a, b: ((a << (b & 31)) | (a >> ((32 - (b & 31)) & 31))) & MASK,
}
# Operation pairs that compile.c chains into one instruction (opcodes.def CHAIN rows).
CHAINS = [("rotl", "xor"), ("shr_u", "xor"), ("xor", "and"), ("xor", "add"), ("and", "xor")]


def _program(rng: random.Random, n: int) -> list[tuple]:
    """n statements over the variables: ("copy", dst, src), ("bin", op, dst,
    a, b) for dst = a op b, ("addi", dst, a, k) for dst = a + k (a constant:
    compile.c's immediate operands), or ("chain", op1, op2, dst, a, b, c)
    for dst = (a op1 b) op2 c."""
    nvars = NPARAMS + NLOCALS
    out = []
    for _ in range(n):
        v = [rng.randrange(nvars) for _ in range(4)]
        kind = rng.random()
        if kind < 0.3:
            out.append(("copy", v[0], v[1]))
        elif kind < 0.45:
            out.append(("addi", v[0], v[1], rng.choice([1, 8, -1, 0x7FFFFFFF, rng.getrandbits(32)])))
        elif kind < 0.55:
            out.append(("bin", rng.choice(["add", "add", "rotl", "xor"]), *v[:3]))
        elif kind < 0.7:  # a rotate or shift by a constant, alone or chained (CHAIN_I)
            k = rng.randrange(32)
            out.append(rng.choice([("bin", "rotl", v[0], v[1], ("k", k)),
                                   ("chain", rng.choice(["rotl", "shr_u"]), "xor", v[0], v[1], ("k", k), v[3])]))
        else:
            out.append(("chain", *rng.choice(CHAINS), *v))
    return out


def _statements_wat(program: list[tuple], local=lambda k: k) -> str:
    """The program in Wasm; variable k is local index local(k), and an
    operand ("k", value) is the constant value."""
    def get(x) -> str:
        return f"i32.const {x[1]}" if isinstance(x, tuple) else f"local.get {local(x)}"

    parts = []
    for st in program:
        if st[0] == "copy":
            parts.append(f"local.get {local(st[2])} local.set {local(st[1])}")
        elif st[0] == "bin":
            _, op, d, a, b = st
            parts.append(f"local.get {local(a)} {get(b)} i32.{op} local.set {local(d)}")
        elif st[0] == "addi":
            _, d, a, k = st
            parts.append(f"local.get {local(a)} i32.const {_signed(k & MASK)} i32.add local.set {local(d)}")
        else:
            _, op1, op2, d, a, b, c = st
            parts.append(f"local.get {local(a)} {get(b)} i32.{op1} local.get {local(c)} i32.{op2}"
                         f" local.set {local(d)}")
    return "\n ".join(parts)


def _fold_wat(local=lambda k: k) -> str:
    """The result: the sum of (k + 1) * variable k, so that every variable counts."""
    return " ".join(f"local.get {local(k)} i32.const {k + 1} i32.mul" + (" i32.add" if k else "")
                    for k in range(NPARAMS + NLOCALS))


def _run_model(program: list[tuple], args: tuple, rounds: int = 1) -> int:
    xs = list(args) + [0] * NLOCALS

    def val(x) -> int:
        return x[1] if isinstance(x, tuple) else xs[x]

    for _ in range(rounds):
        for st in program:
            if st[0] == "copy":
                xs[st[1]] = xs[st[2]]
            elif st[0] == "bin":
                _, op, d, a, b = st
                xs[d] = BINARY[op](xs[a], val(b))
            elif st[0] == "addi":
                _, d, a, k = st
                xs[d] = (xs[a] + k) & MASK
            else:
                _, op1, op2, d, a, b, c = st
                xs[d] = BINARY[op2](BINARY[op1](xs[a], val(b)), xs[c])
    return sum((k + 1) * x for k, x in enumerate(xs)) & MASK


def _func(program: list[tuple], name: str) -> str:
    params = " ".join(["i32"] * NPARAMS)
    locals_ = " ".join(["i32"] * NLOCALS)
    return (f'(func (export "{name}") (param {params}) (result i32) (local {locals_})\n '
            f"{_statements_wat(program)}\n {_fold_wat()})")


def _programs(seed: int, count: int, length: int) -> list[list[tuple]]:
    rng = random.Random(seed)
    return [_program(rng, length) for _ in range(count)]


def _signed(x: int) -> int:
    return x - (1 << 32) if x >> 31 else x


def test_pairs_compute_what_the_instructions_apart_do():
    programs = _programs(seed=17, count=200, length=24)
    module = wat("(module " + "\n".join(_func(p, f"f{i}") for i, p in enumerate(programs)) + ")")
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(module))
    for i, program in enumerate(programs):
        for args in INPUTS:
            got = inst.exports[f"f{i}"](*(_signed(a) for a in args)) & MASK
            assert got == _run_model(program, args), (i, args, program)


def _loop_module(program: list[tuple]) -> bytes:
    """f(a, b, c, d, n): the program n times in a loop. The counter n is
    local 4, so variable k >= 4 of the program is local k + 1."""
    params = " ".join(["i32"] * NPARAMS)
    locals_ = " ".join(["i32"] * NLOCALS)
    local = lambda k: k if k < NPARAMS else k + 1  # noqa: E731
    return wat(f'(module (func (export "f") (param {params} i32) (result i32) (local {locals_})'
               f" (loop $l\n {_statements_wat(program, local)}"
               f"\n  local.get {NPARAMS} i32.const 1 i32.sub local.tee {NPARAMS} br_if $l)"
               f" {_fold_wat(local)}))")


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_pairs_stop_and_resume_in_any_fuel_slice(seed):
    program = _programs(seed=seed, count=1, length=30)[0]
    func = asyncwasm.Linker().instantiate(asyncwasm.Module(_loop_module(program))).exports["f"]
    args, rounds = (7, 11, 0xFFFFFFF0, 3), 25
    call_args = tuple(_signed(a) for a in args) + (rounds,)
    expected = _run_model(program, args, rounds)
    whole = E.Fiber(func, call_args)
    assert whole.run(10**9) == Outcome.DONE
    assert whole.results[0] & MASK == expected
    for fuel in (1, 2, 3, 5, 7, 13):
        fiber = E.Fiber(func, call_args)
        slice_fuel, stops = fuel, 0
        while (outcome := fiber.run(slice_fuel)) == Outcome.OUT_OF_FUEL:
            slice_fuel = max(fuel, fiber.fuel_needed)  # a chain is paid whole or not at all
            stops += 1
        assert outcome == Outcome.DONE, fuel
        assert stops >= rounds, fuel  # the run really stopped in the loop, every round
        assert fiber.results[0] & MASK == expected, fuel
        assert fiber.fuel_used == whole.fuel_used, fuel


def test_a_trap_after_a_pair_is_reported_at_its_instruction():
    src = ('(module (memory 1) (func (export "f") (param i32 i32) (result i32) (local $t i32)'
           " local.get 0 local.set $t"                            # COPY
           " local.get 0 local.get 1 i32.add local.set 0"        # i32.add: a pair
           " local.get 0 i32.load offset=4"                      # traps when a + b is out of bounds
           " local.get $t i32.add))")
    data = wat(src)
    func = asyncwasm.Linker().instantiate(asyncwasm.Module(data)).exports["f"]
    assert func(8, 8) == 8
    with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
        func(65536, 0)
    assert info.value.frames[0].module_offset == data.index(bytes([0x28, 0x02, 0x04]))  # i32.load align=2 offset=4


def test_every_pair_row_occurs(dump):
    """The programs above really run every row (else they prove little)."""
    assert len(PAIR_ROWS) >= 5, "opcodes.def PAIR rows not found"
    programs = _programs(seed=17, count=200, length=24)
    module = wat("(module " + "\n".join(_func(p, f"f{i}") for i, p in enumerate(programs)) + ")")
    seen = set()
    for i in range(len(programs)):
        seen.update(re.findall(r"^\s+\d+\s+(\w+)", dump(module, i), re.M))
    untested = set(PAIR_ROWS) - MEMORY_ROWS - LOAD_TEST_ROWS - KERNEL_PAIRS - seen
    assert not untested, untested


def test_no_pair_spans_a_jump_target(dump):
    # The loop header falls between the two adds: the back edge enters at
    # the second, so they must stay two instructions (and the dump's
    # verifier checks that every jump lands on an instruction).
    module = wat('(module (func (export "f") (param i32 i32 i32) (result i32)'
                 " local.get 0 local.get 1 i32.add local.set 0"
                 " (loop $l local.get 1 local.get 0 i32.add local.set 1"
                 "   local.get 2 local.get 0 i32.add local.set 2"
                 "   local.get 1 i32.const 1000 i32.lt_u br_if $l)"
                 " local.get 1 local.get 2 i32.add))")
    out = dump(module, 0)
    assert re.search(r"^\s+2\s+i32.add\s.*\n\s+6\s+i32.add\s", out, re.M), out
    assert "->6 " in out, out
    # a = 3; b = 2 + 3k until b >= 1000 (k = 333); c = 3k
    assert asyncwasm.Linker().instantiate(asyncwasm.Module(module)).exports["f"](1, 2, 0) == 1001 + 999


# Pairs whose first member is a memory access (it may trap; the second may not).
MEMORY_PAIRS = wat('''(module (memory (export "mem") 1)
 (func (export "f") (param $n i32) (param $a f64) (param $b f64) (param $p i32) (param $q i32) (result i32)
  (local $i i32) (local $s i32) (local $k i32)
  i32.const 8 local.set $k
  (loop $l
    local.get $p local.get $a local.get $b f64.add f64.store           ;; F64_STORE_ADD
    local.get $p i32.const 8 i32.add local.set $p                     ;;   + i32.add of an immediate
    local.get $p local.get $a f64.store                               ;; f64.store
    local.get $p local.get $k i32.add local.set $p                    ;;   + i32.add
    local.get $p local.get $a local.get $b f64.add f64.store           ;; F64_STORE_ADD
    local.get $p local.get $k i32.add local.set $p                    ;;   + i32.add
    local.get $p local.get $a f64.store                               ;; f64.store
    local.get $p i32.const 8 i32.add local.set $p                     ;;   + i32.add of an immediate
    i32.const 7 local.get $i local.get $q local.get $i i32.add i32.load8_u offset=1 select
    local.get $s i32.add local.set $s                                 ;; I32_LOAD8_U_SUM + SELECT
    i32.const 7 local.get $i local.get $i i32.const 1 i32.add i32.load8_u offset=1 select
    local.get $s i32.add local.set $s                                 ;; I32_LOAD8_U_SUM_I + SELECT
    local.get $i i32.const 1 i32.add local.tee $i local.get $n i32.lt_u br_if $l)
  local.get $s))''')


def _memory_pairs_model(n: int, a: float, b: float) -> tuple[int, bytes]:
    import struct

    mem = bytearray(65536)
    s = 0
    for i in range(n):
        mem[32 * i:32 * i + 32] = struct.pack("<dddd", a + b, a, a + b, a)
        s = (s + (7 if mem[i + 1] else i)) & MASK
        s = (s + (7 if mem[i + 2] else i)) & MASK
    return s, bytes(mem[:32 * n])


def test_memory_pairs_compute_stop_resume_and_trap_as_apart(dump):
    assert MEMORY_ROWS <= set(PAIR_ROWS)
    assert MEMORY_ROWS <= set(re.findall(r"^\s+\d+\s+(\w+)", dump(MEMORY_PAIRS, 0), re.M))
    n, a, b = 200, 1.5, -2.75
    expected, stored = _memory_pairs_model(n, a, b)
    inst = asyncwasm.Linker().instantiate(asyncwasm.Module(MEMORY_PAIRS))
    func = inst.exports["f"]
    assert func(n, a, b, 0, 0) == expected
    assert bytes(inst.exports["mem"].read(0, 32 * n)) == stored
    whole = sliced(func, (n, a, b, 0, 0), 10**9)
    assert whole[0] == (expected,)
    for fuel in (1, 2, 3, 5, 8):
        assert sliced(func, (n, a, b, 0, 0), fuel) == whole, fuel
    # Each first member traps where it would alone: its own module offset.
    first_store = MEMORY_PAIRS.index(bytes([0x39, 0x03, 0x00]))  # f64.store align=3 offset=0
    second_store = MEMORY_PAIRS.index(bytes([0x39, 0x03, 0x00]), first_store + 1)
    load = MEMORY_PAIRS.index(bytes([0x2D, 0x00, 0x01]))  # i32.load8_u align=0 offset=1
    for args, at in [((1, a, b, 65536 - 4, 0), first_store), ((1, a, b, 65536 - 12, 0), second_store),
                     ((1, a, b, 0, 65535), load)]:
        with pytest.raises(asyncwasm.Trap, match="out of bounds memory access") as info:
            func(*args)
        assert info.value.frames[0].module_offset == at, args
