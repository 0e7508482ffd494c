"""The exception reference types exception handling brings without GC,
and the reference subtyping they need wherever a type is matched:
nullexnref (``(ref null noexn)``, exnref's bottom, whose only value is
null), ``(ref exn)`` (never null: what catch_ref produces) and
``(ref noexn)`` (no value); (ref noexn) <: (ref exn) <: exnref and
(ref noexn) <: nullexnref <: exnref.

Validation: every module below is checked twice, against the expectation
written next to it and against ``wasm-tools validate`` at asyncwasm's
feature level (tests/fuzz/wasmtools.FEATURES), so the list is also the
differential check with the reference validator. Runtime: Python sees a
null as None and a (ref exn) as its WasmException; globals, tables,
function results and parameters of these types, import matching, and a
comparison with wasmtime through the fuzzers' differential runner.
"""

from __future__ import annotations

import pytest
import trio

import asyncwasm
from asyncwasm import (
    _engine,
    EXNREF,
    NULLEXNREF,
    Func,
    FuncType,
    Global,
    GlobalType,
    LinkError,
    Linker,
    Module,
    Table,
    TableType,
    Tag,
    Trap,
    ValidationError,
    ValType,
    WasmException,
)

from .fuzz import campaign, differential, wasmtools
from .wat import wat

