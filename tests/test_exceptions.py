"""Wasm exception handling (Wasm 3.0): tags, throw, throw_ref, try_table and
exnref values, the legacy try/catch/catch_all/rethrow/delegate form, and the
Python face: WasmException, Tag, TagType.

The 3.0 spec testsuite covers the current form (tests/spec); its legacy
files could not be converted, so the legacy instructions are covered here:
across functions, through host frames, across fuel slices and across async
suspensions. Modules are written in the text format; the legacy
instructions in their flat form (try ... catch ... end), which is what
wasmtime's parser reads.
"""

from __future__ import annotations

import gc

import pytest
import trio

import asyncwasm
from asyncwasm import (
    EXNREF,
    EXTERNREF,
    F64,
    I32,
    I64,
    FuncType,
    Limits,
    Linker,
    Module,
    Tag,
    TagType,
    Trap,
    WasmException,
)
from asyncwasm.lowlevel import Fiber, Outcome

from .wat import wat


def _instance(text: str, linker: Linker | None = None, limits: Limits | None = None) -> asyncwasm.Instance:
    return (linker or Linker()).instantiate(Module(wat(text)), limits=limits)


def _sliced(func: asyncwasm.Func, *args: object, fuel: int = 2) -> tuple:
    """Run a call in tiny fuel slices (resumed until it ends); raise its
    trap or exception. Returns the results tuple."""
    fiber = Fiber(func, args)
    runs = 0
    while True:
        runs += 1
        outcome = fiber.run(max(fuel, fiber.fuel_needed))
        if outcome == Outcome.DONE:
            assert runs > 1, "the call was expected to need several slices"
            return fiber.results
        if outcome == Outcome.TRAP:
            raise fiber.trap()
        if outcome == Outcome.EXCEPTION:
            raise fiber.exception()
        assert outcome == Outcome.OUT_OF_FUEL, outcome


# ---------------------------------------------------------------------------
# The current form: try_table, throw, throw_ref, exnref
# ---------------------------------------------------------------------------

CURRENT = """
(module
  (tag $small (export "small") (param i32))
  (tag $big (export "big") (param i64 f64))
  (tag $empty (export "empty"))

  (func $throw_small (param i32) (local.get 0) (throw $small))
  (func $deep (param $n i32)                       ;; throws from $n frames down
    (if (i32.eqz (local.get $n)) (then (call $throw_small (i32.const 77))))
    (call $deep (i32.sub (local.get $n) (i32.const 1))))

  (func (export "catch_deep") (param i32) (result i32)
    (block $caught (result i32)
      (try_table (catch $small $caught) (call $deep (local.get 0)))
      (i32.const -1)))

  (func (export "catch_big") (result i64 f64)
    (block $caught (result i64 f64)
      (try_table (catch $big $caught)
        (throw $big (i64.const -5) (f64.const 2.5)))
      (unreachable)))

  (func (export "catch_all") (param i32) (result i32)
    (block $caught
      (try_table (catch_all $caught)
        (if (local.get 0) (then (throw $empty)) (else (call $throw_small (i32.const 1)))))
      (return (i32.const 0)))
    (i32.const 1))

  ;; catch_ref keeps the exception; throw_ref rethrows that very one.
  (func (export "rethrow") (param i32)
    (block $caught (result i32 exnref)
      (try_table (catch_ref $small $caught) (call $throw_small (local.get 0)))
      (unreachable))
    (throw_ref))

  (func (export "catch_as_ref") (param i32) (result exnref)
    (block $caught (result exnref)
      (try_table (catch_all_ref $caught) (call $throw_small (local.get 0)))
      (unreachable)))

  (func (export "throw_ref") (param exnref) (throw_ref (local.get 0)))

  (func (export "uncaught") (param i32) (result i32)
    (call $throw_small (local.get 0)) (i32.const 0))

  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
)
"""


def test_catch_across_many_frames() -> None:
    instance = _instance(CURRENT)
    assert instance.exports["catch_deep"](0) == 77
    assert instance.exports["catch_deep"](500) == 77


def test_payload_of_several_types() -> None:
    instance = _instance(CURRENT)
    assert instance.exports["catch_big"]() == (-5, 2.5)


def test_catch_all_catches_every_tag() -> None:
    instance = _instance(CURRENT)
    assert instance.exports["catch_all"](0) == 1
    assert instance.exports["catch_all"](1) == 1


