"""nullexnref, ``(ref null noexn)``: exnref's bottom type, which exception
handling brings without GC, and the reference subtyping it needs
(nullexnref <: exnref) wherever a type is matched.

Validation: every module below is checked twice, against the expectation
written next to it and against ``wasm-tools validate`` at asyncwasm's
feature level (tests/fuzz/wasmtools.FEATURES), so the list is also the
differential check with the reference validator. Runtime: the only value
of the type is null, which Python sees as None; globals, tables, function
results and parameters of the type, import matching, and a comparison
with wasmtime through the fuzzers' differential runner.
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
    # the other bottom types and non-null references need GC or typed function references
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
    needs_more = "nullexnref" not in text or "br_on_null" in text or "as_non_null" in text
    if needs_more:  # refused as a feature not supported yet, with the feature named
        assert "is not supported yet" in info.value.rule, info.value.rule
    else:
        assert info.value.rule.startswith("type mismatch"), info.value.rule


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