# (name, module, valid at asyncwasm's level). "sub" cases put a nullexnref
# where an exnref is expected (valid); "bad" ones the other way round.
CASES = [
    # the type itself, in every place a type is written
    ("param", "(module (func (param nullexnref)))", True),
    ("param long form", "(module (func (param (ref null noexn))))", True),
    ("local", "(module (func (local nullexnref)))", True),
    ("table", "(module (table 1 nullexnref))", True),
    ("block type", "(module (func (result nullexnref) (block (result nullexnref) (ref.null noexn))))", True),
    ("ref.null noexn", "(module (func (result nullexnref) ref.null noexn))", True),
    ("tag param", "(module (tag (param nullexnref)))", True),
    ("import func", '(module (import "a" "b" (func (param nullexnref) (result nullexnref))))', True),
    # operands and results
    ("ref.null noexn as exnref", "(module (func (result exnref) ref.null noexn))", True),
    ("ref.null exn as nullexnref", "(module (func (result nullexnref) ref.null exn))", False),
    ("return sub", "(module (func (param nullexnref) (result exnref) (local.get 0)))", True),
    ("call sub", "(module (func $f (param exnref)) (func (param nullexnref) (call $f (local.get 0))))", True),
    ("call bad", "(module (func $f (param nullexnref)) (func (param exnref) (call $f (local.get 0))))", False),
    ("local.set sub", "(module (func (param nullexnref) (local exnref) (local.set 1 (local.get 0))))", True),
    ("local.set bad", "(module (func (param exnref) (local nullexnref) (local.set 1 (local.get 0))))", False),
    ("ref.is_null", "(module (func (param nullexnref) (result i32) (ref.is_null (local.get 0))))", True),
    ("throw_ref", "(module (func (param nullexnref) (throw_ref (local.get 0))))", True),
    ("throw sub", "(module (tag $t (param exnref)) (func (param nullexnref) (throw $t (local.get 0))))", True),
    ("throw bad", "(module (tag $t (param nullexnref)) (func (param exnref) (throw $t (local.get 0))))", False),
    # blocks and branches
    ("block sub", "(module (func (result exnref) (block (result exnref) (ref.null noexn))))", True),
    ("block bad", "(module (func (result nullexnref) (block (result nullexnref) (ref.null exn))))", False),
    (
        "loop param sub",
        "(module (type $t (func (param exnref))) (func (param nullexnref) (local.get 0) (loop (type $t) (drop))))",
        True,
    ),
    (
        "loop branch bad",
        "(module (type $t (func (param nullexnref))) (func (param nullexnref)"
        " (local.get 0) (loop (type $t) (drop) (ref.null exn) (br 0))))",
        False,
    ),
    (
        "if sub",
        "(module (func (param nullexnref) (result exnref)"
        " (if (result exnref) (i32.const 1) (then (local.get 0)) (else (ref.null exn)))))",
        True,
    ),
    (
        "if without else sub",
        "(module (type $t (func (param nullexnref) (result exnref))) (func (param nullexnref) (result exnref)"
        " (local.get 0) (if (type $t) (i32.const 1) (then))))",
        True,
    ),
    (
        "if without else bad",
        "(module (type $t (func (param exnref) (result nullexnref))) (func (param exnref) (result nullexnref)"
        " (local.get 0) (if (type $t) (i32.const 1) (then))))",
        False,
    ),
    ("br sub", "(module (func (param nullexnref) (result exnref) (block (result exnref) (br 0 (local.get 0)))))", True),
    (
        "br_if sub",
        "(module (func (param nullexnref) (result exnref) (block (result exnref) (br_if 0 (local.get 0) (i32.const 1)))))",
        True,
    ),
    (
        "br_if leaves the label's type",
        "(module (func (param nullexnref) (result nullexnref)"
        " (block (result exnref) (br_if 0 (local.get 0) (i32.const 1)) (return)) (drop) (ref.null noexn)))",
        False,
    ),
    (
        "br_table mixed labels",
        "(module (func (param nullexnref) (result exnref) (block $a (result exnref)"
        " (block $b (result nullexnref) (br_table $a $b (local.get 0) (i32.const 1))))))",
        True,
    ),
    (
        "br_table bad",
        "(module (func (param exnref) (result exnref) (block $a (result exnref)"
        " (block $b (result nullexnref) (br_table $a $b (local.get 0) (i32.const 1))) (unreachable))))",
        False,
    ),
    (
        "br_table unreachable",
        "(module (func (result exnref) (block $a (result exnref)"
        " (block $b (result nullexnref) (unreachable) (br_table $a $b (i32.const 1))) (unreachable))))",
        True,
    ),
    ("return_call sub", "(module (func $f (result nullexnref) ref.null noexn) (func (result exnref) (return_call $f)))", True),
    ("return_call bad", "(module (func $f (result exnref) ref.null noexn) (func (result nullexnref) (return_call $f)))", False),
    (
        "call_indirect exact type",
        "(module (type $t (func (param nullexnref))) (table 1 funcref)"
        " (func (param exnref) (call_indirect (type $t) (local.get 0) (i32.const 0))))",
        False,
    ),
    # exceptions: a catch's payload goes to its label like a branch
    (
        "catch sub",
        "(module (tag $t (param nullexnref)) (func (result exnref)"
        " (block $l (result exnref) (try_table (catch $t $l) (nop)) (ref.null exn))))",
        True,
    ),
    (
        "catch bad",
        "(module (tag $t (param exnref)) (func (result nullexnref)"
        " (block $l (result nullexnref) (try_table (catch $t $l) (nop)) (ref.null noexn))))",
        False,
    ),
    (
        "catch_ref payload sub",
        "(module (tag $t (param nullexnref)) (func (result nullexnref exnref)"
        " (block $l (result nullexnref exnref) (try_table (catch_ref $t $l) (nop)) (unreachable))))",
        True,
    ),
    (
        "catch_all_ref into nullexnref",
        "(module (tag $t) (func (result nullexnref)"
        " (block $l (result nullexnref) (try_table (catch_all_ref $l) (throw $t)) (unreachable))))",
        False,
    ),
    (
        "legacy catch sub",
        "(module (tag $t (param nullexnref)) (func (result exnref) try (result exnref) ref.null noexn catch $t end))",
        True,
    ),
    (
        "legacy catch bad",
        "(module (tag $t (param exnref)) (func (result nullexnref) try (result nullexnref) ref.null noexn catch $t end))",
        False,
    ),
    # select
    (
        "typed select sub",
        "(module (func (param nullexnref exnref) (result exnref)"
        " (select (result exnref) (local.get 0) (local.get 1) (i32.const 0))))",
        True,
    ),
    (
        "typed select bad",
        "(module (func (param nullexnref exnref) (result nullexnref)"
        " (select (result nullexnref) (local.get 0) (local.get 1) (i32.const 0))))",
        False,
    ),
    (
        "untyped select",
        "(module (func (param nullexnref nullexnref) (result nullexnref)"
        " (select (local.get 0) (local.get 1) (i32.const 0))))",
        False,
    ),
    # globals
    ("global", "(module (global nullexnref (ref.null noexn)))", True),
    ("global init sub", "(module (global exnref (ref.null noexn)))", True),
    ("global init bad", "(module (global nullexnref (ref.null exn)))", False),
    ("global.get sub", '(module (import "a" "b" (global nullexnref)) (global exnref (global.get 0)))', True),
    ("global.get bad", '(module (import "a" "b" (global exnref)) (global nullexnref (global.get 0)))', False),
    (
        "global.set sub",
        "(module (global $g (mut exnref) (ref.null noexn)) (func (param nullexnref) (global.set $g (local.get 0))))",
        True,
    ),
    (
        "global.set bad",
        "(module (global $g (mut nullexnref) (ref.null noexn)) (func (param exnref) (global.set $g (local.get 0))))",
        False,
    ),
    # tables and element segments
    ("table.set sub", "(module (table 1 exnref) (func (param nullexnref) (table.set 0 (i32.const 0) (local.get 0))))", True),
    ("table.set bad", "(module (table 1 nullexnref) (func (param exnref) (table.set 0 (i32.const 0) (local.get 0))))", False),
    (
        "table.fill sub",
        "(module (table 1 exnref) (func (param nullexnref) (table.fill 0 (i32.const 0) (local.get 0) (i32.const 1))))",
        True,
    ),
    (
        "table.grow sub",
        "(module (table 1 exnref) (func (param nullexnref) (result i32) (table.grow 0 (local.get 0) (i32.const 1))))",
        True,
    ),
    (
        "table.get",
        "(module (table 1 nullexnref) (func (result exnref) (table.get 0 (i32.const 0))))",
        True,
    ),
    (
        "table.copy sub",
        "(module (table 1 exnref) (table 1 nullexnref) (func (table.copy 0 1 (i32.const 0) (i32.const 0) (i32.const 0))))",
        True,
    ),
    (
        "table.copy bad",
        "(module (table 1 exnref) (table 1 nullexnref) (func (table.copy 1 0 (i32.const 0) (i32.const 0) (i32.const 0))))",
        False,
    ),
    (
        "table.init sub",
        "(module (table 1 exnref) (elem $e nullexnref) (func (table.init 0 $e (i32.const 0) (i32.const 0) (i32.const 0))))",
        True,
    ),
    (
        "table.init bad",
        "(module (table 1 nullexnref) (elem $e exnref) (func (table.init 0 $e (i32.const 0) (i32.const 0) (i32.const 0))))",
        False,
    ),
    ("active elem sub", "(module (table 1 exnref) (elem (table 0) (i32.const 0) nullexnref (ref.null noexn)))", True),
    ("elem item sub", "(module (table 1 exnref) (elem (table 0) (i32.const 0) exnref (ref.null noexn)))", True),
    ("elem item bad", "(module (elem nullexnref (ref.null exn)))", False),
    ("elem funcref into nullexnref", "(module (table 2 nullexnref) (elem (table 0) (i32.const 0) funcref (ref.null func)))", False),
    # non-null exception references: (ref exn) (what catch_ref produces) and (ref noexn)
    ("(ref exn) param", "(module (func (param (ref exn))))", True),
    ("(ref noexn) result", "(module (func (result (ref noexn)) (unreachable)))", True),
    ("(ref noexn) <: nullexnref", "(module (func (param (ref noexn)) (result nullexnref) (local.get 0)))", True),
    ("(ref exn) <: exnref", "(module (func (param (ref exn)) (result exnref) (local.get 0)))", True),
    ("exnref is not (ref exn)", "(module (func (param exnref) (result (ref exn)) (local.get 0)))", False),
    ("ref.null noexn is not (ref noexn)", "(module (func (result (ref noexn)) (ref.null noexn)))", False),
    ("ref.is_null (ref exn)", "(module (func (param (ref exn)) (result i32) (ref.is_null (local.get 0))))", True),
    ("throw_ref (ref exn)", "(module (func (param (ref exn)) (throw_ref (local.get 0))))", True),
    (
        "catch_all_ref into (ref exn)",
        "(module (tag $t) (func (result (ref exn))"
        " (block $l (result (ref exn)) (try_table (catch_all_ref $l) (throw $t)) (unreachable))))",
        True,
    ),
    (
        "catch_ref into (ref exn)",
        "(module (tag $t (param i32)) (func (result i32 (ref exn))"
        " (block $l (result i32 (ref exn)) (try_table (catch_ref $t $l) (nop)) (unreachable))))",
        True,
    ),
    (
        "typed select (ref exn)",
        "(module (func (param (ref exn) (ref exn)) (result (ref exn))"
        " (select (result (ref exn)) (local.get 0) (local.get 1) (i32.const 0))))",
        True,
    ),
    ("tag (ref exn)", "(module (tag $t (param (ref exn))) (func (param (ref exn)) (throw $t (local.get 0))))", True),
    ("import global (ref exn)", '(module (import "a" "g" (global (ref exn))) (global (ref exn) (global.get 0)))', True),
    ("import global (ref noexn)", '(module (import "a" "g" (global (ref noexn))) (global nullexnref (global.get 0)))', True),
    ("global (ref exn) from null", "(module (global (ref exn) (ref.null exn)))", False),
    ("import table (ref exn)", '(module (import "a" "t" (table 1 (ref exn))))', True),
    ("table (ref noexn) without initializer", "(module (table 1 (ref noexn)))", False),
    ("elem (ref exn)", '(module (import "a" "g" (global (ref exn))) (elem (ref exn) (global.get 0)))', True),
    ("elem (ref exn) of null", "(module (elem (ref exn) (ref.null exn)))", False),
    (
        "table.grow (ref exn) with null",
        '(module (import "a" "t" (table 1 (ref exn))) (func (result i32) (table.grow 0 (ref.null exn) (i32.const 1))))',
        False,
    ),
    # a (ref exn) local has no default: it must be set, in this block or an enclosing one, before it is read
    ("local unset", "(module (func (local (ref exn)) (drop (local.get 0))))", False),
    ("local unset in dead code", "(module (func (local (ref exn)) unreachable (drop (local.get 0))))", False),
    ("local (ref noexn) unset", "(module (func (local (ref noexn))))", True),
    ("local set", "(module (func (param (ref exn)) (local (ref exn)) (local.set 1 (local.get 0)) (drop (local.get 1))))", True),
    ("local tee", "(module (func (param (ref exn)) (local (ref exn)) (drop (local.tee 1 (local.get 0))) (drop (local.get 1))))", True),
    (
        "local set outside, read inside",
        "(module (func (param (ref exn)) (local (ref exn)) (local.set 1 (local.get 0)) (block (drop (local.get 1)))))",
        True,
    ),
    (
        "local set in then, read in then",
        "(module (func (param (ref exn)) (local (ref exn))"
        " (if (i32.const 1) (then (local.set 1 (local.get 0)) (drop (local.get 1))))))",
        True,
    ),
    (
        "local set in then, read in else",
        "(module (func (param (ref exn)) (local (ref exn))"
        " (if (i32.const 1) (then (local.set 1 (local.get 0))) (else (drop (local.get 1))))))",
        False,
    ),
    (
        "local set in block, read after",
        "(module (func (param (ref exn)) (local (ref exn)) (block (local.set 1 (local.get 0))) (drop (local.get 1))))",
        False,
    ),
    (
        "local set in loop, read after",
        "(module (func (param (ref exn)) (local (ref exn)) (loop (local.set 1 (local.get 0))) (drop (local.get 1))))",
        False,
    ),
    (
        "local set in try_table, read after",
        "(module (func (param (ref exn)) (local (ref exn)) (try_table (local.set 1 (local.get 0))) (drop (local.get 1))))",
        False,
    ),
    (
        "local set in try, read in catch",
        "(module (tag $t) (func (param (ref exn)) (local (ref exn))"
        " try (local.set 1 (local.get 0)) catch $t (drop (local.get 1)) end))",
        False,
    ),
    (
        "local set in try, read after delegate",
        "(module (func (param (ref exn)) (local (ref exn)) try (local.set 1 (local.get 0)) delegate 0 (drop (local.get 1))))",
        False,
    ),
    (
        "local set twice in nested blocks",
        "(module (func (param (ref exn)) (local (ref exn)) (block (local.set 1 (local.get 0))"
        " (block (local.set 1 (local.get 0))) (drop (local.get 1))) (drop (local.get 1))))",
        False,
    ),
    # the other bottom types and non-null references need GC or typed function references
    ("(ref func)", "(module (func (param (ref func))))", False),
    ("(ref extern)", "(module (func (param (ref extern))))", False),
    ("nullfuncref", "(module (table 1 nullfuncref))", False),
    ("nullexternref", "(module (func (result nullexternref) ref.null noextern))", False),
    ("nullref", "(module (table 1 nullref))", False),
    ("ref.null nofunc", "(module (func (result funcref) ref.null nofunc))", False),
    ("br_on_null", "(module (func (param nullexnref) (block (br_on_null 0 (local.get 0)) drop)))", False),
    ("ref.as_non_null", "(module (func (param exnref) (drop (ref.as_non_null (local.get 0)))))", False),
]