def test_uncaught_exception_is_raised_with_its_tag_and_values() -> None:
    instance = _instance(CURRENT)
    with pytest.raises(WasmException) as info:
        instance.exports["uncaught"](42)
    assert info.value.tag is instance.exports["small"]
    assert info.value.values == (42,)
    assert "uncaught Wasm exception" in str(info.value)
    assert not isinstance(info.value, Trap)
    # An outcome, like a trap: the instance goes on working.
    assert instance.exports["add"](2, 3) == 5
    assert not instance.interrupted


def test_rethrow_keeps_the_exception_and_its_identity() -> None:
    instance = _instance(CURRENT)
    with pytest.raises(WasmException) as info:
        instance.exports["rethrow"](9)
    assert info.value.values == (9,)
    # exnref values are WasmException objects; throwing one back is the same exception.
    ref = instance.exports["catch_as_ref"](5)
    assert isinstance(ref, WasmException) and ref.values == (5,) and ref.tag is instance.exports["small"]
    with pytest.raises(WasmException) as again:
        instance.exports["throw_ref"](ref)
    assert again.value._exn is ref._exn


def test_throw_ref_of_null_traps() -> None:
    instance = _instance(CURRENT)
    with pytest.raises(Trap, match="null exception reference"):
        instance.exports["throw_ref"](None)


def test_exceptions_across_fuel_slices() -> None:
    instance = _instance(CURRENT)
    assert _sliced(instance.exports["catch_deep"], 50) == (77,)
    assert _sliced(instance.exports["catch_big"]) == (-5, 2.5)
    with pytest.raises(WasmException) as info:
        _sliced(instance.exports["uncaught"], 3)
    assert info.value.values == (3,)


def test_exception_with_a_fuel_budget() -> None:
    instance = _instance(CURRENT, limits=Limits(fuel=1_000_000))
    assert instance.exports["catch_deep"](100) == 77
    with pytest.raises(WasmException):
        instance.exports["uncaught"](1)
    assert instance.exports["catch_deep"](1) == 77
    assert 0 < instance.statistics().fuel_used < 1_000_000


# ---------------------------------------------------------------------------
# Tags: imports, exports, host tags, identity
# ---------------------------------------------------------------------------

IMPORTS_TAG = """
(module
  (import "env" "error" (tag $error (param i32)))
  (import "env" "check" (func $check (param i32)))
  (func (export "run") (param i32) (result i32)
    (block $caught (result i32)
      (try_table (result i32) (catch $error $caught) (call $check (local.get 0)) (i32.const 0))
      (return))
    (i32.add (i32.const 1000)))
  (func (export "throw") (param i32) (throw $error (local.get 0)))
)
"""


def test_host_tag_defined_and_thrown_by_a_host_function() -> None:
    tag = Tag(FuncType([I32], []))
    assert tag.type == TagType(FuncType([I32], [])) and str(tag.type) == "tag [i32]"

    def check(n: int) -> None:
        if n < 0:
            raise WasmException(tag, [n])

    linker = Linker()
    linker.define("env", "error", tag)
    linker.define_func("env", "check", FuncType([I32], []), check)
    instance = linker.instantiate(Module(wat(IMPORTS_TAG)))
    assert instance.exports["run"](5) == 0
    assert instance.exports["run"](-7) == 993  # caught by the guest: -7 + 1000
    with pytest.raises(WasmException) as info:
        instance.exports["throw"](12)
    assert info.value.tag is tag and info.value.values == (12,)


def test_host_exception_of_an_unknown_tag_passes_through_the_guest() -> None:
    other = Tag(FuncType([I32], []))

    def check(n: int) -> None:
        raise WasmException(other, [n])

    linker = Linker()
    linker.define("env", "error", Tag(FuncType([I32], [])))
    linker.define_func("env", "check", FuncType([I32], []), check)
    instance = linker.instantiate(Module(wat(IMPORTS_TAG)))
    with pytest.raises(WasmException) as info:
        instance.exports["run"](1)
    assert info.value.tag is other


def test_bad_host_exception_is_a_type_error() -> None:
    tag = Tag(FuncType([I32], []))

    def check(n: int) -> None:
        raise WasmException(tag, ["not a number"])

    linker = Linker()
    linker.define("env", "error", tag)
    linker.define_func("env", "check", FuncType([I32], []), check)
    instance = linker.instantiate(Module(wat(IMPORTS_TAG)))
    with pytest.raises(TypeError, match="expected i32"):
        instance.exports["run"](1)
    with pytest.raises(WasmException):  # the instance still runs
        instance.exports["throw"](1)


