"""asyncwasm.Linker: definitions, import matching, start functions, limits."""

from __future__ import annotations

import pytest

from asyncwasm import (
    EXTERNREF,
    F32,
    FUNCREF,
    I32,
    I64,
    Func,
    FuncType,
    Global,
    GlobalType,
    Instance,
    Limits,
    LinkError,
    Linker,
    Memory,
    MemoryType,
    Module,
    Table,
    TableType,
    Trap,
    WasmError,
)
from asyncwasm.linker import import_matches

from .wat import wat

CALLS_HOST = """
(module
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (func (export "add_twice") (param i32) (result i32)
    (call $add (local.get 0) (call $add (local.get 0) (local.get 0)))))
"""


def test_define_func_is_called_by_the_guest() -> None:
    calls = []

    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    linker = Linker()
    func = linker.define_func("env", "add", FuncType([I32, I32], [I32]), add)
    assert isinstance(func, Func) and func.type == FuncType([I32, I32], [I32])
    instance = linker.instantiate(Module(wat(CALLS_HOST)))
    assert instance.exports["add_twice"](5) == 15
    assert calls == [(5, 5), (5, 10)]


def test_unknown_import_names_the_import() -> None:
    with pytest.raises(LinkError) as info:
        Linker().instantiate(Module(wat(CALLS_HOST)))
    message = str(info.value)
    assert message.startswith("unknown import")
    assert '"env"."add"' in message and "func [i32 i32] -> [i32]" in message


def test_wrong_function_type_names_both_types() -> None:
    linker = Linker()
    linker.define_func("env", "add", FuncType([I32, I64], [I32]), lambda a, b: 0)
    with pytest.raises(LinkError) as info:
        linker.instantiate(Module(wat(CALLS_HOST)))
    message = str(info.value)
    assert message.startswith("incompatible import type")
    assert '"env"."add"' in message
    assert "expected func [i32 i32] -> [i32]" in message and "found func [i32 i64] -> [i32]" in message


def test_wrong_kind_is_incompatible() -> None:
    linker = Linker()
    linker.define("env", "add", Memory(MemoryType(1)))
    with pytest.raises(LinkError, match="incompatible import type .*expected func .*found memory 1"):
        linker.instantiate(Module(wat(CALLS_HOST)))


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (FuncType([I32], []), FuncType([I32], []), True),
        (FuncType([I32], []), FuncType([I64], []), False),
        (FuncType([I32], []), FuncType([I32], [I32]), False),
        (TableType(FUNCREF, 10), TableType(FUNCREF, 10), True),
        (TableType(FUNCREF, 10), TableType(FUNCREF, 11, 20), True),
        (TableType(FUNCREF, 10), TableType(FUNCREF, 9), False),
        (TableType(FUNCREF, 10, 20), TableType(FUNCREF, 10), False),
        (TableType(FUNCREF, 10, 20), TableType(FUNCREF, 10, 20), True),
        (TableType(FUNCREF, 10, 20), TableType(FUNCREF, 10, 21), False),
        (TableType(FUNCREF, 10, 20), TableType(FUNCREF, 15, 15), True),
        (TableType(FUNCREF, 1), TableType(EXTERNREF, 1), False),
        (MemoryType(1), MemoryType(1), True),
        (MemoryType(1), MemoryType(2, 3), True),
        (MemoryType(2), MemoryType(1), False),
        (MemoryType(1, 2), MemoryType(1), False),
        (MemoryType(1, 2), MemoryType(1, 3), False),
        (MemoryType(1, 2), MemoryType(2, 2), True),
        (GlobalType(I32), GlobalType(I32), True),
        (GlobalType(I32), GlobalType(I32, mutable=True), False),
        (GlobalType(I32, mutable=True), GlobalType(I32), False),
        (GlobalType(I32), GlobalType(F32), False),
        (GlobalType(I32), FuncType(), False),
        (MemoryType(1), TableType(FUNCREF, 1), False),
    ],
)
def test_import_matching_rules(expected: object, actual: object, ok: bool) -> None:
    assert import_matches(expected, actual) is ok  # type: ignore[arg-type]


def test_memory_matches_by_current_size() -> None:
    module = Module(wat('(module (import "env" "mem" (memory 2)))'))
    memory = Memory(MemoryType(1, 4))
    linker = Linker()
    linker.define("env", "mem", memory)
    with pytest.raises(LinkError, match="expected memory 2, found memory 1 4"):
        linker.instantiate(module)
    assert memory.grow(1) == 1
    linker.instantiate(module)  # now 2 pages: matches


def test_table_matches_by_current_size() -> None:
    module = Module(wat('(module (import "env" "tab" (table 3 externref)))'))
    table = Table(TableType(EXTERNREF, 1))
    linker = Linker()
    linker.define("env", "tab", table)
    with pytest.raises(LinkError, match="incompatible import type"):
        linker.instantiate(module)
    table.grow(2)
    linker.instantiate(module)


def test_global_mutability_must_match() -> None:
    module = Module(wat('(module (import "env" "g" (global (mut i32))))'))
    linker = Linker()
    linker.define("env", "g", Global(GlobalType(I32), 1))
    with pytest.raises(LinkError, match="expected global mut i32, found global i32"):
        linker.instantiate(module)
    linker = Linker()
    linker.define("env", "g", Global(GlobalType(I32, mutable=True), 1))
    linker.instantiate(module)


def test_imported_memory_is_shared() -> None:
    memory = Memory(MemoryType(1))
    linker = Linker()
    linker.define("env", "mem", memory)
    linker.instantiate(Module(wat('(module (import "env" "mem" (memory 1)) (data (i32.const 8) "hi"))')))
    assert memory.read(8, 2) == b"hi"


