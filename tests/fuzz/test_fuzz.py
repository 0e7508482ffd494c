"""The fast fuzz run (part of the default test run) and the fuzzers' own checks.

    python -m pytest tests/fuzz                        # about 2,000 modules on 2 cores
    ASYNCWASM_FUZZ_SEED=7 python -m pytest tests/fuzz  # other modules
    ASYNCWASM_FUZZ_CASES=5000 scripts/asan-tests.sh tests/fuzz   # 10,000 modules under ASan/UBSan
    python scripts/fuzz.py run --seed 1 --cases 100000 # the long run (README, Tests)

A failure names the case; ``python scripts/fuzz.py one --seed S --case K
--kind diff`` reproduces it alone, ``scripts/fuzz.py shrink`` minimizes it,
and the fix gets a module in tests/regressions/.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

import pytest
import trio

from ..wat import wat
from . import campaign, differential, wasmtools

pytestmark = pytest.mark.skipif(wasmtools.missing_reason() is not None, reason=str(wasmtools.missing_reason()))

SEED = int(os.environ.get("ASYNCWASM_FUZZ_SEED", "20240601"))
#: Cases per kind in the default run; each case is one module per kind.
FAST_CASES = int(os.environ.get("ASYNCWASM_FUZZ_CASES", "1000"))


def _campaign_in_workers(seed: int, cases: int, workers: int) -> campaign.Tally:
    bounds = [(seed, cases * i // workers, cases * (i + 1) // workers) for i in range(workers)]
    total = campaign.Tally()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        for tally in pool.map(_run_chunk, bounds):
            total.merge(tally)
    return total


def _run_chunk(bounds: tuple[int, int, int]) -> campaign.Tally:
    seed, first, last = bounds
    return campaign.run_campaign(seed, range(first, last))


def test_fast_campaign() -> None:
    """Generated and mutated modules: 0 disagreements, and enough happened
    for that to mean something."""
    workers = max(1, min(2, os.cpu_count() or 1))
    tally = _campaign_in_workers(SEED, FAST_CASES, workers)
    report = "\n".join(f"{r.name}: {r.detail}" for r in tally.disagreements[:10])
    assert not tally.disagreements, (
        f"{len(tally.disagreements)} disagreements (reproduce: python scripts/fuzz.py one --seed S --case K --kind KIND):\n{report}"
    )
    print(tally.summary())
    assert tally.modules("diff") >= 0.95 * FAST_CASES
    assert tally.counts[("validate", "valid")] > FAST_CASES // 10
    assert tally.counts[("validate", "invalid")] > FAST_CASES // 10
    assert tally.calls > 3 * FAST_CASES and tally.traps > FAST_CASES // 4
    assert tally.slices > 2 * tally.calls  # calls really ran in several slices
    assert tally.suspensions > FAST_CASES // 2  # host calls really suspended


# -- the fuzzers catch what they must ----------------------------------------------


def _check(text: str) -> tuple[str, str]:
    return trio.run(campaign.Checker().differential, 0, 0, wat(text))


def test_a_table_holding_a_function_of_an_exnref_type_is_compared() -> None:
    """wasmtime-py aborts the process when it reflects on an exnref type (a
    table of one once killed a campaign's worker, and the campaign waited
    forever): the runner reads wasmtime's function types through the C API."""
    text = '(module (table (export "t") 2 funcref) (elem (i32.const 1) $f) (func $f (param exnref)))'
    status, detail = _check(text)
    assert status == campaign.AGREE, detail


def test_agreement_on_a_module_with_every_kind_of_state() -> None:
    status, detail = _check(
        """(module
          (import "host" "add" (func $add (param i32 i32) (result i32)))
          (import "host" "memory" (memory 1 2))
          (global $g (export "g") (mut i64) (i64.const 5))
          (table (export "t") 2 funcref)
          (elem (i32.const 1) $f)
          (func $f (export "f") (param i32) (result i32 f32)
            (global.set $g (i64.extend_i32_u (call $add (local.get 0) (i32.const 2))))
            (i32.store (i32.const 8) (local.get 0))
            (local.get 0)
            (f32.reinterpret_i32 (i32.const 0x7fa00001)))   ;; a signalling NaN, bit for bit
          (func (export "div") (param i32) (result i32)
            (i32.div_u (i32.const 7) (local.get 0))))"""
    )
    assert status == campaign.AGREE, detail


