"""Tests of the engine's runtime objects and their Python face
(asyncwasm/_engine/runtime.c, pyengine.c and py_*.c): memories, tables, globals,
host calls, fibers, instantiation and garbage collection.

Modules are written in the text format and converted with wasmtime.wat2wasm.
"""

from __future__ import annotations

import gc
import sys
import traceback
import warnings
import weakref

import pytest

wasmtime = pytest.importorskip("wasmtime")

import asyncwasm._engine as E  # noqa: E402
from asyncwasm._errors import Exit, Frame, LinkError, Trap, WasmError  # noqa: E402
from asyncwasm._types import (  # noqa: E402
    EXTERNREF,
    F32,
    F64,
    FUNCREF,
    I32,
    I64,
    FuncType,
    GlobalType,
    MemoryType,
    TableType,
)

DONE, SUSPEND, OUT_OF_FUEL, TRAP = 0, 1, 2, 3
PAGE = 65536


def compile_wat(wat: str) -> E.CompiledModule:
    return E.compile(wasmtime.wat2wasm(wat))


def instantiate(wat: str, externs=(), **limits) -> E.Instance:
    return E.Instance(compile_wat(wat), list(externs), **limits)


def vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


def test_memory_read_write_grow():
    mem = E.Memory(MemoryType(1, 3))
    assert (mem.size, mem.data_len) == (1, PAGE)
    assert mem.read(0, 4) == b"\0\0\0\0"
    mem.write(10, b"abc")
    assert mem.read(9, 5) == b"\0abc\0"
    assert mem.grow(1) == 1
    assert mem.size == 2 and mem.data_len == 2 * PAGE
    assert mem.read(PAGE, 4) == b"\0\0\0\0"  # fresh pages are zero
    mem.write(2 * PAGE - 1, b"z")
    assert mem.type == MemoryType(2, 3)
    assert mem.grow(0) == 2


def test_memory_bounds_never_clip():
    mem = E.Memory(MemoryType(1))
    with pytest.raises(IndexError):
        mem.read(PAGE - 2, 3)
    with pytest.raises(IndexError):
        mem.write(PAGE - 2, b"abc")
    with pytest.raises(IndexError):
        mem.read(-1, 1)
    with pytest.raises(IndexError):
        mem.read(0, 1 << 70)
    with pytest.raises(TypeError):
        mem.read("0", 1)
    assert mem.read(PAGE, 0) == b""
    assert mem.read(PAGE - 2, 2) == b"\0\0"


def test_memory_view_stays_valid_across_grow():
    mem = E.Memory(MemoryType(1, 10))
    before = mem.view()
    assert len(before) == PAGE and not before.readonly
    before[100:103] = b"xyz"
    assert mem.grow(3) == 1
    # The old view still sees (and writes) the same bytes after the grow.
    assert bytes(before[100:103]) == b"xyz"
    before[200] = 7
    assert mem.read(200, 1) == b"\x07"
    after = mem.view()
    assert len(after) == 4 * PAGE
    after[3 * PAGE] = 9
    assert mem.read(3 * PAGE, 1) == b"\x09"
    assert bytes(after[100:103]) == b"xyz"
    # The buffer protocol works on the object itself, too.
    assert bytes(memoryview(mem)[100:103]) == b"xyz"


def test_memory_view_keeps_memory_alive():
    mem = E.Memory(MemoryType(1))
    mem.write(0, b"alive")
    view = mem.view()
    del mem
    gc.collect()
    assert bytes(view[:5]) == b"alive"


def test_memory_limits():
    mem = E.Memory(MemoryType(1, 5), limit_pages=2)
    assert mem.grow(1) == 1
    with pytest.raises(WasmError):
        mem.grow(1)  # past limit_pages
    assert mem.size == 2
    declared = E.Memory(MemoryType(0, 1))
    assert declared.grow(1) == 0
    with pytest.raises(WasmError):
        declared.grow(1)  # past the declared maximum
    with pytest.raises(ValueError):
        E.Memory(MemoryType(3), limit_pages=2)
    with pytest.raises(ValueError):
        E.Memory(MemoryType(1), limit_pages=(1 << 48) + 1)


