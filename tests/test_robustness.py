"""Damaged modules never crash the engine.

Every valid module of the spec testsuites (2.0 and 3.0), truncated at
random points and with random bytes changed, must either compile or raise
ModuleError; anything else (another exception, a crash) fails. Some of the
damage aims at SIMD instructions: the bytes after an 0xFD prefix
(sub-opcode, memarg, lane index, immediates). Mutants of the SIMD scripts
that still compile are also instantiated and every export run on zero
arguments with a small fuel budget: that may trap or run out of fuel,
nothing else; so are mutants of the 3.0 scripts at the nonGC3 level
(multi-memory, memory64, exceptions, tail calls), whose accesses to other
memories and 64-bit ones take their own instructions. The seed is fixed,
so a failure names a case that reproduces.

The long variant is opt-in:

    python -m pytest -m slow tests/test_robustness.py
"""

from __future__ import annotations

import random
from typing import Optional
from pathlib import Path

import pytest

from asyncwasm import Func, Limits, LinkError, Module, ModuleError, Trap, ValType, WasmException

from .spec import harness

SEED = 20240531


def _simd_damage(rng: random.Random, data: bytes) -> Optional[tuple[str, bytes]]:
    """``data`` with one of the four bytes after an 0xFD byte changed (the
    sub-opcode or an immediate of a SIMD instruction), or None without 0xFD."""
    sites = [i for i, b in enumerate(data) if b == 0xFD and i >= 8]
    if not sites:
        return None
    at = rng.choice(sites) + rng.randint(1, 4)
    if at >= len(data):
        return None
    value = rng.choice((0x00, 0x0C, 0x0D, 0x0F, 0x1F, 0x20, 0x7F, 0x80, 0xFF, rng.randrange(256)))
    mutated = bytearray(data)
    mutated[at] = value
    return f"simd {at}={value:#04x}", bytes(mutated)


def _damaged(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One damaged copy of ``data`` and a description of the damage."""
    choice = rng.random()
    if 0.3 <= choice < 0.5 and (simd := _simd_damage(rng, data)):
        return simd
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


def _zero(t: ValType) -> object:
    return None if t in (ValType.FUNCREF, ValType.EXTERNREF) else 0


def _run_exports(module: Module) -> None:
    """Instantiate against the spectest host and call every exported
    function on zeros; traps (fuel included), uncaught Wasm exceptions and
    link errors are fine."""
    try:
        instance = harness.make_linker().instantiate(module, limits=Limits(fuel=20_000))
    except (LinkError, Trap):
        return
    for export in instance.exports.values():
        if isinstance(export, Func):
            try:
                export(*(_zero(t) for t in export.type.params))
            except (Trap, WasmException):
                pass


def _is_non_gc_3_0(path: Path) -> bool:
    """A module of a 3.0 script at the nonGC3 level (3.0 features, no GC)."""
    return harness.suite("3.0").level(path.name.split(".")[0]) == "nonGC3" and path.name.endswith(".wasm")


def _fuzz(cases: int, seed: int, only_simd: bool = False, only_3_0: bool = False) -> list[str]:
    paths = harness.valid_module_paths() + harness.valid_module_paths("3.0")
    if only_simd:
        paths = [p for p in paths if p.name.startswith("simd_")]
    if only_3_0:
        three = set(harness.valid_module_paths("3.0"))
        paths = [p for p in paths if p in three and _is_non_gc_3_0(p)]
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
            module = Module(damaged)
            if only_simd or only_3_0:
                _run_exports(module)
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


def test_damaged_simd_modules_compile_and_run_or_fail_cleanly() -> None:
    failures = _fuzz(cases=3000, seed=SEED + 2, only_simd=True)
    assert not failures, "\n".join(failures[:50])


def test_damaged_3_0_modules_compile_and_run_or_fail_cleanly() -> None:
    """Multi-memory and memory64 modules among them: damage to a memory
    index, an offset or a limit must give a ModuleError, a LinkError or a
    trap, never a crash or a read outside a memory."""
    failures = _fuzz(cases=3000, seed=SEED + 4, only_3_0=True)
    assert not failures, "\n".join(failures[:50])


def test_simd_damage_hits_simd_instructions() -> None:
    rng = random.Random(SEED)
    data = bytes(8) + bytes([0x41, 0x00, 0xFD, 0x0F, 0x1A, 0x0B, 0x0B, 0x0B])  # ... i8x16.splat drop end
    hits = {_simd_damage(rng, data)[0].split("=")[0] for _ in range(100)}
    assert hits == {"simd 11", "simd 12", "simd 13", "simd 14"}  # the 4 bytes after 0xFD (at 10)
    assert _simd_damage(rng, bytes(8) + bytes([0x41, 0x00, 0x1A])) is None


@pytest.mark.slow
def test_damaged_modules_soak() -> None:
    """python -m pytest -m slow tests/test_robustness.py"""
    failures = _fuzz(cases=1_000_000, seed=SEED + 1)
    failures += _fuzz(cases=200_000, seed=SEED + 3, only_simd=True)
    failures += _fuzz(cases=200_000, seed=SEED + 5, only_3_0=True)
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