SIMD_STATE = """(module
  (import "host" "add" (func $add (param i32 i32) (result i32)))
  (global $v (export "v") (mut v128) (v128.const i32x4 1 2 3 4))
  (table (export "t") 2 funcref)
  (elem (i32.const 0) $f)
  (memory (export "m") 1)
  (func $f (export "f") (param v128 i32) (result v128 i64)
    (global.set $v (i16x8.add_sat_s (local.get 0) (global.get $v)))
    (v128.store (i32.const 16) (i8x16.swizzle (local.get 0) (global.get $v)))
    (i32x4.add (local.get 0) (i32x4.splat (call $add (local.get 1) (i32.const 1))))
    (i64x2.extract_lane 1 (local.get 0)))
  (func (export "ref") (result funcref) (ref.func $f)))"""


def test_v128_passes_through_both_engines() -> None:
    """v128 arguments, results, globals and a funcref to a v128 function
    (whose type wasmtime-py cannot reflect on) agree bit for bit."""
    assert _check(SIMD_STATE) == (campaign.AGREE, "")
    plan = differential.make_plan(differential.export_types(wat(SIMD_STATE)), seed=3)
    wide = [a for call in plan.calls for a in call.args if isinstance(a, int) and a >> 64]
    assert wide, "v128 arguments use their upper half"


EXNREF_FUNCREF = """(module
  (type $handler (func (param exnref) (result exnref)))
  (func $f (type $handler) (local.get 0))
  (table (export "t") 1 funcref)
  (elem (i32.const 0) $f)
  (global (export "g") funcref (ref.func $f))
  (func (export "ref") (result funcref) (ref.func $f)))"""


def test_a_funcref_to_an_exnref_function_agrees() -> None:
    """A funcref value (global, table slot, result) whose function's type
    holds exnref: wasmtime names that type through the C API too
    (regression: SIMD and exceptions fuzzed together, seed 18)."""
    assert _check(EXNREF_FUNCREF) == (campaign.AGREE, "")


def test_a_wrong_v128_lane_is_a_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    real = differential.AsyncwasmEngine._call

    async def flip_top_lane(self: differential.AsyncwasmEngine, func: object, args: tuple) -> tuple:
        results = await real(self, func, args)
        return (results[0] ^ (1 << 127), *results[1:]) if len(results) == 2 else results

    monkeypatch.setattr(differential.AsyncwasmEngine, "_call", flip_top_lane)
    status, detail = _check(SIMD_STATE)
    assert status == campaign.DISAGREE and "call 'f'" in detail and "v128" in detail


NAN_PAYLOADS = """(module
  (global (export "g") (mut v128) (v128.const i64x2 0 0))
  (func (export "f") (param v128) (result v128)
    (global.set 0 (f64x2.promote_low_f32x4 (v128.const i32x4 0x7f800001 0xffa00000 0 0)))
    (f32x4.mul (v128.const i32x4 0x7fa00000 0xffc00001 0 0) (local.get 0))))"""


