"""The compiler's fused SIMD instructions compute what the instructions apart do.

opcodes_simd.def lists SIMD fusions: a v128.load feeding an operation
(SIMD_LOAD_OP), an operation feeding a v128.store (SIMD_STORE_OF), loads and
stores whose address an i32.add computed (SIMD_LOAD_SUM, SIMD_STORE_SUM),
and two extends in a row (SIMD_CHAIN_UNARY). Every row is checked: the same
computation in the shape that fuses, and with a ``local.set $t local.get
$t`` in between, which keeps the instructions apart, must agree bit for bit
on random data, and trap alike at the end of memory (and where the 32-bit
address sum wraps). A dump shows that each shape really fuses.

    python -m pytest tests/c/test_simd_fusion.py -q
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
from tests.wat import wat  # noqa: E402

SIMD_DEF = (ROOT / "asyncwasm" / "_engine" / "opcodes_simd.def").read_text()
PAGE = 65536


def _text(row_name: str) -> str:
    """I32X4_ADD -> i32x4.add; V128_LOAD8X8_S -> v128.load8x8_s."""
    shape, _, rest = row_name.lower().partition("_")
    return f"{shape}.{rest}"


def _rows(kind: str) -> list[tuple[str, ...]]:
    rows = re.findall(rf"^{kind}\(([^)]*)\)", SIMD_DEF, re.M)
    assert rows, f"no {kind} rows in opcodes_simd.def"
    return [tuple(part.strip() for part in row.split(",")) for row in rows]


LOAD_OPS = _rows("SIMD_LOAD_OP")      # (NAME, OP, FUNC)
STORE_OFS = _rows("SIMD_STORE_OF")    # (NAME, OP, FUNC)
LOAD_SUMS = _rows("SIMD_LOAD_SUM")    # (NAME, BASE, FUNC, ALIGN_LOG2)
STORE_SUMS = _rows("SIMD_STORE_SUM")  # (NAME, BASE)
UNARY_CHAINS = _rows("SIMD_CHAIN_UNARY")  # (NAME, FIRST, SECOND, FUNC1, FUNC2)


def _module() -> bytes:
    funcs = []
    for name, op, _ in LOAD_OPS:
        funcs.append(f'(func (export "{name}") (param $x v128) (param $p i32) (result v128)'
                     f" ({_text(op)} (local.get $x) (v128.load offset=3 (local.get $p))))")
        funcs.append(f'(func (export "{name}_apart") (param $x v128) (param $p i32) (result v128) (local $t v128)'
                     f" (local.set $t (v128.load offset=3 (local.get $p)))"
                     f" ({_text(op)} (local.get $x) (local.get $t)))")
    for name, op, _ in STORE_OFS:
        funcs.append(f'(func (export "{name}") (param $p i32) (param $a v128) (param $b v128)'
                     f" (v128.store offset=5 (local.get $p) ({_text(op)} (local.get $a) (local.get $b))))")
        funcs.append(f'(func (export "{name}_apart") (param $p i32) (param $a v128) (param $b v128) (local $t v128)'
                     f" (local.set $t ({_text(op)} (local.get $a) (local.get $b)))"
                     f" (v128.store offset=5 (local.get $p) (local.get $t)))")
    for name, base, *_ in LOAD_SUMS:
        funcs.append(f'(func (export "{name}") (param $p i32) (param $q i32) (result v128)'
                     f" ({_text(base)} offset=2 (i32.add (local.get $p) (local.get $q))))")
        funcs.append(f'(func (export "{name}_apart") (param $p i32) (param $q i32) (result v128) (local $t i32)'
                     f" (local.set $t (i32.add (local.get $p) (local.get $q)))"
                     f" ({_text(base)} offset=2 (local.get $t)))")
    for name, base in STORE_SUMS:
        funcs.append(f'(func (export "{name}") (param $p i32) (param $q i32) (param $v v128)'
                     f" ({_text(base)} offset=2 (i32.add (local.get $p) (local.get $q)) (local.get $v)))")
        funcs.append(f'(func (export "{name}_apart") (param $p i32) (param $q i32) (param $v v128) (local $t i32)'
                     f" (local.set $t (i32.add (local.get $p) (local.get $q)))"
                     f" ({_text(base)} offset=2 (local.get $t) (local.get $v)))")
    for name, first, second, *_ in UNARY_CHAINS:
        funcs.append(f'(func (export "{name}") (param $x v128) (result v128)'
                     f" ({_text(second)} ({_text(first)} (local.get $x))))")
        funcs.append(f'(func (export "{name}_apart") (param $x v128) (result v128) (local $t v128)'
                     f" (local.set $t ({_text(first)} (local.get $x))) ({_text(second)} (local.get $t)))")
    return wat('(module (memory (export "mem") 1) ' + " ".join(funcs) + ")")


@pytest.fixture(scope="module")
def module() -> bytes:
    return _module()


def _call(instance, name: str, *args) -> object:
    """The result, or the trap's kind."""
    try:
        return instance.exports[name](*args)
    except asyncwasm.Trap as exc:
        return exc.kind