def test_memory_reserves_only_up_to_its_cap():
    E.release_memory_pool()  # reservations kept from freed memories would be reused
    before = vm_kib("VmSize")
    small = E.Memory(MemoryType(1), limit_pages=16)
    grown = vm_kib("VmSize") - before
    assert grown <= 2 * 1024  # 1 MiB reservation, not 4 GiB
    big = E.Memory(MemoryType(1))
    assert vm_kib("VmSize") - before >= 4 * 1024 * 1024  # 4 GiB of address space, uncommitted
    del small, big


def test_reused_reservation_starts_zeroed_with_its_own_size():
    E.release_memory_pool()
    first = E.Memory(MemoryType(3), limit_pages=16)
    for page in range(3):
        first.write(page * PAGE + 100, b"secret")
    del first  # its reservation is kept for the next 16-page memory
    before = vm_kib("VmSize")
    second = E.Memory(MemoryType(1), limit_pages=16)
    assert vm_kib("VmSize") == before  # reused, not mapped anew
    assert second.size == 1
    assert second.read(100, 6) == bytes(6)  # the old contents are gone
    with pytest.raises(IndexError):
        second.read(PAGE + 100, 6)
    assert second.grow(2) == 1
    assert second.read(PAGE + 100, 6) == bytes(6) and second.read(2 * PAGE + 100, 6) == bytes(6)
    third = E.Memory(MemoryType(5), limit_pages=16)  # none pooled: a new reservation
    assert third.size == 5 and third.read(4 * PAGE, 4) == bytes(4)
    del second, third
    assert E.release_memory_pool() == 2
    assert E.release_memory_pool() == 0


def test_guest_memory_grow_respects_max_memory_pages():
    inst = instantiate(
        """(module (memory (export "m") 1)
             (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))""",
        max_memory_pages=3,
    )
    grow = inst.exports["grow"]
    assert grow(2) == 1
    assert grow(1) == -1
    assert inst.exports["m"].size == 3
    assert inst.memory is inst.exports["m"]


def test_memory_minimum_above_limit_is_a_link_error():
    with pytest.raises(LinkError, match="max_memory_pages"):
        instantiate("(module (memory 4))", max_memory_pages=3)


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def test_externref_table_get_set_grow():
    table = E.Table(TableType(EXTERNREF, 2, 4))
    assert table.size == 2 and table.get(0) is None
    marker = object()
    table.set(1, marker)
    assert table.get(1) is marker
    assert table.grow(1, "init") == 2
    assert table.get(2) == "init"
    assert table.type == TableType(EXTERNREF, 3, 4)
    with pytest.raises(WasmError):
        table.grow(2)  # past the declared maximum
    with pytest.raises(IndexError):
        table.get(3)
    with pytest.raises(IndexError):
        table.set(-1, None)
    table.set(1, None)
    assert table.get(1) is None


def test_table_keeps_its_references_alive():
    class Token:
        pass

    table = E.Table(TableType(EXTERNREF, 1))
    token = Token()
    table.set(0, token)
    count = sys.getrefcount(token)
    table.set(0, None)
    assert sys.getrefcount(token) == count - 1


def test_funcref_table_type_checks_and_limit():
    f = E.Func(FuncType([], [I32]), lambda: 7)
    table = E.Table(TableType(FUNCREF, 1), f, limit_elements=3)
    assert table.get(0) is f and table.get(0)() == 7
    with pytest.raises(TypeError):
        table.set(0, "not a function")
    assert table.grow(2) == 1
    with pytest.raises(WasmError):
        table.grow(1)  # past limit_elements
    with pytest.raises(ValueError):
        E.Table(TableType(FUNCREF, 5), limit_elements=4)


def test_guest_table_grow_respects_max_table_elements():
    inst = instantiate(
        """(module (table (export "t") 1 externref)
             (func (export "grow") (param i32) (result i32)
               ref.null extern local.get 0 table.grow 0))""",
        max_table_elements=4,
    )
    assert inst.exports["grow"](3) == 1
    assert inst.exports["grow"](1) == -1
    assert inst.exports["t"].size == 4


# ---------------------------------------------------------------------------
# Globals
# ---------------------------------------------------------------------------