@pytest.fixture(scope="module")
def reference() -> None:
    if wasmtools.missing_reason():
        pytest.skip(wasmtools.missing_reason())


@pytest.mark.parametrize(("name", "text", "valid"), CASES, ids=[c[0] for c in CASES])
def test_validation_matches_the_reference(reference: None, name: str, text: str, valid: bool) -> None:
    data = wasmtools.parse(text)
    accepted, message = wasmtools.validate(data)
    assert accepted == valid, f"wasm-tools: {message or 'valid'}"
    if valid:
        Module(data)
        return
    with pytest.raises(ValidationError) as info:
        Module(data)
    needs_more = any(word in text for word in ("br_on_null", "as_non_null", "nullfuncref", "nullexternref", "nullref",
                                               "nofunc", "(ref func)", "(ref extern)"))
    if needs_more:  # refused as a feature not supported yet, with the feature named
        assert "is not supported yet" in info.value.rule, info.value.rule
    else:
        assert info.value.rule.startswith(("type mismatch", "uninitialized local")), info.value.rule


def test_the_case_the_fuzzer_found(reference: None) -> None:
    """Seed 42 case 32 of the validation fuzzer: a table of nullexnref."""
    result = trio.run(campaign.Checker(sliced=False).validate_case, 42, 32)
    assert result.status == campaign.AGREE, result.detail