def _v128(rng: random.Random) -> int:
    # f32/f64 lanes with NaNs, infinities and zeros now and then
    special = [0, 0x7FC00000, 0x7FA00001, 0xFF800000, 0x80000000, 0x3F800000]
    lanes = [rng.choice(special) if rng.random() < 0.3 else rng.getrandbits(32) for _ in range(4)]
    return sum(lane << (32 * i) for i, lane in enumerate(lanes))


def test_every_simd_fusion_matches_its_instructions_apart(module: bytes) -> None:
    rng = random.Random(14)
    fused_inst = asyncwasm.Linker().instantiate(asyncwasm.Module(module))
    apart_inst = asyncwasm.Linker().instantiate(asyncwasm.Module(module))
    data = rng.randbytes(PAGE)
    for inst in (fused_inst, apart_inst):
        inst.exports["mem"].write(0, data)
    pointers = [0, 1, 100, PAGE - 19, PAGE - 18, PAGE - 16, PAGE]  # the last ones trap
    for name, *_ in LOAD_OPS:
        for p in pointers:
            x = _v128(rng)
            assert _call(fused_inst, name, x, p) == _call(apart_inst, name + "_apart", x, p), (name, p)
    for name, *_ in STORE_OFS:
        for p in pointers:
            a, b = _v128(rng), _v128(rng)
            assert _call(fused_inst, name, p, a, b) == _call(apart_inst, name + "_apart", p, a, b), (name, p)
    for name, base, _, align in LOAD_SUMS:
        width = 1 << int(align)
        for p, q in [(0, 0), (7, 9), (PAGE - 2 - width, 0), (PAGE - 1 - width, 0), (2**32 - 1, 10), (2**31, 2**31)]:
            assert _call(fused_inst, name, p, q) == _call(apart_inst, name + "_apart", p, q), (name, p, q)
    for name, _ in STORE_SUMS:
        for p, q in [(3, 4), (PAGE - 18, 0), (PAGE - 17, 0), (2**32 - 8, 20)]:
            v = _v128(rng)
            assert _call(fused_inst, name, p, q, v) == _call(apart_inst, name + "_apart", p, q, v), (name, p, q)
    for name, *_ in UNARY_CHAINS:
        for _ in range(20):
            x = _v128(rng)
            assert _call(fused_inst, name, x) == _call(apart_inst, name + "_apart", x), name
    # the stores left the same bytes behind
    assert fused_inst.exports["mem"].read(0, PAGE) == apart_inst.exports["mem"].read(0, PAGE)


def test_dump_shows_every_simd_fusion(module: bytes, tmp_path: Path) -> None:
    """The fusing shapes above really fuse (else the test above proves nothing)."""
    sys.path.insert(0, str(ROOT / "tests" / "c"))
    import front_check

    try:
        exe = front_check.build(asan=False)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"front_check needs gcc: {exc}")
    wasm = tmp_path / "simd_fused.wasm"
    wasm.write_bytes(module)
    exports = asyncwasm.Module(module).exports
    for index, export in enumerate(e for e in exports if e.name != "mem"):
        out = subprocess.run([str(exe), "--dump", str(wasm), str(index)], capture_output=True, text=True,
                             timeout=60).stdout
        fused = not export.name.endswith("_apart")
        assert (f" {export.name} " in out) == fused, out