def test_global_value_and_raw():
    g = E.Global(GlobalType(I32, True), 0xFFFFFFFF)  # unsigned range wraps
    assert g.value == -1 and g.raw == 0xFFFFFFFF
    g.value = -2
    assert g.raw == 0xFFFFFFFE
    g.raw = 5
    assert g.value == 5
    f = E.Global(GlobalType(F32, True), 1.5)
    assert f.value == 1.5 and f.raw == 0x3FC00000
    d = E.Global(GlobalType(F64, False), 3)  # int accepted for floats
    assert d.value == 3.0 and isinstance(d.value, float)
    big = E.Global(GlobalType(I64, True), 2**64 - 1)
    assert big.value == -1 and big.raw == 2**64 - 1
    assert g.type == GlobalType(I32, True)


def test_global_type_checks():
    g = E.Global(GlobalType(I32, True), 1)
    with pytest.raises(TypeError):
        g.value = 1.5
    with pytest.raises(TypeError):
        g.value = "1"
    with pytest.raises(OverflowError):
        g.value = 2**32
    with pytest.raises(OverflowError):
        g.value = -(2**31) - 1
    assert g.value == 1
    const = E.Global(GlobalType(I64, False), 1)
    with pytest.raises(WasmError, match="immutable"):
        const.value = 2
    ref = E.Global(GlobalType(FUNCREF, True), None)
    with pytest.raises(TypeError):
        ref.value = 3
    func = E.Func(FuncType([], []), lambda: None)
    ref.value = func
    assert ref.value is func


def test_global_exports_and_imported_global_in_const_expr():
    base = E.Global(GlobalType(I32, False), 40)
    inst = instantiate(
        """(module (import "env" "base" (global $b i32))
             (global (export "g") (mut i32) (global.get $b))
             (func (export "bump") (result i32)
               global.get 1 i32.const 2 i32.add global.set 1 global.get 1))""",
        [base],
    )
    g = inst.exports["g"]
    assert g.value == 40
    assert inst.exports["bump"]() == 42
    assert g.value == 42
    g.value = 0
    assert inst.exports["bump"]() == 2


# ---------------------------------------------------------------------------
# Host functions
# ---------------------------------------------------------------------------

CALL_HOST = """(module
  (import "env" "h" (func $h (param i32 i64 f32 f64) (result i32)))
  (func (export "call") (param i32 i64 f32 f64) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $h))"""


def test_host_function_plain_result_and_argument_conversion():
    seen = []

    def h(a, b, c, d):
        seen.append((a, b, c, d))
        return a + 1

    inst = instantiate(CALL_HOST, [E.Func(FuncType([I32, I64, F32, F64], [I32]), h)])
    assert inst.exports["call"](-5, 2**63 - 1, 0.5, 2.25) == -4
    assert seen == [(-5, 2**63 - 1, 0.5, 2.25)]
    assert inst.exports["call"](0xFFFFFFFF, -1, 1, 2) == 0  # -1 + 1
    assert seen[-1] == (-1, -1, 1.0, 2.0)


def test_host_function_multiple_results():
    pair = E.Func(FuncType([I32], [I32, I64]), lambda x: (x, x * 2))
    inst = instantiate(
        """(module (import "env" "pair" (func $p (param i32) (result i32 i64)))
             (func (export "f") (param i32) (result i32 i64) local.get 0 call $p))""",
        [pair],
    )
    assert inst.exports["f"](21) == (21, 42)
    assert inst.exports["f"].call_raw(-1) == (0xFFFFFFFF, 2**64 - 2)
    assert pair(3) == (3, 6)  # host Func called directly
    listy = E.Func(FuncType([], [I32, I32]), lambda: [1, 2])
    assert listy() == (1, 2)
    with pytest.raises(TypeError, match="sequence of 2 values"):
        E.Func(FuncType([], [I32, I32]), lambda: {1, 2})()