def test_define_instance_exports_become_imports() -> None:
    provider = Instance(
        Module(
            wat(
                """(module
                     (func (export "seven") (result i32) i32.const 7)
                     (global (export "g") i32 (i32.const 35)))"""
            )
        )
    )
    linker = Linker()
    linker.define_instance("lib", provider)
    assert linker.get("lib", "seven") is provider.exports["seven"]
    consumer = linker.instantiate(
        Module(
            wat(
                """(module
                     (import "lib" "seven" (func $seven (result i32)))
                     (import "lib" "g" (global $g i32))
                     (func (export "sum") (result i32) (i32.add (call $seven) (global.get $g))))"""
            )
        )
    )
    assert consumer.exports["sum"]() == 42


def test_duplicate_definition_refused_unless_shadowing() -> None:
    linker = Linker()
    linker.define_func("env", "f", FuncType(), lambda: None)
    with pytest.raises(ValueError, match="already defined"):
        linker.define_func("env", "f", FuncType(), lambda: None)
    shadowing = Linker(allow_shadowing=True)
    shadowing.define_func("env", "f", FuncType(), lambda: None)
    second = shadowing.define_func("env", "f", FuncType([I32], []), lambda x: None)
    assert shadowing.get("env", "f") is second
    assert len(shadowing) == 1


@pytest.mark.parametrize("bad", [42, "func", lambda: None, None])
def test_define_requires_an_extern(bad: object) -> None:
    with pytest.raises(TypeError):
        Linker().define("env", "x", bad)  # type: ignore[arg-type]


def test_define_func_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        Linker().define_func("env", "f", "func [] -> []", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Linker().define_func("env", "f", FuncType(), 42)  # type: ignore[arg-type]


def test_iterating_a_linker() -> None:
    linker = Linker()
    memory = Memory(MemoryType(1))
    linker.define("a", "m", memory)
    assert list(linker) == [("a", "m", memory)]
    assert linker.get("a", "absent") is None


# -- start functions ----------------------------------------------------------------

START_SETS_GLOBAL = """
(module
  (global $g (export "g") (mut i32) (i32.const 0))
  (func $init (global.set $g (i32.const 42)))
  (start $init))
"""


def test_start_function_runs_at_instantiation() -> None:
    instance = Linker().instantiate(Module(wat(START_SETS_GLOBAL)))
    assert instance.exports["g"].value == 42


def test_trap_in_start_propagates() -> None:
    module = Module(wat("(module (func $boom unreachable) (start $boom))"))
    with pytest.raises(Trap) as info:
        Linker().instantiate(module)
    assert info.value.kind == "unreachable"


def test_start_calling_host_sees_effects_in_order() -> None:
    seen = []
    linker = Linker()
    linker.define_func("env", "log", FuncType([I32], []), seen.append)
    linker.instantiate(
        Module(
            wat(
                """(module (import "env" "log" (func $log (param i32)))
                     (func $main (call $log (i32.const 1)) (call $log (i32.const 2)))
                     (start $main))"""
            )
        )
    )
    assert seen == [1, 2]


def test_async_host_function_in_start_is_refused() -> None:
    async def later(x: int) -> None:
        return None

    linker = Linker()
    linker.define_func("env", "log", FuncType([I32], []), later)
    module = Module(wat('(module (import "env" "log" (func $log (param i32))) (func $m (call $log (i32.const 1))) (start $m))'))
    with pytest.raises(RuntimeError, match="awaitable"):
        linker.instantiate(module)


# -- limits -----------------------------------------------------------------------------

GROWS = """
(module
  (memory (export "mem") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
"""


def test_max_memory_pages_caps_growth() -> None:
    instance = Linker().instantiate(Module(wat(GROWS)), Limits(max_memory_pages=3))
    grow = instance.exports["grow"]
    assert grow(1) == 1
    assert grow(1) == 2
    assert grow(1) == -1  # would be 4 pages: refused, the guest sees -1
    assert instance.exports["mem"].size == 3


def test_max_memory_pages_below_minimum_fails() -> None:
    module = Module(wat("(module (memory 4))"))
    with pytest.raises(WasmError) as info:
        Instance(module, limits=Limits(max_memory_pages=2))
    assert not isinstance(info.value, Trap)  # no guest code ran


def test_max_call_depth_applies_to_start() -> None:
    recursive = """
    (module
      (global $n (mut i32) (i32.const 0))
      (func $down (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (if (i32.lt_u (global.get $n) (i32.const 200)) (then (call $down))))
      (start $down))
    """
    module = Module(wat(recursive))
    Instance(module, limits=Limits(max_call_depth=1000))
    with pytest.raises(Trap) as info:
        Instance(module, limits=Limits(max_call_depth=100))
    assert info.value.kind == "call stack exhausted"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_memory_pages": -1}, ValueError),
        ({"max_memory_pages": (1 << 48) + 1}, ValueError),
        ({"max_memory_pages": 1.5}, TypeError),
        ({"max_table_elements": True}, TypeError),
        ({"max_call_depth": 0}, ValueError),
        ({"fuel": -5}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": "1s"}, TypeError),
    ],
)
def test_limits_validate_their_fields(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        Limits(**kwargs)


def test_limits_are_frozen() -> None:
    limits = Limits(max_call_depth=5)
    with pytest.raises(AttributeError):
        limits.max_call_depth = 6  # type: ignore[misc]
    assert limits == Limits(max_call_depth=5)