def test_tag_types_in_imports_and_exports() -> None:
    module = Module(wat(IMPORTS_TAG))
    assert module.imports[0].type == TagType(FuncType([I32], []))
    exporter = Module(wat(CURRENT))
    types = {e.name: e.type for e in exporter.exports}
    assert types["big"] == TagType(FuncType([I64, F64], []))
    assert str(types["empty"]) == "tag []"
    instance = Linker().instantiate(exporter)
    assert isinstance(instance.exports["small"], Tag)


def test_tag_import_must_match_exactly() -> None:
    linker = Linker()
    linker.define("env", "error", Tag(FuncType([I64], [])))
    linker.define_func("env", "check", FuncType([I32], []), lambda n: None)
    with pytest.raises(asyncwasm.LinkError, match="incompatible import type"):
        linker.instantiate(Module(wat(IMPORTS_TAG)))


def test_tag_has_no_results() -> None:
    with pytest.raises(ValueError, match="no results"):
        Tag(FuncType([I32], [I32]))
    with pytest.raises(TypeError):
        Tag("i32")  # type: ignore[arg-type]


def test_tags_are_generative_per_instance() -> None:
    """Two instances of one module have two tags: a catch of one's tag does
    not catch the other's exceptions; an imported tag is the exporter's."""
    thrower = """
    (module
      (import "a" "tag" (tag $t (param i32)))
      (func (export "throw") (param i32) (throw $t (local.get 0))))
    """
    catcher = """
    (module
      (tag $t (export "tag") (param i32))
      (import "b" "throw" (func $throw (param i32)))
      (func (export "catch") (param i32) (result i32)
        (block $caught (result i32)
          (try_table (result i32) (catch $t $caught) (call $throw (local.get 0)) (i32.const -1)))))
    """
    # B throws A1's tag; A1 catches it, A2 (its own tag) does not.
    first = Linker()
    first.define_func("b", "throw", FuncType([I32], []), lambda n: None)
    a1 = first.instantiate(Module(wat(catcher)))
    link_b = Linker()
    link_b.define("a", "tag", a1.exports["tag"])
    b = link_b.instantiate(Module(wat(thrower)))
    for_a = Linker()
    for_a.define("b", "throw", b.exports["throw"])
    a_same_tag = for_a.instantiate(Module(wat(catcher)))
    assert a_same_tag.exports["tag"] is not a1.exports["tag"]
    with pytest.raises(WasmException):  # b throws a1's tag; a_same_tag catches only its own
        a_same_tag.exports["catch"](4)
    # A module that imports a1's tag and catches it.
    catch_imported = """
    (module
      (import "a" "tag" (tag $t (param i32)))
      (import "b" "throw" (func $throw (param i32)))
      (func (export "catch") (param i32) (result i32)
        (block $caught (result i32)
          (try_table (result i32) (catch $t $caught) (call $throw (local.get 0)) (i32.const -1)))))
    """
    link_c = Linker()
    link_c.define("a", "tag", a1.exports["tag"])
    link_c.define("b", "throw", b.exports["throw"])
    c = link_c.instantiate(Module(wat(catch_imported)))
    assert c.exports["catch"](4) == 4


# ---------------------------------------------------------------------------
# Through host frames
# ---------------------------------------------------------------------------

THROUGH_HOST = """
(module
  (tag $e (export "e") (param i32))
  (import "env" "call_back" (func $call_back (param i32) (result i32)))
  (func (export "outer") (param i32) (result i32)
    (block $caught (result i32)
      (try_table (result i32) (catch $e $caught) (call $call_back (local.get 0)))
      (i32.const 100)
      (i32.add)))
  (func (export "inner") (param i32) (result i32)
    (if (i32.gt_s (local.get 0) (i32.const 0)) (then (throw $e (local.get 0))))
    (i32.const 5))
  (func (export "legacy_outer") (param i32) (result i32)
    try (result i32)
      (call $call_back (local.get 0))
    catch $e
      (i32.add (i32.const 200))
    end)
)
"""


def _through_host() -> tuple[asyncwasm.Instance, list[str]]:
    seen: list[str] = []
    instance: asyncwasm.Instance

    def call_back(n: int) -> int:
        try:
            return instance.exports["inner"](n)  # re-enters the guest
        except WasmException as exc:
            seen.append(f"host saw {exc.values}")
            raise  # on through the host frame, into the outer guest frame

    linker = Linker()
    linker.define_func("env", "call_back", FuncType([I32], [I32]), call_back)
    instance = linker.instantiate(Module(wat(THROUGH_HOST)))
    return instance, seen