def test_host_function_with_many_params_and_results():
    params = [I32, I64, F32, F64] * 3  # 12 args: more than fit on the C stack array
    results = [I64] * 17  # 17 result slots: more than the small result buffer
    host = E.Func(FuncType(params, results), lambda *args: tuple(range(len(results))))
    wat_params = " ".join(str(t) for t in params)
    gets = " ".join(f"local.get {i}" for i in range(len(params)))
    inst = instantiate(
        f"""(module (import "env" "h" (func $h (param {wat_params}) (result {" ".join(["i64"] * 17)})))
             (func (export "f") (param {wat_params}) (result {" ".join(["i64"] * 17)}) {gets} call $h))""",
        [host],
    )
    args = [1, 2, 3.0, 4.0] * 3
    assert inst.exports["f"](*args) == tuple(range(17))
    assert inst.exports["f"].type == FuncType(params, results)


def test_v128_values_convert_as_128_bit_ints():
    from asyncwasm._types import V128

    echo = E.Func(FuncType([V128], [V128]), lambda v: v)
    assert echo(2**128 - 1) == 2**128 - 1
    assert echo(-1) == 2**128 - 1  # two's complement
    assert echo(2**64 + 5) == 2**64 + 5
    assert echo.call_raw(7) == (7,)
    with pytest.raises(OverflowError):
        echo(2**128)
    g = E.Global(GlobalType(V128, True), 2**100)
    assert g.value == 2**100


def test_host_function_bad_results_raise_type_error_naming_it():
    def wrong_type(x):
        return "nope"

    def wrong_count(x):
        return (1, 2, 3)

    def not_none(x):
        return 5

    for fn, results, message in [
        (wrong_type, [I32], "wrong_type"),
        (wrong_count, [I32, I32], "returned 3 values, expected 2"),
        (not_none, [], "must return None"),
    ]:
        f = E.Func(FuncType([I32], results), fn)
        with pytest.raises(TypeError, match=message):
            f(1)


def test_host_trap_is_raised_as_the_same_exception():
    raised = Trap("host says no")

    def h(*args):
        raise raised

    inst = instantiate(CALL_HOST, [E.Func(FuncType([I32, I64, F32, F64], [I32]), h)])
    with pytest.raises(Trap) as info:
        inst.exports["call"](1, 2, 3.0, 4.0)
    assert info.value is raised
    assert info.value.kind == "host says no"


def test_host_exception_keeps_its_traceback():
    def failing_host(*args):
        raise KeyError("inner detail")

    inst = instantiate(CALL_HOST, [E.Func(FuncType([I32, I64, F32, F64], [I32]), failing_host)])
    with pytest.raises(KeyError) as info:
        inst.exports["call"](1, 2, 3.0, 4.0)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "failing_host" in names


def test_exit_passes_through():
    def h(*args):
        raise Exit(3)

    inst = instantiate(CALL_HOST, [E.Func(FuncType([I32, I64, F32, F64], [I32]), h)])
    with pytest.raises(Exit) as info:
        inst.exports["call"](1, 2, 3.0, 4.0)
    assert info.value.code == 3


def test_reentry_from_host_into_the_same_instance():
    box = {}

    def h(x):
        return box["double"](x) + 1

    inst = instantiate(
        """(module (import "env" "h" (func $h (param i32) (result i32)))
             (func (export "double") (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
             (func (export "outer") (param i32) (result i32) local.get 0 call $h))""",
        [E.Func(FuncType([I32], [I32]), h)],
    )
    box["double"] = inst.exports["double"]
    assert inst.exports["outer"](20) == 41


# ---------------------------------------------------------------------------
# Fibers and suspension
# ---------------------------------------------------------------------------


class Ready:
    """A minimal awaitable (has __await__, so the engine suspends on it)."""

    def __init__(self, value):
        self.value = value

    def __await__(self):
        return self.value
        yield  # pragma: no cover


def test_fiber_suspends_on_awaitable_and_resumes():
    awaited = Ready(10)
    h = E.Func(FuncType([I32], [I32]), lambda x: awaited)
    inst = instantiate(
        """(module (import "env" "h" (func $h (param i32) (result i32)))
             (func (export "f") (param i32) (result i32)
               local.get 0 call $h i32.const 1 i32.add))""",
        [h],
    )
    fiber = E.Fiber(inst.exports["f"], (5,))
    assert fiber.state == -1
    assert fiber.run(1_000_000) == SUSPEND
    assert fiber.awaitable is awaited
    with pytest.raises(RuntimeError, match="resume"):
        fiber.run(1000)
    fiber.resume(41)
    assert fiber.awaitable is None
    assert fiber.run(1_000_000) == DONE
    assert fiber.results == (42,)
    assert fiber.host_calls == 1 and fiber.suspensions == 1


