"""Bad input to the public API gets a clear error: the right exception type,
and a message that names what was wrong (the parameter, the type given, what
is accepted). One row per entry point; a message that regresses to Python's
generic "'X' object has no attribute 'y'" fails here."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import trio

import asyncwasm
from asyncwasm import (
    FUNCREF, I32, Func, FuncType, Global, GlobalType, Instance, Limits, Linker, Memory, MemoryType, Module,
    Table, TableType, WasiConfig,
)

from .wat import wat

ADD = wat("""(module
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "spin") (loop (br 0)))
  (memory (export "memory") 1)
  (global (export "const") i32 (i32.const 7)))""")


@pytest.fixture(scope="module")
def module() -> Module:
    return Module(ADD)


def _instance(module: Module, **limits: Any) -> Instance:
    return Linker().instantiate(module, limits=Limits(**limits))


def _func(instance: Instance, name: str) -> Func:
    func = instance.exports[name]
    assert isinstance(func, Func)
    return func


# (label, call, exception type, message pattern)
CASES: list[tuple[str, Callable[[Module], object], type[BaseException], str]] = [
    # Limits
    ("Limits fuel type", lambda m: Limits(fuel="10"), TypeError, r"Limits\.fuel must be an int or None, not str"),
    ("Limits fuel range", lambda m: Limits(fuel=-1), ValueError, r"Limits\.fuel must be >= 0, not -1"),
    ("Limits pages range", lambda m: Limits(max_memory_pages=(1 << 48) + 1), ValueError,
     r"max_memory_pages must be <= 281474976710656"),
    ("Limits depth", lambda m: Limits(max_call_depth=0), ValueError, r"max_call_depth must be >= 1"),
    ("Limits bool", lambda m: Limits(max_call_depth=True), TypeError, r"max_call_depth must be an int or None, not bool"),
    ("Limits timeout", lambda m: Limits(timeout=0), ValueError, r"Limits\.timeout must be > 0 seconds"),
    ("Limits timeout nan", lambda m: Limits(timeout=float("nan")), ValueError, r"Limits\.timeout must be > 0"),
    ("Limits timeout type", lambda m: Limits(timeout="1"), TypeError, r"Limits\.timeout must be a number of seconds"),
    ("Limits yield None", lambda m: Limits(yield_interval=None), TypeError, r"yield_interval must be a number"),
    # Module
    ("Module text", lambda m: Module("(module)"), TypeError, r"text format is not supported"),
    ("Module int", lambda m: Module(3), TypeError, r"bytes-like object, not int"),
    ("Module bad bytes", lambda m: Module(b"\0asm\1\0\0\0\xff"), asyncwasm.MalformedError, r"at offset 0x8"),
    # Linker
    ("Linker positional", lambda m: Linker(True), TypeError, r"positional argument"),
    ("define names", lambda m: Linker().define(1, "x", Memory(MemoryType(1))), TypeError,
     r"module and name must be str, not int and str"),
    ("define extern", lambda m: Linker().define("a", "x", 3), TypeError,
     r"can only define a Func, Memory, Table, Global or Tag, not int"),
    ("define_func functype", lambda m: Linker().define_func("a", "f", [I32], print), TypeError,
     r"functype must be a FuncType, not list"),
    ("define_func callable", lambda m: Linker().define_func("a", "f", FuncType(), 3), TypeError,
     r"int object is not callable"),
    ("define_wasi config", lambda m: Linker().define_wasi({"argv": []}), TypeError,
     r"define_wasi\(\) needs an asyncwasm\.WasiConfig, not dict"),
    ("WasiConfig argv", lambda m: Linker().define_wasi(WasiConfig(argv="app")), TypeError,
     r"argv must be a sequence of strings, not a single string"),
    ("define_instance", lambda m: Linker().define_instance("app", m), TypeError,
     r"define_instance\(\) needs an asyncwasm\.Instance, not Module"),
    ("resolve", lambda m: Linker().resolve(ADD), TypeError, r"resolve\(\) needs an asyncwasm\.Module, not bytes"),
    ("instantiate module", lambda m: Linker().instantiate(ADD), TypeError,
     r"instantiate\(\) needs an asyncwasm\.Module, not bytes"),
    ("instantiate limits", lambda m: Linker().instantiate(m, {"fuel": 1}), TypeError,
     r"limits must be an asyncwasm\.Limits or None, not dict"),
    ("Instance linker", lambda m: Instance(m, "linker"), TypeError,
     r"linker must be an asyncwasm\.Linker or None, not str"),
    ("unknown import", lambda m: Linker().instantiate(Module(wat('(module (import "env" "f" (func)))'))),
     asyncwasm.LinkError, r'unknown import: "env"\."f" \(func \[\] -> \[\]\) is not defined'),
    # Types
    ("FuncType not a list", lambda m: FuncType(I32), TypeError,
     r"FuncType params must be a sequence of value types, not ValType"),
    ("FuncType string", lambda m: FuncType([], ["i32"]), ValueError, r"'i32' is not a value type \(use asyncwasm\.I32"),
    ("MemoryType type", lambda m: MemoryType("1"), TypeError, r"memory minimum must be an int, not str"),
    ("MemoryType order", lambda m: MemoryType(2, 1), ValueError, r"memory maximum 1 out of range 2\.\.65536"),
    ("TableType element", lambda m: TableType(I32, 1), ValueError, r"must be a reference type, not i32"),
    ("GlobalType content", lambda m: GlobalType(3), ValueError, r"3 is not a value type"),
    ("Global value", lambda m: Global(GlobalType(I32), "x"), TypeError, r"expected i32 \(int\), got str"),
    ("Func callable", lambda m: Func(FuncType(), 3), TypeError, r"Func\(\) needs a callable, not int"),
    # Calls and exports
    ("call arity", lambda m: _func(_instance(m), "add")(1), TypeError, r"takes 2 arguments, got 1"),
    ("call type", lambda m: _func(_instance(m), "add")("1", 2), TypeError, r"argument 1: expected i32 \(int\), got str"),
    ("call range", lambda m: _func(_instance(m), "add")(1 << 40, 2), OverflowError,
     r"argument 1: integer out of range for i32"),
    ("call keywords", lambda m: _func(_instance(m), "add")(a=1), TypeError, r"take no keyword arguments"),
    ("missing export", lambda m: _instance(m).exports["sub"], KeyError,
     r"no export named 'sub' \(exports: 'add', 'spin', 'memory', 'const'\)"),
    ("memory bounds", lambda m: _instance(m).exports["memory"].read(65535, 2), IndexError,
     r"memory access \[65535, 65535 \+ 2\) is out of bounds \(size 65536 bytes\)"),
    ("memory write type", lambda m: _instance(m).exports["memory"].write(0, "text"), TypeError,
     r"bytes-like object is required"),
    ("immutable global", lambda m: setattr(_instance(m).exports["const"], "value", 1), asyncwasm.WasmError,
     r"cannot set an immutable global"),
    ("Memory(int)", lambda m: Memory(3), TypeError, r"Memory\(\) needs an asyncwasm\.MemoryType, not int"),
    ("Func(list, f)", lambda m: Func([I32], print), TypeError, r"Func\(\) needs an asyncwasm\.FuncType, not list"),
    ("Table(int)", lambda m: Table(1), TypeError, r"Table\(\) needs an asyncwasm\.TableType, not int"),
    ("Global(int, value)", lambda m: Global(1, 2), TypeError, r"Global\(\) needs an asyncwasm\.GlobalType, not int"),
    ("execute(None, f)", lambda m: asyncwasm.execute(None, _func(_instance(m), "add"), 1, 2), TypeError,
     r"execute\(\) needs a trio\.Nursery to run in, not NoneType"),
]


@pytest.mark.parametrize(("call", "error", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_refused_clearly(module: Module, call: Callable[[Module], object],
                                      error: type[BaseException], message: str) -> None:
    with pytest.raises(error, match=message):
        call(module)


def test_interrupted_instance_refuses_calls_saying_why(module: Module) -> None:
    instance = _instance(module, timeout=0.01)
    with pytest.raises(asyncwasm.Interrupted, match=r"ran longer than Limits\.timeout=0\.01s") as stopped:
        _func(instance, "spin")()
    assert stopped.value.timeout == 0.01 and instance.interrupted
    with pytest.raises(asyncwasm.Interrupted, match=r"was interrupted \(a call ran past Limits\.timeout=0\.01s\)"
                                                    r".*instantiate the module again"):
        _func(instance, "add")(1, 2)


async def test_call_async_reports_bad_arguments_when_awaited(module: Module) -> None:
    add = _func(_instance(module), "add")
    with pytest.raises(TypeError, match=r"argument 2: expected i32 \(int\), got NoneType"):
        await add.call_async(1, None)
    with pytest.raises(TypeError, match=r"takes 2 arguments, got 0"):
        await add.call_async()
    assert await add.call_async(1, 2) == 3  # a refused call leaves the instance usable


async def test_execute_needs_a_func_and_keeps_argument_errors_for_result(module: Module) -> None:
    add = _func(_instance(module), "add")
    async with trio.open_nursery() as nursery:
        with pytest.raises(TypeError, match=r"execute\(\) needs an asyncwasm\.Func, not function"):
            asyncwasm.execute(nursery, lambda: 3)
        execution = asyncwasm.execute(nursery, add, "x", 1)
        with pytest.raises(TypeError, match=r"argument 1: expected i32 \(int\), got str"):
            await execution.result()


def test_async_host_function_in_a_sync_call_says_what_to_do(module: Module) -> None:
    async def later() -> int:
        return 1

    linker = Linker()
    linker.define_func("env", "later", FuncType([], [I32]), later)
    guest = linker.instantiate(Module(wat('''(module (import "env" "later" (func $l (result i32)))
                                                 (func (export "go") (result i32) (call $l)))''')))
    with pytest.raises(RuntimeError, match=r"host function '.*later' returned an awaitable during a synchronous "
                                           r"call; use call_async"):
        _func(guest, "go")()


def test_table_type_of_funcref_is_accepted_by_its_byte() -> None:
    # The integer byte stays accepted where a ValType is expected (not a bad input).
    assert TableType(0x70, 1) == TableType(FUNCREF, 1)