def test_exception_passes_through_a_host_frame() -> None:
    instance, seen = _through_host()
    assert instance.exports["outer"](0) == 105  # no exception: 5 + 100
    assert instance.exports["outer"](7) == 7  # caught in the outer frame
    assert instance.exports["legacy_outer"](3) == 203
    assert seen == ["host saw (7,)", "host saw (3,)"]


def test_exception_through_a_host_frame_in_slices() -> None:
    instance, _ = _through_host()
    assert _sliced(instance.exports["outer"], 9) == (9,)
    assert _sliced(instance.exports["legacy_outer"], 4) == (204,)


# ---------------------------------------------------------------------------
# Async suspensions
# ---------------------------------------------------------------------------

ASYNC = """
(module
  (import "env" "error" (tag $error (param i32)))
  (import "env" "wait" (func $wait (param i32) (result i32)))
  (func (export "current") (param i32) (result i32)
    (block $caught (result i32)
      (try_table (catch $error $caught)
        (call $wait (local.get 0))
        (throw $error))                 ;; thrown after the suspension
      (unreachable))
    (i32.const 1) (i32.add))
  (func (export "legacy") (param i32) (result i32)
    try (result i32)
      (throw $error (call $wait (local.get 0)))
    catch $error
      (i32.add (i32.const 2))
    end)
  (func (export "legacy_rethrow") (param i32) (result i32)
    try (result i32)
      try
        (drop (call $wait (local.get 0)))
      catch_all
        (drop (call $wait (i32.const 0)))   ;; suspends inside the catch, then rethrows
        rethrow 0
      end
      (i32.const 0)
    catch $error
      (i32.add (i32.const 3))
    end)
)
"""


async def test_exceptions_across_async_suspensions() -> None:
    tag = Tag(FuncType([I32], []))

    async def wait(n: int) -> int:
        await trio.sleep(0)
        if n < 0:
            raise WasmException(tag, [n * 10])  # thrown into the guest from the awaited call
        return n

    linker = Linker()
    linker.define("env", "error", tag)
    linker.define_func("env", "wait", FuncType([I32], [I32]), wait)
    instance = linker.instantiate(Module(wat(ASYNC)))
    assert await instance.exports["current"].call_async(4) == 5
    assert await instance.exports["current"].call_async(-1) == -9
    assert await instance.exports["legacy"].call_async(6) == 8
    assert await instance.exports["legacy"].call_async(-2) == -18
    assert await instance.exports["legacy_rethrow"].call_async(-3) == -27
    assert await instance.exports["legacy_rethrow"].call_async(1) == 0


async def test_uncaught_exception_from_an_async_host_function() -> None:
    tag = Tag(FuncType([I32], []))

    async def wait(n: int) -> int:
        await trio.sleep(0)
        raise WasmException(Tag(FuncType([I32], [])), [n])  # a tag the guest does not know

    linker = Linker()
    linker.define("env", "error", tag)
    linker.define_func("env", "wait", FuncType([I32], [I32]), wait)
    instance = linker.instantiate(Module(wat(ASYNC)))
    with pytest.raises(WasmException) as info:
        await instance.exports["current"].call_async(5)
    assert info.value.values == (5,)
    assert not instance.interrupted
    async with trio.open_nursery() as nursery:
        execution = asyncwasm.execute(nursery, instance.exports["legacy"], 6)
        with pytest.raises(WasmException):
            await execution.result()


# ---------------------------------------------------------------------------
# The legacy form: try, catch, catch_all, rethrow, delegate
# ---------------------------------------------------------------------------