# -- runtime ---------------------------------------------------------------------------------

RUNTIME = """(module
  (tag $e (param i32))
  (global (export "g") nullexnref (ref.null noexn))
  (global (export "mg") (mut nullexnref) (ref.null noexn))
  (global $x (export "x") (mut exnref) (ref.null noexn))
  (table $t (export "t") 3 nullexnref)
  (table $u (export "u") 2 exnref)
  (func (export "null") (result nullexnref) (ref.null noexn))
  (func (export "widen") (param nullexnref) (result exnref) (local.get 0))
  (func (export "is_null") (param nullexnref) (result i32) (ref.is_null (local.get 0)))
  (func (export "from_table") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
  (func (export "throw_null") (param nullexnref) (throw_ref (local.get 0)))
  ;; an exnref table slot overwritten with a nullexnref: the exception in it is dropped
  (func (export "catch_then_clear") (result i32 i32) (local $caught exnref)
    (local.set $caught
      (block $h (result exnref)
        (try_table (catch_all_ref $h) (throw $e (i32.const 7)))
        (unreachable)))
    (table.set $u (i32.const 0) (local.get $caught))
    (ref.is_null (table.get $u (i32.const 0)))
    (table.copy $u $t (i32.const 0) (i32.const 0) (i32.const 1))
    (ref.is_null (table.get $u (i32.const 0))))
  (func (export "grow") (result i32) (table.grow $t (ref.null noexn) (i32.const 2))))
"""


