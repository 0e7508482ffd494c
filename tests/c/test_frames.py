"""A callee's frame: declared locals start at zero, the constant pool in place.

interp.c's init_frame sets both on every call, by a jump into a straight
run of slot copies for up to 16 slots and by memcpy beyond. Each test calls
a function that leaves garbage in every slot of a large frame, then, at the
same frame base, a function with a given number of declared locals and
constants: the locals must read zero and the constants their values, for
every size on both sides of 16.

    python -m pytest tests/c/test_frames.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
from tests.wat import wat  # noqa: E402

MASK = (1 << 64) - 1


def _constants(k: int) -> list[int]:
    return [(0x9E3779B97F4A7C15 * (i + 1)) & MASK for i in range(k)]


def _module(nlocals: int, nconsts: int) -> bytes:
    """f(x): dirty() fills 40 slots with ones, then g(x) at the same base
    returns the OR of its nlocals declared locals plus, for each of its
    nconsts constants, x XOR the constant."""
    locals_ = " ".join(["i64"] * nlocals)
    body = ["i64.const 0"]
    body += [f"local.get {1 + i} i64.or" for i in range(nlocals)]
    body += [f"local.get 0 i64.const {c - (1 << 64) if c >> 63 else c} i64.xor i64.add"
             for c in _constants(nconsts)]
    dirty = " ".join(f"i64.const -1 local.set {i}" for i in range(40))
    return wat(f"""(module
      (func $dirty (local {" ".join(["i64"] * 40)}) {dirty})
      (func $g (param i64) (result i64) {f"(local {locals_})" if nlocals else ""} {" ".join(body)})
      (func (export "f") (param i64) (result i64) call $dirty local.get 0 call $g))""")


@pytest.mark.parametrize("nconsts", [0, 1, 3, 10, 17])
def test_locals_start_at_zero_and_constants_are_in_place(nconsts):
    for nlocals in range(0, 21):
        func = asyncwasm.Linker().instantiate(asyncwasm.Module(_module(nlocals, nconsts))).exports["f"]
        x = 0x0123456789ABCDEF
        expected = sum(x ^ c for c in _constants(nconsts)) & MASK
        got = func(x) & MASK
        assert got == expected, (nlocals, nconsts)
