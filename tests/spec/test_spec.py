"""The spec testsuite under pytest: one test per script and mode.

    python -m pytest tests/spec                       # everything
    python -m pytest tests/spec -k "i32.wast"         # one script, both modes
    python -m tests.spec.harness i32.wast:118         # one line, with details

See harness.py for the rules. A failing test lists every failing command as
``<file>.wast:<line> <command>: detail``; message mismatches (right error
class, different text) are printed, not failed.
"""

from __future__ import annotations

import pytest

from . import harness

_MISSING = harness.missing_reason()
_SCRIPTS = [f"{s}.wast" for s in harness.script_names()] or ["spec-suite-missing"]


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


def test_sliced_mode_really_suspends() -> None:
    """The sliced mode is only a test if fibers do stop and resume: in a
    script with loops and recursion, most runs must end out of fuel."""
    if _MISSING:
        pytest.skip(_MISSING)
    report = harness.run_script("fac", "sliced")
    assert not report.failures
    assert report.slices.calls > 0
    assert report.slices.runs > 20 * report.slices.calls
