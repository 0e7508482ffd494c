"""The public surface is exactly the documented list, and nothing leaks."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

import asyncwasm
from asyncwasm import lowlevel

DOCUMENTED = [
    "Module", "ImportType", "ExportType", "Instance", "Linker", "Limits",
    "WasiConfig", "execute", "Execution", "Statistics",
    "Func", "Memory", "Table", "Global",
    "FuncType", "MemoryType", "TableType", "GlobalType",
    "ValType", "I32", "I64", "F32", "F64", "V128", "FUNCREF", "EXTERNREF",
    "WasmError", "ModuleError", "MalformedError", "ValidationError", "LinkError",
    "Trap", "FuelExhausted", "Exit", "Interrupted", "Frame",
    "__version__",
]  # fmt: skip


def test_all_is_exactly_the_documented_list() -> None:
    assert asyncwasm.__all__ == DOCUMENTED


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_name_resolves(name: str) -> None:
    assert getattr(asyncwasm, name) is not None


def test_star_import_gives_the_documented_names() -> None:
    namespace: dict[str, object] = {}
    exec("from asyncwasm import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(DOCUMENTED)


def test_version_is_a_release_string() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", asyncwasm.__version__)


@pytest.mark.parametrize("name", ["Module", "ImportType", "ExportType", "Instance", "Linker", "Limits", "Execution",
                                  "Statistics"])
def test_python_classes_are_final(name: str) -> None:
    assert getattr(getattr(asyncwasm, name), "__final__", False), f"{name} is not marked @final"


@pytest.mark.parametrize("name", ["Func", "Memory", "Table", "Global"])
def test_engine_classes_cannot_be_subclassed(name: str) -> None:
    base = getattr(asyncwasm, name)
    with pytest.raises(TypeError):
        type("Sub", (base,), {})


def test_value_types_are_the_binary_bytes() -> None:
    assert [int(t) for t in (asyncwasm.I32, asyncwasm.I64, asyncwasm.F32, asyncwasm.F64)] == [0x7F, 0x7E, 0x7D, 0x7C]
    assert (int(asyncwasm.V128), int(asyncwasm.FUNCREF), int(asyncwasm.EXTERNREF)) == (0x7B, 0x70, 0x6F)


def test_error_hierarchy() -> None:
    assert issubclass(asyncwasm.MalformedError, asyncwasm.ModuleError)
    assert issubclass(asyncwasm.ValidationError, asyncwasm.ModuleError)
    assert issubclass(asyncwasm.FuelExhausted, asyncwasm.Trap)
    for name in ("ModuleError", "LinkError", "Trap", "Exit", "Interrupted"):
        assert issubclass(getattr(asyncwasm, name), asyncwasm.WasmError)


def test_lowlevel_surface() -> None:
    assert lowlevel.__all__ == ["Fiber", "Outcome"]
    assert lowlevel.Fiber is asyncwasm._engine.Fiber


def _engine_run_outcomes() -> dict[str, int]:
    header = Path(asyncwasm.__file__).parent / "_engine" / "engine.h"
    text = header.read_text(encoding="utf-8")
    return {name: int(value) for name, value in re.findall(r"\bRUN_([A-Z_]+)\s*=\s*(\d+)", text)}


def test_outcome_mirrors_engine_h_one_to_one() -> None:
    from asyncwasm.lowlevel import Outcome

    outcomes = _engine_run_outcomes()
    assert outcomes, "no RUN_* constants found in engine.h"
    assert {o.name: o.value for o in Outcome} == outcomes


def test_public_types_are_typed() -> None:
    assert (Path(asyncwasm.__file__).parent / "py.typed").is_file()
    hints = typing.get_type_hints(asyncwasm.Module.from_file)
    assert hints["return"] is asyncwasm.Module