def _runtime() -> asyncwasm.Instance:
    return Linker().instantiate(Module(wat(RUNTIME)))


def test_values_are_none_in_python() -> None:
    e = _runtime().exports
    assert e["g"].type == GlobalType(NULLEXNREF) and str(e["g"].type) == "global nullexnref"
    assert e["g"].value is None and e["mg"].value is None and e["x"].value is None
    assert e["t"].type == TableType(NULLEXNREF, 3) and [e["t"].get(i) for i in range(3)] == [None] * 3
    assert e["null"]() is None
    assert e["widen"](None) is None
    assert e["is_null"](None) == 1 and e["from_table"](2) == 1
    assert e["grow"]() == 3 and e["t"].size == 5
    assert e["catch_then_clear"]() == (0, 1) and e["u"].get(0) is None
    assert e["widen"].type == FuncType([NULLEXNREF], [EXNREF])


def test_only_none_goes_in() -> None:
    e = _runtime().exports
    exception = WasmException(Tag(FuncType([], [])), [])
    for bad in (exception, 0, "null"):
        with pytest.raises(TypeError):
            e["widen"](bad)
        with pytest.raises(TypeError):
            e["mg"].value = bad
        with pytest.raises(TypeError):
            e["t"].set(0, bad)
        with pytest.raises(TypeError):
            Global(GlobalType(NULLEXNREF), bad)
    e["mg"].value = None
    e["t"].set(1, None)
    assert e["mg"].value is None and e["t"].get(1) is None


