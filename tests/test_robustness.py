"""Damaged modules never crash the engine.

Every valid non-SIMD module of the spec testsuites (2.0 and 3.0), truncated
at random points and with random bytes changed, must either compile or
raise ModuleError;
anything else (another exception, a crash) fails. The seed is fixed, so a
failure names a case that reproduces.

The long variant is opt-in:

    python -m pytest -m slow tests/test_robustness.py
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from asyncwasm import Module, ModuleError

from .spec import harness

SEED = 20240531


def _damaged(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One damaged copy of ``data`` and a description of the damage."""
    choice = rng.random()
    if choice < 0.3 or len(data) <= 8:
        cut = rng.randrange(0, len(data))
        return f"truncated at {cut}", data[:cut]
    mutated = bytearray(data)
    edits = []
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        at = rng.randrange(8, len(mutated))  # keep the header: reach the sections
        value = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        mutated[at] = value
        edits.append(f"{at}={value:#04x}")
    if choice > 0.9:
        cut = rng.randrange(8, len(mutated))
        edits.append(f"truncated at {cut}")
        del mutated[cut:]
    return "mutated " + " ".join(edits), bytes(mutated)


def _fuzz(cases: int, seed: int) -> list[str]:
    paths = harness.valid_module_paths() + harness.valid_module_paths("3.0")
    if not paths:
        pytest.skip(harness.missing_reason() or "no valid modules in the spec suite")
    modules: dict[Path, bytes] = {}
    rng = random.Random(seed)
    failures = []
    for case in range(cases):
        path = rng.choice(paths)
        data = modules.get(path)
        if data is None:
            data = modules[path] = path.read_bytes()
        damage, damaged = _damaged(rng, data)
        try:
            Module(damaged)
        except ModuleError:
            pass
        except Exception as e:  # noqa: BLE001 - the point is that nothing else escapes
            failures.append(f"case {case}: {path.name} {damage}: {type(e).__name__}: {e}")
    return failures


def test_damaged_modules_compile_or_raise_module_error() -> None:
    failures = _fuzz(cases=5000, seed=SEED)
    assert not failures, "\n".join(failures[:50])


def test_every_valid_3_0_module_compiles_or_names_a_missing_feature() -> None:
    """The 3.0 suite's valid modules compile, or are refused only as not
    supported yet (GC, memory64, ...), never as malformed or invalid."""
    paths = harness.valid_module_paths("3.0")
    if not paths:
        pytest.skip(harness.suite("3.0").missing_reason() or "no valid modules in the 3.0 suite")
    failures = []
    for path in paths:
        try:
            Module.from_file(path)
        except ModuleError as e:
            if harness.unsupported_feature(e.rule) is None:
                failures.append(f"{path.name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures[:50])


@pytest.mark.slow
def test_damaged_modules_soak() -> None:
    """python -m pytest -m slow tests/test_robustness.py"""
    failures = _fuzz(cases=1_000_000, seed=SEED + 1)
    assert not failures, "\n".join(failures[:50])


def test_every_valid_module_compiles_intact() -> None:
    """The control for the fuzz test: undamaged, every module compiles."""
    paths = harness.valid_module_paths()
    if not paths:
        pytest.skip(harness.missing_reason() or "no valid modules in the spec suite")
    failures = []
    for path in paths:
        try:
            Module.from_file(path)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{path.name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures[:50])
