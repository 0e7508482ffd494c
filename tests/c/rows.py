"""What the interpreter-row tests in tests/c share: opcodes.def's text (the
rows each test finds and must see in compiled code), row names as Wasm
text, and a run stopped and resumed at every slice of fuel."""

from __future__ import annotations

from pathlib import Path

import asyncwasm._engine as E
from asyncwasm.execution import Outcome

OPCODES = (Path(__file__).resolve().parents[2] / "asyncwasm" / "_engine" / "opcodes.def").read_text()


def mnemonic(row: str) -> str:
    """opcodes.def row name -> Wasm text: I32_SHR_U -> i32.shr_u."""
    ty, op = row.split("_", 1)
    return f"{ty.lower()}.{op.lower()}"


def u(x: int, bits: int) -> int:
    """x as an unsigned value of `bits` bits (how results are compared)."""
    return x & ((1 << bits) - 1)


def sliced(func, args: tuple, fuel: int) -> tuple:
    """(results, fuel used) of func(*args) run on a fiber in slices of
    `fuel` (or more, where an instruction needs more at once)."""
    fiber = E.Fiber(func, args)
    slice_fuel = fuel
    while (outcome := fiber.run(slice_fuel)) == Outcome.OUT_OF_FUEL:
        slice_fuel = max(fuel, fiber.fuel_needed)
    assert outcome == Outcome.DONE
    return fiber.results, fiber.fuel_used
