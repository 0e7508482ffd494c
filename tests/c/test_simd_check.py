"""The SSE2 and portable forms of every SIMD operation agree bit for bit.

ops_simd.h gives most operations two implementations; the one compiled in
depends on the machine and on -DASYNCWASM_NO_SIMD_INTRINSICS. This builds
tests/c/simd_check.c both ways and compares the digests it prints, one per
instruction, over thousands of inputs rich in edge values (NaN payloads,
signalling NaNs, saturation limits, rounding halves). A difference names the
instruction; ``simd_check -v NAME`` then lists every input and result.

    python -m pytest tests/c/test_simd_check.py -q
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "asyncwasm" / "_engine"
NO_INTRINSICS = "-DASYNCWASM_NO_SIMD_INTRINSICS"


def _build_and_run(tmp_path: Path, *defines: str) -> list[str]:
    exe = tmp_path / ("simd_check" + "".join(d.replace("-D", "_") for d in defines))
    cmd = [
        "gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", *defines,
        "-I", str(ENGINE), "-I", sysconfig.get_paths()["include"],
        str(ROOT / "tests" / "c" / "simd_check.c"), "-lm", "-o", str(exe),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=120)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=120).stdout
    return out.splitlines()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_intrinsics_and_portable_forms_agree(tmp_path: Path) -> None:
    with_intrinsics = _build_and_run(tmp_path)
    portable = _build_and_run(tmp_path, NO_INTRINSICS)
    simd_def = (ENGINE / "opcodes_simd.def").read_text()
    # every row but v128.const and v128.store, which are plain moves
    rows = re.findall(r'^SIMD_(?:OP|LANE_OP|TERNARY|LOAD|LOAD_LANE|STORE_LANE|SHUFFLE)\(\w+,\s*\w+,\s*"([^"]+)"', simd_def, re.M)
    assert [line.split()[0] for line in with_intrinsics] == [line.split()[0] for line in portable] == rows
    differ = [a.split()[0] for a, b in zip(with_intrinsics, portable) if a != b]
    assert not differ, f"the SSE2 and portable forms differ for: {', '.join(differ)}"
    digests = [line.split()[1] for line in portable]
    assert len(set(digests)) > len(digests) - 10  # the digests do depend on the results