def test_throw_ref_of_the_null_traps() -> None:
    with pytest.raises(Trap) as info:
        _runtime().exports["throw_null"](None)
    assert info.value.kind == "null exception reference"


def test_module_types_name_it() -> None:
    module = Module(wat(RUNTIME))
    exports = {e.name: e.type for e in module.exports}
    assert exports["g"] == GlobalType(NULLEXNREF) and exports["mg"] == GlobalType(NULLEXNREF, mutable=True)
    assert exports["t"] == TableType(NULLEXNREF, 3)
    assert exports["null"] == FuncType([], [NULLEXNREF])
    assert NULLEXNREF.is_ref and int(NULLEXNREF) == 0x74 and str(NULLEXNREF) == "nullexnref"


def _link(imports: str, **externs: object) -> asyncwasm.Instance:
    """An instance through the Linker, whose import check is in Python;
    the engine's own check (runtime.c) must agree."""
    module = Module(wat(f"(module {imports})"))
    engine_error = None
    try:
        _engine.Instance(module._compiled, list(externs.values()))
    except LinkError as exc:
        engine_error = exc
    linker = Linker()
    for name, extern in externs.items():
        linker.define("host", name, extern)
    try:
        instance = linker.instantiate(module)
    except LinkError:
        assert engine_error is not None, "the Linker refuses what the engine accepts"
        raise
    assert engine_error is None, f"the engine refuses what the Linker accepts: {engine_error}"
    return instance


def test_imported_globals_match_by_subtyping_when_immutable() -> None:
    """An immutable global import takes a subtype (a nullexnref for an
    exnref); a mutable one only its own type (it is written through too)."""
    null_global = Global(GlobalType(NULLEXNREF), None)
    instance = _link('(import "host" "g" (global $g exnref)) (func (export "f") (result exnref) (global.get $g))',
                     g=null_global)
    assert instance.exports["f"]() is None
    _link('(import "host" "g" (global nullexnref))', g=null_global)
    with pytest.raises(LinkError, match="expected global mut exnref, found global mut nullexnref"):
        _link('(import "host" "g" (global (mut exnref)))', g=Global(GlobalType(NULLEXNREF, mutable=True), None))
    with pytest.raises(LinkError, match="expected global nullexnref, found global exnref"):
        _link('(import "host" "g" (global nullexnref))', g=Global(GlobalType(EXNREF), None))


def test_tables_and_functions_match_exactly() -> None:
    """Table and function types are matched for equality (a table is read
    and written; a function type without a declared supertype has none)."""
    table = Table(TableType(NULLEXNREF, 2))
    assert _link('(import "host" "t" (table 2 nullexnref)) (export "t" (table 0))', t=table).exports["t"] is table
    with pytest.raises(LinkError, match="nullexnref"):
        _link('(import "host" "t" (table 2 exnref))', t=table)
    with pytest.raises(LinkError, match="nullexnref"):
        _link('(import "host" "t" (table 2 nullexnref))', t=Table(TableType(EXNREF, 2)))
    host = Func(FuncType([NULLEXNREF], [NULLEXNREF]), lambda x: x)
    instance = _link('(import "host" "f" (func $f (param nullexnref) (result nullexnref)))'
                     ' (func (export "g") (result nullexnref) (call $f (ref.null noexn)))', f=host)
    assert instance.exports["g"]() is None
    with pytest.raises(LinkError):
        _link('(import "host" "f" (func (param exnref) (result nullexnref)))', f=host)


def test_a_host_function_must_return_none() -> None:
    exception = WasmException(Tag(FuncType([], [])), [])
    host = Func(FuncType([], [NULLEXNREF]), lambda: exception)
    instance = _link('(import "host" "f" (func $f (result nullexnref)))'
                     ' (func (export "g") (result i32) (ref.is_null (call $f)))', f=host)
    with pytest.raises(TypeError, match="bad result"):
        instance.exports["g"]()


# -- against wasmtime ---------------------------------------------------------------------------

