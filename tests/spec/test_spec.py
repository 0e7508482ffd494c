"""The spec testsuites under pytest: one test per script and mode.

    python -m pytest tests/spec                       # everything (2.0 and 3.0)
    python -m pytest tests/spec -k "i32.wast"         # one script, both suites and modes
    python -m tests.spec.harness i32.wast:118         # one line, with details
    python -m tests.spec.harness --suite 3.0 throw    # a 3.0 script

See harness.py for the rules. A failing test lists every failing command as
``<file>.wast:<line> <command>: detail``; message mismatches (right error
class, different text) are printed, not failed.
"""

from __future__ import annotations

import pytest

from . import harness

_MISSING = harness.missing_reason()
_SCRIPTS = [f"{s}.wast" for s in harness.script_names()] or ["spec-suite-missing"]
_SUITE3 = harness.suite("3.0")
_MISSING3 = _SUITE3.missing_reason()
_SCRIPTS3 = [f"{s}.wast" for s in _SUITE3.script_names()] or ["spec-suite-3.0-missing"]

#: What the engine refuses as not supported yet, by scope.json level: a file
#: may skip commands only for these (wasm2-nosimd files for none at all).
_NOT_YET = {
    "wasm2-nosimd": set(),
    "wasm2": set(),
    "nonGC3": set(),
    "wasm3": {"GC", "typed function references", "relaxed SIMD"},
}


@pytest.mark.parametrize("mode", harness.MODES)
@pytest.mark.parametrize("script", _SCRIPTS)
def test_spec_script(script: str, mode: str) -> None:
    if _MISSING:
        pytest.skip(_MISSING)
    name = script[: -len(".wast")]
    reason = harness.skip_reason(name)
    if reason:
        pytest.skip(f"{script}: {reason}")
    report = harness.run_script(name, mode)
    for r in report.message_mismatches:
        print(f"{r.where}: message mismatch: {r.message_mismatch}")
    assert not report.failures, f"{len(report.failures)} failing commands in {script} ({mode}):\n" + report.failure_text()
    assert report.results, f"{script} ran no commands"


@pytest.mark.parametrize("mode", harness.MODES)
@pytest.mark.parametrize("script", _SCRIPTS3)
def test_spec3_script(script: str, mode: str) -> None:
    """The 3.0 suite: no command fails, and what is skipped is skipped only
    for a feature the engine does not have yet, as the file's level allows."""
    if _MISSING3:
        pytest.skip(_MISSING3)
    name = script[: -len(".wast")]
    report = harness.run_script(name, mode, suite_name="3.0")
    for r in report.message_mismatches:
        print(f"{r.where}: message mismatch: {r.message_mismatch}")
    assert not report.failures, f"{len(report.failures)} failing commands in {script} ({mode}):\n" + report.failure_text()
    level = _SUITE3.level(name) or "wasm3"
    skipped = harness.skipped_features(report)
    assert set(skipped) <= _NOT_YET[level], f"{script} ({level}) skips commands for {dict(skipped)}"
    others = [r for r in report.results if r.status == harness.SKIP and not harness.unsupported_feature(r.detail)]
    assert all(r.detail == harness.TEXT_FORMAT_REASON for r in others), [str(r) for r in others[:5]]


def test_3_0_features_run_in_both_modes() -> None:
    """The exception, tail-call, multi-memory and memory64 scripts run every
    command, and the sliced mode stops and resumes inside them (throws,
    catches, tail calls, accesses to other memories and 64-bit ones)."""
    if _MISSING3:
        pytest.skip(_MISSING3)
    for name in ("throw", "throw_ref", "return_call", "try_table", "address64", "memory_copy1", "load2",
                 "table_copy64"):
        report = harness.run_script(name, "sliced", suite_name="3.0")
        assert not report.failures
        assert report.slices.runs > report.slices.calls, name


def test_sliced_mode_really_suspends() -> None:
    """The sliced mode is only a test if fibers do stop and resume: in a
    script with loops and recursion, most runs must end out of fuel."""
    if _MISSING:
        pytest.skip(_MISSING)
    report = harness.run_script("fac", "sliced")
    assert not report.failures
    assert report.slices.calls > 0
    assert report.slices.runs > 20 * report.slices.calls


@pytest.mark.parametrize(
    ("bits", "width", "canonical", "arithmetic"),
    [
        (0x7FC00000, 32, True, True),
        (0xFFC00000, 32, True, True),  # sign is free
        (0x7FC00001, 32, False, True),  # payload: arithmetic only
        (0x7F800001, 32, False, False),  # signalling NaN
        (0x7F800000, 32, False, False),  # infinity
        (0x3F800000, 32, False, False),  # 1.0
        (0x7FF8000000000000, 64, True, True),
        (0xFFF8000000000001, 64, False, True),
        (0x7FF0000000000001, 64, False, False),
    ],
)
def test_nan_patterns(bits: int, width: int, canonical: bool, arithmetic: bool) -> None:
    assert harness.is_canonical_nan(bits, width) is canonical
    assert harness.is_arithmetic_nan(bits, width) is arithmetic


def test_value_comparison_is_exact() -> None:
    values = harness.Values()
    i32 = {"type": "i32", "value": "4294967295"}
    assert values.mismatch(i32, 0xFFFFFFFF) is None
    assert values.mismatch(i32, 0xFFFFFFFE) is not None
    assert values.mismatch(i32, -1) is not None  # raw results are unsigned bit patterns
    ref = {"type": "externref", "value": "3"}
    assert values.mismatch(ref, values.to_raw(ref)) is None
    assert values.mismatch(ref, harness.HostRef(3)) is not None  # identity, not equality
    assert values.mismatch({"type": "externref", "value": "null"}, None) is None
    v128 = {"type": "v128", "lane_type": "i32", "value": ["1", "2", "3", "4"]}
    assert values.mismatch(v128, values.to_raw(v128)) is None
    assert values.to_raw(v128) == 1 | 2 << 32 | 3 << 64 | 4 << 96
