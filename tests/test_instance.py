"""asyncwasm.Instance: exports mapping, segments, calls, traps."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Mapping
from typing import Callable

import pytest
import trio

from asyncwasm import (
    FUNCREF, I32, FuelExhausted, Func, FuncType, Global, GlobalType, Instance, Interrupted, Limits, LinkError, Linker,
    Memory, MemoryType, Module, Table, TableType, Trap,
)
from asyncwasm.instance import OneShot

from .wat import wat

EVERYTHING = """
(module
  (func $add (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (memory (export "memory") 1 3)
  (table (export "table") 2 funcref)
  (global (export "answer") (mut i64) (i64.const 42))
  (elem (i32.const 1) $add)
  (data (i32.const 16) "hello")
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "pair") (result i32 f64) i32.const -1 f64.const 2.5))
"""


@pytest.fixture
def instance() -> Instance:
    return Instance(Module(wat(EVERYTHING)))


def test_exports_is_a_read_only_mapping_in_module_order(instance: Instance) -> None:
    exports = instance.exports
    assert isinstance(exports, Mapping)
    assert list(exports) == ["add", "memory", "table", "answer", "div", "pair"]
    assert len(exports) == 6 and "add" in exports and "absent" not in exports
    with pytest.raises(TypeError):
        exports["add"] = None  # type: ignore[index]


def test_export_objects_have_their_kinds(instance: Instance) -> None:
    exports = instance.exports
    assert isinstance(exports["add"], Func)
    assert isinstance(exports["memory"], Memory)
    assert isinstance(exports["table"], Table)
    assert isinstance(exports["answer"], Global)
    assert exports["add"] is exports["add"]


def test_missing_export_lists_the_known_ones(instance: Instance) -> None:
    with pytest.raises(KeyError, match="no export named 'sub'.*'add'"):
        instance.exports["sub"]
    assert instance.exports.get("sub") is None


def test_no_attribute_access_to_exports(instance: Instance) -> None:
    with pytest.raises(AttributeError):
        instance.exports.add  # type: ignore[attr-defined]


def test_calls_and_results(instance: Instance) -> None:
    assert instance.exports["add"](2, 40) == 42
    assert instance.exports["add"](0x7FFFFFFF, 1) == -0x80000000  # i32 wraps, results are signed
    assert instance.exports["pair"]() == (-1, 2.5)


def test_trap_names_kind_and_function(instance: Instance) -> None:
    with pytest.raises(Trap) as info:
        instance.exports["div"](1, 0)
    assert info.value.kind == "integer divide by zero"
    assert info.value.frames and info.value.frames[0].func_index == 1


def test_segments_are_applied(instance: Instance) -> None:
    assert instance.exports["memory"].read(16, 5) == b"hello"
    table = instance.exports["table"]
    assert table.get(0) is None
    assert table.get(1)(3, 4) == 7


def test_global_export(instance: Instance) -> None:
    answer = instance.exports["answer"]
    assert answer.value == 42
    answer.value = 7
    assert instance.exports["answer"].value == 7


def test_instances_do_not_share_state() -> None:
    module = Module(wat(EVERYTHING))
    a, b = Instance(module), Instance(module)
    a.exports["memory"].write(0, b"A")
    assert b.exports["memory"].read(0, 1) == b"\x00"
    assert a.module is module and b.module is module


def test_linker_is_optional_only_without_imports() -> None:
    module = Module(wat('(module (import "env" "f" (func)))'))
    with pytest.raises(LinkError, match="unknown import"):
        Instance(module)
    linker = Linker()
    linker.define_func("env", "f", module.imports[0].type, lambda: None)  # type: ignore[arg-type]
    assert len(Instance(module, linker).exports) == 0


def test_needs_a_module() -> None:
    with pytest.raises(TypeError):
        Instance(wat("(module)"))  # type: ignore[arg-type]


def test_out_of_bounds_data_segment_traps() -> None:
    module = Module(wat('(module (memory 1) (data (i32.const 65535) "ab"))'))
    with pytest.raises(Trap) as info:
        Instance(module)
    assert info.value.kind == "out of bounds memory access"


def test_repr(instance: Instance) -> None:
    assert repr(instance) == "<asyncwasm.Instance: 6 exports>"
    assert repr(instance.exports).startswith("Exports({'add': Func, 'memory': Memory")


def test_externs_show_their_current_type_and_value() -> None:
    memory = Memory(MemoryType(1, 16))
    memory.grow(1)
    assert repr(memory) == "<asyncwasm.Memory memory 2 16>"  # the size now, not the declared minimum
    assert repr(Table(TableType(FUNCREF, 3))) == "<asyncwasm.Table table 3 funcref>"
    assert repr(Global(GlobalType(I32, mutable=True), 5)) == "<asyncwasm.Global global mut i32 = 5>"


NO_TABLE = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
"""


def _freed_without_the_collector(make: Callable[[], object]) -> bool:
    """Whether what ``make()`` returns (and all it made) dies by reference count."""
    gc.disable()
    try:
        gc.collect()
        ref = weakref.ref(make())
        return ref() is None
    finally:
        gc.enable()


