"""Every build variant of the engine passes the spec suite (slow: three builds).

    python -m pytest -m slow tests/test_build_variants.py

scripts/build-variants.sh builds the default engine, the switch-dispatch one
(-DASYNCWASM_PORTABLE_DISPATCH) and the one without SIMD intrinsics
(-DASYNCWASM_NO_SIMD_INTRINSICS) in temporary copies and runs the given tests
against each; run it directly for the wider default test selection.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .spec import harness

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build-variants.sh"


@pytest.mark.slow
def test_every_build_variant_passes_the_spec_suite() -> None:
    if harness.missing_reason():
        pytest.skip(harness.missing_reason())
    proc = subprocess.run([str(SCRIPT), "--", "tests/spec", "tests/c/test_simd_check.py"],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "passed: default portable no-intrinsics" in proc.stderr
