"""Which Wasm 3.0 features a Module may use: extended constant expressions
and table initializers run; GC, typed function references, memory64 and
multi-memory are refused with a ValidationError that names the feature
("... is not supported yet") and the byte offset."""

from __future__ import annotations

import pytest

from asyncwasm import FUNCREF, Func, Linker, MalformedError, Module, ModuleError, ValidationError

from .wat import HEADER, section, wat

EXTENDED = """
(module
  (memory (export "memory") 1)
  (global $base (export "base") i32 (i32.const 1024))
  (global $end (export "end") i32 (i32.add (global.get $base) (i32.mul (i32.const 4) (i32.const 16))))
  (global $wrap (export "wrap") i64 (i64.sub (i64.const 0) (i64.mul (i64.const 3) (i64.const 5))))
  (global $max (export "max") i32 (i32.add (i32.const 0x7fffffff) (i32.const 1)))
  (table $t (export "table") 4 funcref)
  (data (i32.sub (global.get $end) (i32.const 2)) "hi")
  (elem (i32.add (i32.const 1) (i32.const 2)) $f)
  (func $f (export "f") (result i32) (i32.const 7))
)
"""


def test_extended_constants_in_globals_and_segment_offsets() -> None:
    instance = Linker().instantiate(Module(wat(EXTENDED)))
    e = instance.exports
    assert (e["base"].value, e["end"].value, e["wrap"].value, e["max"].value) == (1024, 1088, -15, -(2**31))
    assert e["memory"].read(1086, 2) == b"hi"
    assert e["table"].get(3) is e["f"] and e["table"].get(2) is None


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("(global i32 (i32.add (i32.const 1)))", "type mismatch"),
        ("(global i32 (i32.const 1) (i32.const 2))", "type mismatch"),
        ("(global i64 (i32.add (i32.const 1) (i32.const 2)))", "type mismatch"),
        ("(global i32 (i32.div_s (i32.const 1) (i32.const 2)))", "constant expression required"),
        ("(global i32 (global.get 1)) (global i32 (i32.const 0))", "unknown global"),
        ("(global $g (mut i32) (i32.const 0)) (global i32 (global.get $g))", "constant expression required"),
    ],
)
def test_invalid_constant_expressions(text: str, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        Module(wat(f"(module {text})"))
    assert info.value.rule.startswith(rule)


def test_table_initializer_expression() -> None:
    module = Module(wat("(module (table (export \"t\") 3 funcref (ref.func $f)) (func $f (export \"f\")))"))
    instance = Linker().instantiate(module)
    table = instance.exports["t"]
    assert table.type.element == FUNCREF
    assert all(table.get(i) is instance.exports["f"] for i in range(3))
    assert isinstance(instance.exports["f"], Func)


@pytest.mark.parametrize(
    ("text", "feature"),
    [
        ("(module (type (struct (field i32))))", "GC"),
        ("(module (func (result anyref) (ref.null any)))", "GC"),
        ("(module (type $t (func)) (func (param (ref $t))))", "typed function references"),
        ("(module (type $t (func)) (func (param (ref null $t))))", "typed function references"),
        ("(module (type $t (func)) (func (param funcref) (call_ref $t (local.get 0))))", "typed function references"),
        (
            "(module (func (drop (i8x16.relaxed_swizzle (v128.const i64x2 0 0) (v128.const i64x2 0 0)))))",
            "relaxed SIMD",
        ),
    ],
)
def test_features_not_supported_yet_are_named(text: str, feature: str) -> None:
    with pytest.raises(ModuleError) as info:
        Module(wat(text))
    assert isinstance(info.value, ValidationError)
    assert info.value.rule.startswith(f"{feature} is not supported yet"), info.value.rule
    assert info.value.offset > 8 and f"at offset {info.value.offset:#x}" in str(info.value)


def test_wasm3_features_are_supported() -> None:
    Module(wat("(module (memory 1) (memory 1))"))
    Module(wat("(module (memory i64 1) (table i64 1 funcref))"))
    Module(wat("(module (tag $e) (func (try_table (catch_all 0) (throw $e))))"))
    Module(wat("(module (func $f (return_call $f)))"))
    Module(wat("(module (tag $e) (func try catch $e catch_all end))"))


@pytest.mark.parametrize(
    ("types", "error"),
    [
        (bytes([0x01, 0x50, 0x00, 0x4E, 0x00]), MalformedError),  # rec inside sub
        (bytes([0x01, 0x4E, 0x01, 0x4E, 0x00]), MalformedError),  # rec inside rec
        (bytes([0x01, 0x5E, 0x78, 0x02]), MalformedError),  # array field with bad mutability
        (bytes([0x01, 0x5F, 0x01, 0x7F, 0x01]), ValidationError),  # a well-formed struct: GC
    ],
)
def test_gc_types_are_read_then_refused(types: bytes, error: type) -> None:
    """GC's type forms are decoded (so malformed ones are called malformed),
    then refused as not supported."""
    with pytest.raises(error) as info:
        Module(HEADER + section(1, types))
    assert (error is MalformedError) != info.value.rule.startswith("GC is not supported yet")