def test_an_instance_and_its_python_side_die_by_reference_count() -> None:
    module = Module(wat(NO_TABLE))
    linker = Linker()
    linker.define_wasi()

    def used() -> Instance:
        instance = linker.instantiate(module, limits=Limits(fuel=10_000))  # a gate that guards
        assert instance.exports["add"](2, 3) == 5
        assert instance.statistics().calls == 1
        return instance

    async def used_async() -> Instance:
        instance = await linker.instantiate_async(module)
        assert await instance.exports["add"].call_async(2, 3) == 5
        return instance

    assert _freed_without_the_collector(used)
    instances: list[Instance] = []

    async def main() -> None:
        instances.append(await used_async())

    gc.disable()
    try:
        trio.run(main)
        ref = weakref.ref(instances.pop())
        assert ref() is None
    finally:
        gc.enable()


def test_a_func_keeps_its_instance_and_caller_instance_stands_in_for_a_dropped_one() -> None:
    module = Module(wat("""(module (import "env" "who" (func $who))
                            (func (export "run") (call $who)) (memory (export "memory") 1))"""))
    seen: list[Instance] = []
    linker = Linker()
    linker.define_func("env", "who", FuncType([], []), lambda caller: seen.append(caller.instance),
                       access_caller=True)
    instance = linker.instantiate(module, limits=Limits(fuel=1_000))
    run = instance.exports["run"]
    run()
    assert seen.pop() is instance  # the very object while it lives
    ref = weakref.ref(instance)
    del instance
    assert ref() is None
    run()  # the Func keeps the engine instance, its limits and statistics alive
    standin = seen.pop()
    assert isinstance(standin, Instance) and standin.module is module
    assert standin.limits.fuel == 1_000 and standin.statistics().calls == 2
    assert standin.exports["run"] is run


# -- OneShot: a fresh instance per run -------------------------------------------------------------

SHOT = """
(module
  (import "env" "note" (func $note (param i32)))
  (import "env" "give" (func $give (param funcref)))
  (memory (export "memory") 1)
  (table 1 funcref)
  (elem (i32.const 0) $inc)
  (global $g (mut i32) (i32.const 0))
  (func $inc (export "inc") (result i32)
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (global.get $g))
  (func (export "_start")
    (call $note (call_indirect (result i32) (i32.const 0)))
    (call $note (i32.load (i32.const 0)))
    (call $give (ref.func $inc)))
  (func (export "spin") (loop $l (br $l))))
"""


def _shot(**kwargs: object) -> tuple[OneShot, list[int], list[Func]]:
    module = Module(wat(SHOT))
    notes: list[int] = []
    given: list[Func] = []
    note = Func(FuncType([I32], []), notes.append)
    give = Func(FuncType([FUNCREF], []), given.append)
    return OneShot(module, [note, give], **kwargs), notes, given  # type: ignore[arg-type]


async def test_each_run_is_a_fresh_instance_and_is_released_after() -> None:
    shot, notes, given = _shot()
    for _ in range(3):
        await shot.run()
    assert notes == [1, 1] * 3  # globals and memory start over every run
    assert len(given) == 3
    with pytest.raises(RuntimeError, match="destroyed"):
        given[0]()  # a Func that escaped a run: its instance was released
    stats = shot.statistics()
    assert stats.calls == 3 and stats.host_calls == 9 and stats.fuel_used > 0


async def test_a_run_dies_by_reference_count_despite_its_own_table() -> None:
    shot, _, given = _shot()
    gc.disable()
    try:
        await shot.run()
        ref = weakref.ref(given.pop())
        assert ref() is None  # its table held its own function: released, not left to the collector
    finally:
        gc.enable()


async def test_the_fuel_budget_and_the_timeout_are_per_run() -> None:
    shot, notes, _ = _shot(limits=Limits(fuel=200))
    for _ in range(3):  # one run's fuel does not count against the next
        await shot.run()
    assert notes == [1, 1] * 3
    spinner = OneShot(shot.module, shot._externs, limits=Limits(fuel=10_000), export="spin")
    with pytest.raises(FuelExhausted):
        await spinner.run()
    forever = OneShot(shot.module, shot._externs, export="spin")
    with trio.fail_after(5):
        with pytest.raises(Interrupted, match="timeout of 0.05 s") as info:
            await forever.run(timeout=0.05)
    assert info.value.timeout == 0.05


async def test_the_run_timeout_covers_a_guest_waiting_in_a_host_function() -> None:
    module = Module(wat('(module (import "env" "hang" (func $h)) (func (export "_start") (call $h)))'))
    shot = OneShot(module, [Func(FuncType([], []), trio.sleep_forever)])
    with trio.fail_after(5):
        with pytest.raises(Interrupted) as info:
            await shot.run(timeout=0.02)
    assert info.value.timeout == 0.02
    with trio.move_on_after(0.02) as scope:  # a cancel scope stops a run too
        await shot.run()
    assert scope.cancelled_caught


def test_oneshot_checks_its_arguments() -> None:
    shot, _, _ = _shot()
    with pytest.raises(ValueError, match="no function named 'memory'"):
        OneShot(shot.module, shot._externs, export="memory")
    with pytest.raises(LinkError):
        OneShot(shot.module, shot._externs, limits=Limits(max_memory_pages=0)).check()
    with pytest.raises(LinkError):
        OneShot(shot.module, shot._externs[:1]).check()