def test_fiber_resume_with_bad_value_kills_the_fiber():
    h = E.Func(FuncType([], [I32]), lambda: Ready(0))
    fiber = E.Fiber(h, ())
    assert fiber.run(100) == SUSPEND
    with pytest.raises(TypeError, match="lambda"):
        fiber.resume("not an int")
    with pytest.raises(RuntimeError):
        fiber.run(100)


def test_fiber_throw_trap_and_other_exception():
    h = E.Func(FuncType([], []), lambda: Ready(None))
    inst = instantiate(
        """(module (import "env" "h" (func $h)) (func (export "f") call $h))""", [h]
    )
    fiber = E.Fiber(inst.exports["f"], ())
    assert fiber.run(1000) == SUSPEND
    trap = Trap("thrown in")
    fiber.throw(trap)
    assert fiber.state == TRAP
    assert fiber.trap() is trap

    fiber = E.Fiber(inst.exports["f"], ())
    assert fiber.run(1000) == SUSPEND
    fiber.throw(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        fiber.run(1000)


def test_host_entry_fiber_suspends_and_finishes():
    h = E.Func(FuncType([I32], [I32, I32]), lambda x: Ready(None))
    fiber = E.Fiber(h, (1,))
    assert fiber.run(10) == SUSPEND
    fiber.resume((3, -4))
    assert fiber.run(10) == DONE
    assert fiber.results == (3, -4)


def test_sync_call_refuses_awaitable_and_closes_coroutine():
    async def later():
        return 1

    h = E.Func(FuncType([], [I32]), lambda: later())
    inst = instantiate(
        """(module (import "env" "h" (func $h (result i32))) (func (export "f") (result i32) call $h))""",
        [h],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would fail here
        with pytest.raises(RuntimeError, match="awaitable during a synchronous call; use call_async"):
            inst.exports["f"]()
        gc.collect()


def test_fiber_fuel_slices():
    inst = instantiate(
        """(module (func (export "count") (param i32) (result i32) (local i32)
             (loop $l
               local.get 1 i32.const 1 i32.add local.set 1
               local.get 1 local.get 0 i32.lt_s br_if $l)
             local.get 1))"""
    )
    fiber = E.Fiber(inst.exports["count"], (1000,))
    slices = 0
    while (outcome := fiber.run(100)) == OUT_OF_FUEL:
        slices += 1
        assert fiber.fuel_needed > 0
    assert outcome == DONE and fiber.results == (1000,)
    assert slices > 10
    assert fiber.fuel_used > 1000


def test_fiber_raw_mode_and_argument_checks():
    inst = instantiate(
        """(module (func (export "id") (param i32 f32) (result i32 f32) local.get 0 local.get 1))"""
    )
    fiber = E.Fiber(inst.exports["id"], (0xFFFFFFFF, 0x3F800000), raw=True)
    assert fiber.run(100) == DONE
    assert fiber.results == (0xFFFFFFFF, 0x3F800000)
    assert inst.exports["id"](-1, 1.0) == (-1, 1.0)
    with pytest.raises(TypeError, match="2 arguments"):
        inst.exports["id"](1)
    with pytest.raises(TypeError, match="argument 1"):
        inst.exports["id"](1.5, 1.0)
    with pytest.raises(OverflowError):
        inst.exports["id"](2**32, 1.0)
    with pytest.raises(TypeError):
        E.Fiber(inst.exports["id"], (1,))


# ---------------------------------------------------------------------------
# Traps from the guest
# ---------------------------------------------------------------------------


def test_guest_trap_has_kind_and_named_frames():
    inst = instantiate(
        """(module
             (func $inner (export "inner") (param i32) (result i32)
               local.get 0 i32.const 0 i32.div_u)
             (func $outer (export "outer") (param i32) (result i32)
               local.get 0 call $inner))"""
    )
    with pytest.raises(Trap) as info:
        inst.exports["outer"](1)
    trap = info.value
    assert trap.kind == "integer divide by zero"
    assert [f.func_name for f in trap.frames] == ["inner", "outer"]
    assert all(isinstance(f, Frame) for f in trap.frames)
    assert trap.frames[0].module_offset is not None and trap.frames[0].module_offset > 0

    fiber = E.Fiber(inst.exports["outer"], (1,))
    assert fiber.run(1000) == TRAP
    assert fiber.trap().kind == "integer divide by zero"
    assert fiber.trap() is fiber.trap()


def test_trap_messages_table_is_complete():
    assert E.TRAP_MESSAGES[0] == ""
    assert all(E.TRAP_MESSAGES[1:])
    assert "out of bounds memory access" in E.TRAP_MESSAGES


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


def test_externref_round_trip_and_table_ownership():
    class Token:
        pass

    inst = instantiate(
        """(module (table $t (export "t") 2 externref)
             (func (export "id") (param externref) (result externref) local.get 0)
             (func (export "put") (param externref) i32.const 0 local.get 0 table.set $t)
             (func (export "take") (result externref)
               (local $r externref)
               (local.set $r (table.get $t (i32.const 0)))
               (table.set $t (i32.const 0) (ref.null extern))
               local.get $r))"""
    )
    token = Token()
    assert inst.exports["id"](token) is token
    assert inst.exports["id"](None) is None
    inst.exports["put"](Token())  # the table now holds the only reference
    gc.collect()
    assert isinstance(inst.exports["t"].get(0), Token)
    # The guest drops the table's reference while the value is on its stack;
    # the value must survive until it is returned.
    taken = inst.exports["take"]()
    assert isinstance(taken, Token)
    assert inst.exports["t"].get(0) is None


def test_funcref_from_guest_is_the_export_object():
    inst = instantiate(
        """(module (func $f (export "f") (result i32) i32.const 9)
             (elem declare func $f)
             (func (export "get") (result funcref) ref.func $f))"""
    )
    f = inst.exports["get"]()
    assert f is inst.exports["f"]
    assert f() == 9


# ---------------------------------------------------------------------------
# Instantiation
# ---------------------------------------------------------------------------


def test_instance_exports_start_and_segments():
    inst = instantiate(
        """(module $demo
             (memory (export "mem") 1)
             (table (export "tab") 3 funcref)
             (global (export "g") i32 (i32.const 3))
             (func $one (result i32) i32.const 1)
             (func $two (result i32) i32.const 2)
             (func $init)
             (func (export "dispatch") (param i32) (result i32) local.get 0 call_indirect (result i32))
             (elem (i32.const 1) $one $two)
             (data (i32.const 8) "seg")
             (start $init))"""
    )
    ex = inst.exports
    assert set(ex) == {"mem", "tab", "g", "dispatch"}
    assert isinstance(ex["mem"], E.Memory) and isinstance(ex["tab"], E.Table)
    assert isinstance(ex["g"], E.Global) and isinstance(ex["dispatch"], E.Func)
    assert ex["mem"].read(8, 3) == b"seg"
    assert ex["dispatch"](1) == 1 and ex["dispatch"](2) == 2
    with pytest.raises(Trap, match="uninitialized element"):
        ex["dispatch"](0)
    assert ex["tab"].get(2)() == 2
    assert isinstance(inst.start, E.Func)
    assert inst.exports["dispatch"] is ex["dispatch"]  # Func objects are cached


def test_out_of_bounds_data_segment_keeps_earlier_writes():
    mem = E.Memory(MemoryType(1))
    wat = """(module (import "env" "mem" (memory 1))
               (data (i32.const 0) "abc")
               (data (i32.const 65534) "xyz"))"""
    with pytest.raises(Trap) as info:
        instantiate(wat, [mem])
    assert info.value.kind == "out of bounds memory access"
    assert mem.read(0, 3) == b"abc"
    assert mem.read(65534, 2) == b"\0\0"


def test_out_of_bounds_elem_segment_keeps_earlier_writes_and_skips_data():
    table = E.Table(TableType(FUNCREF, 2))
    mem = E.Memory(MemoryType(1))
    wat = """(module (import "env" "t" (table 2 funcref)) (import "env" "m" (memory 1))
               (func $f (result i32) i32.const 5)
               (elem (i32.const 0) $f)
               (elem (i32.const 1) $f $f)
               (data (i32.const 0) "never"))"""
    with pytest.raises(Trap) as info:
        instantiate(wat, [table, mem])
    assert info.value.kind == "out of bounds table access"
    assert table.get(0)() == 5  # the first segment stays, and keeps its instance alive
    assert table.get(1) is None
    assert mem.read(0, 5) == b"\0" * 5


def test_link_errors():
    wat = """(module (import "env" "f" (func (param i32))) (import "env" "m" (memory 2)))"""
    compiled = compile_wat(wat)
    good_f = E.Func(FuncType([I32], []), lambda x: None)
    with pytest.raises(LinkError, match="2 imports"):
        E.Instance(compiled, [good_f])
    with pytest.raises(LinkError, match="incompatible import type"):
        E.Instance(compiled, [E.Func(FuncType([I64], []), lambda x: None), E.Memory(MemoryType(2))])
    with pytest.raises(LinkError, match="expected a memory"):
        E.Instance(compiled, [good_f, good_f])
    with pytest.raises(LinkError, match="expected memory 2"):
        E.Instance(compiled, [good_f, E.Memory(MemoryType(1))])
    E.Instance(compiled, [good_f, E.Memory(MemoryType(3))])  # larger memories match
    with pytest.raises(TypeError):
        E.Instance(wat, [])


def test_compile_errors_carry_offsets():
    from asyncwasm._errors import MalformedError

    with pytest.raises(MalformedError) as info:
        E.compile(b"\0asm\x02\0\0\0")
    assert info.value.offset >= 0


# ---------------------------------------------------------------------------
# Garbage collection
# ---------------------------------------------------------------------------

CYCLIC = """(module
  (import "env" "h" (func $h (param i32) (result i32)))
  (memory (export "mem") 1)
  (table (export "tab") 2 funcref)
  (global (export "g") (mut funcref) (ref.func $f))
  (func $f (export "f") (param i32) (result i32) local.get 0 call $h)
  (elem (i32.const 0) $f)
  (data (i32.const 0) "payload"))"""


def rss_kib() -> int:
    return vm_kib("VmRSS")


@pytest.mark.rss
def test_dropped_instances_are_freed():
    compiled = compile_wat(CYCLIC)
    host = E.Func(FuncType([I32], [I32]), lambda x: x)

    def churn(n):
        for _ in range(n):
            inst = E.Instance(compiled, [host])
            # Every kind of cycle: Func <-> Instance, table and global -> Func.
            assert inst.exports["f"](3) == 3
            inst.exports["tab"].set(1, inst.exports["f"])
        gc.collect()

    churn(200)  # warm up allocator pools
    before = rss_kib()
    churn(2000)
    assert rss_kib() - before < 4 * 1024


def test_instance_and_its_funcs_die_by_reference_count():
    compiled = compile_wat("""(module (memory (export "m") 1) (func (export "f") (result i32) i32.const 5)
                                (func (export "g") (result funcref) ref.func 0) (elem declare func 0))""")
    gc.disable()
    try:
        inst = E.Instance(compiled, [])
        f = inst.exports["f"]
        assert inst.exports["g"]() is f  # the cached Func while it lives
        ref = weakref.ref(inst)
        del inst
        assert ref() is not None and f() == 5  # the Func keeps its instance alive
        del f
        assert ref() is None  # no cycle: freed at once, without the collector
    finally:
        gc.enable()


def test_instance_is_collected_when_unreachable():
    # (A weakref cannot tell: the GC clears weakrefs before breaking cycles.)
    def live_instances():
        return sum(1 for o in gc.get_objects() if type(o) is E.Instance)

    compiled = compile_wat(CYCLIC)
    gc.collect()
    before = live_instances()
    inst = E.Instance(compiled, [E.Func(FuncType([I32], [I32]), lambda x: x)])
    func = inst.exports["f"]
    assert live_instances() == before + 1
    del inst
    gc.collect()
    assert live_instances() == before + 1  # the Func keeps its instance alive
    assert func(4) == 4
    del func
    gc.collect()
    assert live_instances() == before
