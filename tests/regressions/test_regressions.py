"""Named regressions: one module per bug found, kept forever.

Files are ``issue-<n>-<what>.<kind>``, with a comment (``.wat``) or a line
in ``README.md`` saying what broke:

- ``.wat``: a valid module that once ran differently in asyncwasm. It must
  now give the same trace as wasmtime (every export called, results, traps,
  globals, memories, tables; see tests/fuzz/differential.py), with direct
  calls and in tiny fuel slices under trio.
- ``.valid.wasm`` / ``.invalid.wasm``: a binary that asyncwasm once judged
  wrongly; the suffix is the right verdict (checked against wasm-tools too).

    python -m pytest tests/regressions
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from ..fuzz import campaign, wasmtools
from ..wat import wat

HERE = Path(__file__).resolve().parent
TEXT = sorted(HERE.glob("issue-*.wat"))
BINARY = sorted(HERE.glob("issue-*.valid.wasm")) + sorted(HERE.glob("issue-*.invalid.wasm"))


def test_regressions_are_named_by_issue() -> None:
    stray = [p.name for p in HERE.iterdir() if p.suffix in (".wat", ".wasm") and p not in TEXT + BINARY]
    assert not stray, f"regression files must be issue-<n>-<what>.wat / .valid.wasm / .invalid.wasm: {stray}"
    assert TEXT, "no regression modules found"


@pytest.mark.parametrize("path", TEXT, ids=lambda p: p.name)
def test_runs_like_wasmtime(path: Path) -> None:
    reason = wasmtools.missing_reason()
    if reason:
        pytest.skip(reason)
    data = wat(path.read_text())
    status, detail = trio.run(campaign.Checker().differential, 0, 0, data)
    assert status == campaign.AGREE, detail


@pytest.mark.parametrize("path", BINARY, ids=lambda p: p.name)
def test_validation_verdict(path: Path) -> None:
    import asyncwasm

    data = path.read_bytes()
    valid = path.name.endswith(".valid.wasm")
    if wasmtools.executable() is not None:
        assert wasmtools.validate(data)[0] is valid, "the file's suffix disagrees with wasm-tools"
    if valid:
        asyncwasm.Module(data)
    else:
        with pytest.raises(asyncwasm.ModuleError):
            asyncwasm.Module(data)
