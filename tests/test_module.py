"""asyncwasm.Module: compiling, introspection, errors, immutability."""

from __future__ import annotations

import trio
import pytest

import asyncwasm
from asyncwasm import (
    EXTERNREF,
    F32,
    F64,
    FUNCREF,
    I32,
    I64,
    ExportType,
    FuncType,
    GlobalType,
    ImportType,
    MalformedError,
    MemoryType,
    Module,
    ModuleError,
    TableType,
    ValidationError,
)

from .wat import HEADER, custom_section, wat

IMPORTS_WAT = """
(module
  (import "env" "f" (func (param i32 i64) (result f32)))
  (import "env" "t" (table 2 10 funcref))
  (import "env" "g" (global (mut f64)))
  (import "other" "e" (global externref))
  (func (export "run") (param externref) (result i32 i64) i32.const 1 i64.const 2)
  (table (export "tab") 3 externref)
  (memory (export "mem") 2 5)
  (global (export "glob") i32 (i32.const 7))
)
"""


def test_imports_in_order_with_types() -> None:
    module = Module(wat(IMPORTS_WAT))
    assert module.imports == [
        ImportType("env", "f", FuncType([I32, I64], [F32])),
        ImportType("env", "t", TableType(FUNCREF, 2, 10)),
        ImportType("env", "g", GlobalType(F64, mutable=True)),
        ImportType("other", "e", GlobalType(EXTERNREF)),
    ]
    assert str(module.imports[0]) == "env.f: func [i32 i64] -> [f32]"


def test_exports_in_order_with_types() -> None:
    module = Module(wat(IMPORTS_WAT))
    assert module.exports == [
        ExportType("run", FuncType([EXTERNREF], [I32, I64])),
        ExportType("tab", TableType(EXTERNREF, 3)),
        ExportType("mem", MemoryType(2, 5)),
        ExportType("glob", GlobalType(I32)),
    ]


def test_import_and_export_types_are_frozen() -> None:
    imp = Module(wat(IMPORTS_WAT)).imports[0]
    with pytest.raises(AttributeError):
        imp.name = "other"  # type: ignore[misc]
    assert hash(imp) == hash(ImportType("env", "f", FuncType([I32, I64], [F32])))


@pytest.mark.parametrize("data_type", [bytes, bytearray, memoryview])
def test_accepts_any_bytes_like(data_type: type) -> None:
    module = Module(data_type(wat('(module (func (export "f")))')))
    assert [e.name for e in module.exports] == ["f"]


@pytest.mark.parametrize("bad", ["(module)", 42, None, [0, 97, 115, 109]])
def test_rejects_non_bytes(bad: object) -> None:
    with pytest.raises(TypeError):
        Module(bad)  # type: ignore[arg-type]


def test_from_file(tmp_path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(wat('(module (func (export "hello")))'))
    assert Module.from_file(path).exports == [ExportType("hello", FuncType())]
    assert Module.from_file(str(path)).exports == [ExportType("hello", FuncType())]


def test_from_file_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        Module.from_file(tmp_path / "absent.wasm")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('(module (func (export "_start")))', "command"),
        ('(module (func (export "_initialize")))', "reactor"),
        ('(module (func (export "_start")) (func (export "_initialize")))', "command"),
        ('(module (func (export "main")))', "library"),
        ('(module (global (export "_start") i32 (i32.const 0)))', "library"),
        ("(module)", "library"),
    ],
)
def test_kind(text: str, kind: str) -> None:
    assert Module(wat(text)).kind == kind


def test_custom_sections_by_name_in_order() -> None:
    data = wat("(module)") + custom_section("meta", b"one") + custom_section("other", b"") + custom_section("meta", b"two")
    module = Module(data)
    assert module.custom_sections("meta") == [b"one", b"two"]
    assert module.custom_sections("other") == [b""]
    assert module.custom_sections("absent") == []
    assert module.custom_section_names() == ["meta", "other", "meta"]


def test_empty_module() -> None:
    module = Module(HEADER)
    assert module.imports == [] and module.exports == [] and module.kind == "library"
    assert module.start is None


def test_start_index() -> None:
    module = Module(wat("(module (func $a) (func $b) (start $b))"))
    assert module.start == 1


def test_bad_magic_is_malformed_at_offset_0() -> None:
    with pytest.raises(MalformedError) as info:
        Module(b"\x00asn\x01\x00\x00\x00")
    err = info.value
    assert err.offset == 0
    assert err.rule.startswith("magic header not detected")
    assert "offset 0x0" in str(err)
    assert isinstance(err, ModuleError) and isinstance(err, asyncwasm.WasmError)


def test_truncated_module_names_its_offset() -> None:
    data = wat('(module (func (export "f") (result i32) i32.const 1))')
    with pytest.raises(MalformedError) as info:
        Module(data[:-3])
    assert 8 <= info.value.offset <= len(data)
    assert f"offset {info.value.offset:#x}" in str(info.value)


def test_type_error_is_validation_error_in_function() -> None:
    # Function 1 (after one import) returns an i64 where i32 is declared.
    data = wat('(module (import "m" "f" (func)) (func (result i32) i64.const 1))')
    with pytest.raises(ValidationError) as info:
        Module(data)
    err = info.value
    assert err.rule.startswith("type mismatch")
    assert err.func == 1
    assert "(function 1)" in str(err)
    assert 0 < err.offset < len(data)


def test_module_is_immutable() -> None:
    module = Module(wat('(module (func (export "f")))'))
    with pytest.raises(AttributeError):
        module.kind = "command"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        module.anything = 1  # type: ignore[attr-defined]
    module.exports.clear()  # a copy: the module's own list is untouched
    assert [e.name for e in module.exports] == ["f"]


def test_repr() -> None:
    module = Module(wat('(module $demo (func (export "_start")))'))
    assert repr(module) == "<asyncwasm.Module 'demo' command: 0 imports, 1 exports>"
    assert module.name == "demo"


async def test_one_module_shared_by_many_tasks() -> None:
    module = Module(
        wat(
            """(module
                 (global $counter (mut i32) (i32.const 0))
                 (func (export "bump") (result i32)
                   (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
                   (global.get $counter)))"""
        )
    )
    results: dict[int, list[int]] = {}

    async def use(task: int) -> None:
        instance = asyncwasm.Instance(module)
        bump = instance.exports["bump"]
        seen = []
        for _ in range(task + 1):
            seen.append(bump())
            await trio.sleep(0)
        results[task] = seen

    async with trio.open_nursery() as nursery:
        for task in range(4):
            nursery.start_soon(use, task)
    # Each instance has its own global, though all share one Module.
    assert results == {t: list(range(1, t + 2)) for t in range(4)}


def test_imported_memory_type() -> None:
    module = Module(wat('(module (import "env" "m" (memory 1 3)) (export "m2" (memory 0)))'))
    assert module.imports == [ImportType("env", "m", MemoryType(1, 3))]
    assert module.exports == [ExportType("m2", MemoryType(1, 3))]