def test_simd_nans_are_compared_behind_a_canonicalization(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec lets engines differ on these NaN bits (and they do); the
    runner canonicalizes them, and only them."""
    assert _check(NAN_PAYLOADS) == (campaign.AGREE, "")
    monkeypatch.setattr(wasmtools, "canonicalize_simd_nans", lambda data: data)
    status, detail = _check(NAN_PAYLOADS)
    assert status == campaign.DISAGREE and "call 'f'" in detail


def test_canonicalization_only_where_smith_left_none() -> None:
    text = wasmtools.to_text(wasmtools.canonicalize_simd_nans(wat(NAN_PAYLOADS)))
    assert text.count("f32x4.eq") == 1 and text.count("f64x2.eq") == 1 and "call 1" in text and "call 2" in text
    assert wasmtools.canonicalize_simd_nans(wat(SIMD_STATE)) == wat(SIMD_STATE)  # no float operation
    modules = (campaign.generate(1, case) for case in range(100))
    data = next(m for m in modules if m is not None and "f32x4.eq" in wasmtools.to_text(m))  # with smith's canonicalizations
    smith_ops = [op for op in wasmtools.to_text(data).split() if op in wasmtools.NAN_OPEN_SIMD]
    rewritten = wasmtools.to_text(wasmtools.canonicalize_simd_nans(data)).split()
    assert sum(op in wasmtools.NAN_OPEN_SIMD for op in rewritten) == len(smith_ops)  # moved, none added or lost
    assert wasmtools.validate(wasmtools.canonicalize_simd_nans(data))[0]


def test_a_wrong_result_is_a_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    real = differential.AsyncwasmEngine._call

    async def off_by_one(self: differential.AsyncwasmEngine, func: object, args: tuple) -> tuple:
        results = await real(self, func, args)
        return tuple(r ^ 1 if isinstance(r, int) else r for r in results)

    monkeypatch.setattr(differential.AsyncwasmEngine, "_call", off_by_one)
    status, detail = _check('(module (func (export "f") (param i32) (result i32) local.get 0))')
    assert status == campaign.DISAGREE and "call 'f'" in detail


def test_a_memory_difference_is_a_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    real = differential.AsyncwasmEngine._state

    def scribble(self: differential.AsyncwasmEngine, instance: object, imported: dict, host: object) -> tuple:
        if instance is not None and "m" in instance.exports:  # type: ignore[attr-defined]
            instance.exports["m"].write(100, b"\x01")  # type: ignore[attr-defined]
        return real(self, instance, imported, host)

    monkeypatch.setattr(differential.AsyncwasmEngine, "_state", scribble)
    status, detail = _check('(module (memory (export "m") 1))')
    assert status == campaign.DISAGREE and "first difference at byte 0x64" in detail


def test_trap_kinds_are_compared() -> None:
    trace = differential.Trace("a", [differential.Step("call", ("trap", "memory"))])
    other = differential.Trace("b", [differential.Step("call", ("trap", "table"))])
    assert "memory" in (differential.compare(trace, other) or "")
    assert set(differential.ASYNCWASM_TRAPS.values()) <= set(differential.WASMTIME_TRAPS.values())


def test_wasmtime_running_out_of_fuel_is_incomparable_not_a_pass() -> None:
    status, detail = _check('(module (func (export "spin") (loop (br 0))))')
    assert status == campaign.INCOMPARABLE, detail


def test_validation_level_is_the_feature_list() -> None:
    """What asyncwasm does not claim is invalid at the fuzzers' level."""
    assert not wasmtools.validate(wat("(module (type (struct)))"))[0]  # GC: not yet
    assert wasmtools.validate(wat("(module (memory 1) (memory 1))"))[0]  # multi-memory
    assert wasmtools.validate(wat("(module (memory i64 1) (table i64 1 funcref))"))[0]  # memory64
    assert wasmtools.validate(wat("(module (global i32 (i32.add (i32.const 1) (i32.const 2))))"))[0]
    assert wasmtools.validate(wat("(module (tag) (func try (throw 0) catch_all end))"))[0]  # legacy form
    assert wasmtools.validate(wat('(module (func (result i32 i64) i32.const 1 i64.const 2))'))[0]
    assert wasmtools.validate(wat('(module (func (result v128) v128.const i64x2 0 0))'))[0]
    relaxed = wat('(module (func (result v128) v128.const i64x2 0 0 v128.const i64x2 0 0 i8x16.relaxed_swizzle))')
    assert not wasmtools.validate(relaxed)[0]
    assert wasmtools.GENERATED == wasmtools.FEATURES and "simd" in wasmtools.FEATURES
    options = wasmtools.smith_options()
    assert options[options.index("--simd-enabled") + 1] == "true"
    assert options[options.index("--relaxed-simd-enabled") + 1] == "false"
    assert options[options.index("--bulk-memory-enabled") + 1] == "true"
    assert options[options.index("--memory64-enabled") + 1] == "true"
    assert int(wasmtools.SMITH_SHAPE["--max-memories"]) > 1  # multi-memory is generated


def test_cases_are_reproducible() -> None:
    assert campaign.entropy(1, 5) == campaign.entropy(1, 5) != campaign.entropy(1, 6)
    assert campaign.damage(1, 5, b"\0asm\1\0\0\0" + bytes(40)) == campaign.damage(1, 5, b"\0asm\1\0\0\0" + bytes(40))
    first = trio.run(campaign.Checker().diff_case, 1, 5)
    again = trio.run(campaign.Checker().diff_case, 1, 5)
    assert (first.module, first.status) == (again.module, again.status)