LEGACY = """
(module
  (tag $a (export "a") (param i32))
  (tag $b (export "b") (param i64))
  (tag $c (export "c"))

  (func $throw_a (param i32) (throw $a (local.get 0)))
  (func $throw_by (param i32)            ;; 0: a 10, 1: b 20, 2: c, 3: nothing
    (block (block (block (block (br_table 0 1 2 3 (local.get 0)))
      (call $throw_a (i32.const 10))) (throw $b (i64.const 20))) (throw $c)))

  (func (export "dispatch") (param i32) (result i32)
    try (result i32)
      (call $throw_by (local.get 0))
      (i32.const 0)
    catch $a
      (i32.add (i32.const 1000))
    catch $b
      (i32.add (i32.wrap_i64) (i32.const 2000))
    catch_all
      (i32.const 3000)
    end)

  ;; A try without catch_all lets other tags through.
  (func (export "only_b") (param i32) (result i32)
    try (result i32)
      (call $throw_by (local.get 0))
      (i32.const 0)
    catch $b
      (drop)
      (i32.const 1)
    end)

  ;; rethrow from a catch, and from a nested catch naming the outer one.
  (func (export "rethrow") (param i32) (result i32)
    try (result i32)
      try (result i32)
        (call $throw_by (local.get 0))
        (i32.const 0)
      catch $a
        (drop)
        try (result i32)
          (throw $c)
        catch $c
          rethrow 1                        ;; the $a being handled, not the $c
        end
      end
    catch $a
      (i32.add (i32.const 500))
    catch_all
      (i32.const 600)
    end)

  ;; A call in the catch body, whose frame lies right above this one's
  ;; operand stack, before the rethrow: the caught exception survives it.
  (func $clobber (param i32) (result i32) (local i64 i64 i64 i64)
    (local.set 1 (i64.const -1)) (local.set 2 (i64.const -1)) (local.set 3 (i64.const -1))
    (local.set 4 (i64.const -1))
    (local.get 0))
  (func (export "rethrow_after_call") (param i32) (result i32)
    try (result i32)
      try
        (call $throw_by (local.get 0))
      catch_all
        (drop (call $clobber (call $clobber (i32.const 99))))
        rethrow 0
      end
      (i32.const 0)
    catch $a
      (i32.add (i32.const 700))
    catch_all
      (i32.const 800)
    end)

  ;; delegate: to the enclosing try (skipping the middle one), and to the caller.
  (func (export "delegate_skip") (param i32) (result i32)
    try $outer (result i32)
      try (result i32)
        try (result i32)
          (call $throw_by (local.get 0))
          (i32.const 0)
        delegate $outer
      catch_all
        (i32.const 1)                      ;; skipped by the delegate
      end
    catch $a
      (i32.add (i32.const 100))
    catch_all
      (i32.const 2)
    end)

  (func $delegate_to_caller (param i32)
    try
      (call $throw_by (local.get 0))
    delegate 0)
  (func (export "delegate_caller") (param i32) (result i32)
    try (result i32)
      (call $delegate_to_caller (local.get 0))
      (i32.const 0)
    catch $a
    end)

  ;; Legacy and current forms mixed; a branch out of a catch body.
  (func (export "mixed") (param i32) (result i32)
    (block $out (result i32)
      (block $from_b (result i64)
        (try_table (result i32) (catch $b $from_b)
          try (result i32)
            (call $throw_by (local.get 0))
            (i32.const 0)
          catch $a
            (br $out)
          catch $c
            (throw $b (i64.const 77))
          end)
        (br $out))
      (i32.wrap_i64)))

  ;; Deep recursion with a try in every frame: each catch adds one and throws again.
  (func $levels (param $n i32) (result i32)
    (if (i32.eqz (local.get $n)) (then (call $throw_a (i32.const 1))))
    try (result i32)
      (call $levels (i32.sub (local.get $n) (i32.const 1)))
    catch $a
      (throw $a (i32.add (i32.const 1)))
    end)
  (func (export "levels") (param i32) (result i32)
    try (result i32)
      (call $levels (local.get 0))
    catch $a
    end)

  (func (export "uncaught") (param i32)
    try
      (call $throw_by (local.get 0))
    catch $b
      (drop)
      rethrow 0
    end)
)
"""


def test_legacy_catch_by_tag_and_catch_all() -> None:
    e = _instance(LEGACY).exports
    assert [e["dispatch"](k) for k in range(4)] == [1010, 2020, 3000, 0]
    assert e["only_b"](1) == 1 and e["only_b"](3) == 0
    with pytest.raises(WasmException) as info:
        e["only_b"](0)
    assert info.value.tag is e["a"] and info.value.values == (10,)


def test_legacy_rethrow() -> None:
    e = _instance(LEGACY).exports
    assert e["rethrow"](0) == 510  # $a 10 caught, rethrown from the nested catch, caught outside
    assert e["rethrow"](1) == 600
    assert e["rethrow"](3) == 0
    assert e["rethrow_after_call"](0) == 710
    assert e["rethrow_after_call"](2) == 800
    with pytest.raises(WasmException) as info:
        e["uncaught"](1)
    assert info.value.tag is e["b"] and info.value.values == (20,)