DIFFERENTIAL = """(module
  (global (export "g") nullexnref (ref.null noexn))
  (global $m (export "m") (mut nullexnref) (ref.null noexn))
  (table (export "t") 2 nullexnref)
  (func $id (export "id") (param nullexnref) (result nullexnref) (local.get 0))
  (func (export "is_null") (param nullexnref) (result i32) (ref.is_null (call $id (local.get 0))))
  (func (export "set") (global.set $m (ref.null noexn)))
  (func (export "throw") (param nullexnref) (throw_ref (local.get 0)))
  (table (export "f") 1 funcref)
  (elem (table 1) (i32.const 0) func $id))
"""


def test_wasmtime_agrees(reference: None) -> None:
    """nullexnref globals, tables, parameters, results and a funcref to a
    function of the type are compared with wasmtime (exnref ones are not:
    see tests/fuzz/differential.py)."""
    data = wat(DIFFERENTIAL)
    plan = differential.make_plan(differential.export_types(data), seed=1)
    assert not plan.skip and {"g", "m", "t", "id", "throw"} <= set(plan.exports)
    assert trio.run(campaign.Checker().differential, 0, 0, data) == (campaign.AGREE, "")


def test_a_non_null_value_would_be_a_disagreement(reference: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = differential.AsyncwasmEngine._value

    def wrong(kind: str, value: object) -> tuple:
        return (kind, "non-null") if kind == "nullexnref" else real(kind, value)

    monkeypatch.setattr(differential.AsyncwasmEngine, "_value", staticmethod(wrong))
    status, detail = trio.run(campaign.Checker(sliced=False).differential, 0, 0, wat(DIFFERENTIAL))
    assert status == campaign.DISAGREE and "nullexnref" in detail


def test_a_funcref_to_a_function_of_non_null_exception_types_agrees(reference: None) -> None:
    text = """(module
      (func $f (param (ref exn)) (result (ref noexn)) (unreachable))
      (table (export "t") 1 funcref)
      (elem (i32.const 0) $f)
      (func (export "ref") (result funcref) (ref.func $f)))"""
    assert trio.run(campaign.Checker().differential, 0, 0, wat(text)) == (campaign.AGREE, "")


# -- non-null exception references at run time -----------------------------------------------

REF_EXN, REF_NOEXN = ValType.REF_EXN, ValType.REF_NOEXN

NON_NULL = """(module
  (import "host" "g" (global $g (ref exn)))
  (import "host" "t" (table $t 1 (ref exn)))
  (tag $e (export "e") (param i32))
  (tag $wrap (export "wrap") (param (ref exn)))
  (global (export "same") (ref exn) (global.get $g))
  (func $caught (export "caught") (param i32) (result (ref exn)) (local $x (ref exn))
    (local.set $x
      (block $h (result (ref exn))
        (try_table (catch_all_ref $h) (throw $e (local.get 0)))
        (unreachable)))
    (local.get $x))
  (func (export "is_null") (param (ref exn)) (result i32) (ref.is_null (local.get 0)))
  (func (export "store") (param i32) (result i32)
    (table.set $t (i32.const 0) (call $caught (local.get 0)))
    (table.grow $t (table.get $t (i32.const 0)) (i32.const 1)))
  (func (export "rethrow_wrapped") (param (ref exn)) (throw $wrap (local.get 0)))
  (func (export "rethrow") (param (ref exn)) (throw_ref (local.get 0))))
"""


def _non_null(exception: WasmException) -> tuple[asyncwasm.Instance, Table]:
    table = Table(TableType(REF_EXN, 1), exception)
    instance = _link(NON_NULL.split("\n", 1)[1].rsplit(")", 1)[0], g=Global(GlobalType(REF_EXN), exception), t=table)
    return instance, table


def test_non_null_references_run() -> None:
    seed = WasmException(Tag(FuncType([], [])), [])
    instance, table = _non_null(seed)
    e = instance.exports
    assert e["same"].value.tag is seed.tag and e["same"].type == GlobalType(REF_EXN)
    caught = e["caught"](5)
    assert isinstance(caught, WasmException) and caught.tag is e["e"] and caught.values == (5,)
    assert e["is_null"](caught) == 0
    assert e["store"](9) == 1 and table.size == 2 and table.get(1).values == (9,)
    with pytest.raises(WasmException) as info:
        e["rethrow"](caught)
    assert info.value.tag is e["e"] and info.value.values == (5,)
    with pytest.raises(WasmException) as info:
        e["rethrow_wrapped"](caught)
    assert info.value.tag is e["wrap"] and info.value.values[0].values == (5,)
    assert e["caught"].type == FuncType([asyncwasm.I32], [REF_EXN])


def test_non_null_references_refuse_none() -> None:
    seed = WasmException(Tag(FuncType([], [])), [])
    instance, table = _non_null(seed)
    with pytest.raises(TypeError, match=r"\(ref exn\)"):
        instance.exports["is_null"](None)
    with pytest.raises(TypeError):
        table.set(0, None)
    with pytest.raises(TypeError):
        table.grow(1, None)
    with pytest.raises(TypeError):
        Table(TableType(REF_EXN, 1))  # no initial value: null
    with pytest.raises(TypeError):
        Global(GlobalType(REF_EXN), None)
    for value in (None, seed):  # (ref noexn) has no value at all
        with pytest.raises(TypeError, match="no values"):
            Global(GlobalType(REF_NOEXN), value)
    host = Func(FuncType([], [REF_EXN]), lambda: None)
    linked = _link('(import "host" "f" (func $f (result (ref exn)))) (func (export "g") (result i32) (ref.is_null (call $f)))',
                   f=host)
    with pytest.raises(TypeError, match="bad result"):
        linked.exports["g"]()
    assert table.size == 1 and table.get(0).tag is seed.tag


def test_a_host_cannot_throw_a_null_as_a_non_null_payload() -> None:
    """A tag whose payload is a (ref exn): a host exception carrying None
    is refused before the guest could see a null where none can be."""
    tag = Tag(FuncType([REF_EXN], []))

    def host() -> None:
        raise WasmException(tag, [None])

    instance = _link(
        '(import "host" "f" (func $f)) (import "host" "t" (tag $t (param (ref exn))))'
        ' (func (export "g") (result i32)'
        '   (block $l (result (ref exn)) (try_table (catch $t $l) (call $f)) (unreachable))'
        '   (ref.is_null))',
        f=Func(FuncType([], []), host), t=tag)
    with pytest.raises(TypeError, match=r"expected \(ref exn\)"):
        instance.exports["g"]()


def test_non_null_imports_match_by_subtyping() -> None:
    seed = WasmException(Tag(FuncType([], [])), [])
    _link('(import "host" "g" (global exnref))', g=Global(GlobalType(REF_EXN), seed))
    with pytest.raises(LinkError):
        _link('(import "host" "g" (global (ref exn)))', g=Global(GlobalType(EXNREF), seed))
    with pytest.raises(LinkError):
        _link('(import "host" "g" (global (mut exnref)))', g=Global(GlobalType(REF_EXN, mutable=True), seed))
    with pytest.raises(LinkError):
        _link('(import "host" "t" (table 1 exnref))', t=Table(TableType(REF_EXN, 1), seed))


def test_a_table_of_non_null_references_needs_an_initializer() -> None:
    with pytest.raises(ValidationError, match="non-defaultable"):
        Module(wat("(module (table 1 (ref exn)))"))


def test_every_type_byte_flipped_is_judged_like_the_reference(reference: None) -> None:
    """The runtime modules with each byte that may name a reference type
    (or start one) replaced by each other such byte: exnref <-> nullexnref,
    nullable <-> non-null, exception <-> function references, and whatever
    that does to the module around it. asyncwasm accepts exactly what
    wasm-tools accepts at asyncwasm's level."""
    swaps = {0x69, 0x74, 0x64, 0x63, 0x70}
    verdicts = {True: 0, False: 0}
    for text in (RUNTIME, NON_NULL):
        data = wasmtools.parse(text)
        for at in range(8, len(data)):
            for byte in swaps - {data[at]} if data[at] in swaps else ():
                flipped = data[:at] + bytes([byte]) + data[at + 1:]
                valid, message = wasmtools.validate(flipped)
                try:
                    Module(flipped)
                    error = None
                except asyncwasm.ModuleError as exc:
                    error = str(exc)
                assert valid == (error is None), f"byte {at:#x} -> {byte:#x}: wasm-tools {message or 'valid'}; asyncwasm {error or 'valid'}"
                verdicts[valid] += 1
    assert verdicts[True] > 20 and verdicts[False] > 100, verdicts