def test_legacy_delegate() -> None:
    e = _instance(LEGACY).exports
    assert e["delegate_skip"](0) == 110
    assert e["delegate_skip"](2) == 2  # the middle catch_all was skipped
    assert e["delegate_skip"](3) == 0
    assert e["delegate_caller"](0) == 10
    with pytest.raises(WasmException):
        e["delegate_caller"](1)


def test_legacy_mixed_with_try_table() -> None:
    e = _instance(LEGACY).exports
    assert e["mixed"](0) == 10
    assert e["mixed"](1) == 20  # caught by the try_table around it
    assert e["mixed"](2) == 77
    assert e["mixed"](3) == 0


def test_legacy_across_many_frames() -> None:
    e = _instance(LEGACY).exports
    assert e["levels"](1) == 2
    assert e["levels"](300) == 301


def test_legacy_across_fuel_slices() -> None:
    e = _instance(LEGACY).exports
    assert [_sliced(e["dispatch"], k)[0] for k in range(3)] == [1010, 2020, 3000]
    assert _sliced(e["rethrow"], 0) == (510,)
    assert _sliced(e["delegate_skip"], 2) == (2,)
    assert _sliced(e["levels"], 40, fuel=5) == (41,)
    with pytest.raises(WasmException):
        _sliced(e["delegate_caller"], 2)


# ---------------------------------------------------------------------------
# Memory: exceptions the guest no longer holds are let go during a run
# ---------------------------------------------------------------------------


def test_throwing_in_a_loop_keeps_few_exceptions_alive() -> None:
    counts: list[int] = []

    def count() -> None:
        counts.append(sum(type(o).__name__ == "Exn" for o in gc.get_objects()))

    module = """
    (module
      (import "env" "count" (func $count))
      (tag $e (param i32))
      (func $thrower (param i32) (throw $e (local.get 0)))
      (func (export "loop") (param $n i32) (result i32) (local $kept exnref)
        (loop $again
          (block $caught (result exnref)
            (try_table (catch_all_ref $caught) (call $thrower (local.get $n)))
            (unreachable))
          (local.set $kept)                 ;; the last one stays in a local
          (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $again))
        (call $count)
        (block $caught (result i32)
          (try_table (catch $e $caught) (throw_ref (local.get $kept)))
          (unreachable))))
    """
    linker = Linker()
    linker.define_func("env", "count", FuncType([], []), count)
    instance = linker.instantiate(Module(wat(module)))
    assert instance.exports["loop"](20_000) == 1  # the exception kept in the local is still there
    assert counts and counts[0] < 200, counts


def test_exnref_in_tables_and_globals() -> None:
    module = """
    (module
      (tag $e (param i32))
      (table $t 2 exnref)
      (global $g (mut exnref) (ref.null exn))
      (func (export "keep") (param i32) (local $ref exnref)
        (block $caught (result exnref)
          (try_table (catch_all_ref $caught) (throw $e (local.get 0)))
          (unreachable))
        (local.set $ref)
        (table.set $t (i32.const 1) (local.get $ref))
        (global.set $g (table.get $t (i32.const 1))))
      (func (export "rethrow") (throw_ref (global.get $g))))
    """
    instance = _instance(module)
    instance.exports["keep"](31)
    gc.collect()
    with pytest.raises(WasmException) as info:
        instance.exports["rethrow"]()
    assert info.value.values == (31,)


def test_exnref_and_externref_payload_values() -> None:
    module = """
    (module
      (tag $e (export "e") (param externref exnref))
      (func (export "wrap") (param externref exnref) (throw $e (local.get 0) (local.get 1)))
      (func (export "unwrap") (param externref exnref) (result externref exnref)
        (block $caught (result externref exnref)
          (try_table (catch $e $caught) (throw $e (local.get 0) (local.get 1)))
          (unreachable))))
    """
    instance = _instance(module)
    payload = object()
    with pytest.raises(WasmException) as info:
        instance.exports["wrap"](payload, None)
    assert info.value.values == (payload, None)
    inner = info.value
    got, ref = instance.exports["unwrap"](payload, inner)
    assert got is payload and ref._exn is inner._exn
    assert Module(wat(module)).exports[0].type == TagType(FuncType([EXTERNREF, EXNREF], []))
