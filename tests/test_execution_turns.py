"""Cross-instance turns: a guest's call into another instance's function
(imported through define_instance, or reached through a shared table)
takes that instance's turn. A never sees B mid-call; A waits under the
async driver, fails with "busy" on the synchronous path, raises Interrupted
when B is interrupted; B's statistics count the calls; traps, errors and
cancellation give the turn back."""

from __future__ import annotations

import pytest
import trio

import asyncwasm
from asyncwasm import FuncType, I32, Interrupted, Limits, Linker, Module, Trap

from .wat import wat

# B updates two globals around a host call that may suspend: between the
# two, B is "mid-call" and its pair is inconsistent.
LIBRARY = wat("""
(module
  (import "env" "pause" (func $pause (param i32)))
  (global $first (mut i32) (i32.const 0))
  (global $second (mut i32) (i32.const 0))
  (table (export "table") 1 funcref)
  (func $step (export "step") (param i32)
    (global.set $first (local.get 0))
    (call $pause (local.get 0))
    (global.set $second (local.get 0)))
  (func (export "pair") (result i32 i32) (global.get $first) (global.get $second))
  (func (export "boom") (unreachable))
  (elem (i32.const 0) $step))
""")

APP = wat("""
(module
  (import "lib" "step" (func $step (param i32)))
  (import "lib" "pair" (func $pair (result i32 i32)))
  (import "lib" "boom" (func $boom))
  (import "lib" "table" (table 1 funcref))
  (type $step_t (func (param i32)))
  (global $seen (export "seen") (mut i32) (i32.const -1))
  (func (export "run") (param i32) (call $step (local.get 0)))
  (func (export "run_indirect") (param i32) (call_indirect (type $step_t) (local.get 0) (i32.const 0)))
  (func (export "check") (result i32)
    (local $a i32) (local $b i32)
    (call $pair) (local.set $b) (local.set $a)
    (global.set $seen (i32.sub (local.get $a) (local.get $b)))
    (global.get $seen))
  (func (export "boom") (call $boom))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
""")


class _Pause:
    """The library's host function: suspends when given an event to wait for."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release: trio.Event | None = None
        self.calls = 0

    async def __call__(self, value: int) -> None:
        self.calls += 1
        self.entered.set()
        if self.release is not None:
            await self.release.wait()


def _pair(pause=None, app_limits=None, lib_limits=None):
    lib_linker = Linker()
    lib_linker.define_func("env", "pause", FuncType([I32], []), pause or (lambda value: None))
    library = lib_linker.instantiate(Module(LIBRARY), limits=lib_limits)
    linker = Linker()
    linker.define_instance("lib", library)
    return library, linker.instantiate(Module(APP), limits=app_limits), linker


def _func(instance: asyncwasm.Instance, name: str) -> asyncwasm.Func:
    func = instance.exports[name]
    assert isinstance(func, asyncwasm.Func)
    return func


async def test_a_never_sees_b_mid_call_while_b_runs_in_another_task() -> None:
    """B suspended mid-call in task 1; A's call into B from task 2 waits for B's turn."""
    pause = _Pause()
    pause.release = trio.Event()
    library, app, _ = _pair(pause)
    order = []

    async def b_from_python():
        await _func(library, "step").call_async(7)
        order.append("b done")

    async def a_checks():
        seen = await _func(app, "check").call_async()
        order.append(f"a saw {seen}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(b_from_python)
        await pause.entered.wait()  # B is mid-call: first = 7, second = 0
        nursery.start_soon(a_checks)
        await trio.sleep(0.01)
        assert order == [] and _func(app, "check") is not None  # A is waiting for B's turn
        pause.release.set()
    assert order == ["b done", "a saw 0"]


async def test_b_never_sees_a_half_done_call_into_it() -> None:
    """A suspended inside B (its call into B pauses); B's own callers wait."""
    pause = _Pause()
    pause.release = trio.Event()
    library, app, _ = _pair(pause)
    pairs = []

    async def reader():
        pairs.append(await _func(library, "pair").call_async())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_func(app, "run").call_async, 5)
        await pause.entered.wait()  # A's fiber is inside B
        nursery.start_soon(reader)
        await trio.sleep(0.01)
        assert pairs == []
        with pytest.raises(RuntimeError, match="the instance is busy"):
            _func(library, "pair")()  # synchronous: cannot wait
        pause.release.set()
    assert pairs == [(5, 5)]


async def test_many_tasks_alternating_never_see_an_inconsistent_pair() -> None:
    async def pause(value: int) -> None:
        await trio.sleep(0.001 * (value % 3))

    library, app, linker = _pair(pause)
    apps = [app] + [linker.instantiate(Module(APP)) for _ in range(3)]
    seen = []

    async def worker(number: int):
        for round_ in range(10):
            if (number + round_) % 2:
                await _func(apps[number], "run").call_async(number * 100 + round_)
            else:
                seen.append(await _func(apps[number], "check").call_async())
            pairs = await _func(library, "pair").call_async()
            seen.append(pairs[0] - pairs[1])

    async with trio.open_nursery() as nursery:
        for number in range(4):
            nursery.start_soon(worker, number)
    assert len(seen) == 60 and set(seen) == {0}


async def test_the_synchronous_path_raises_busy_and_leaves_both_usable() -> None:
    pause = _Pause()
    pause.release = trio.Event()
    library, app, linker = _pair(pause)
    guarded = linker.instantiate(Module(APP), limits=Limits(fuel=1_000_000))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_func(library, "step").call_async, 3)
        await pause.entered.wait()
        for instance in (app, guarded):  # the fast path and the driven sync path
            with pytest.raises(RuntimeError, match="the instance is busy.*from another instance's code"):
                _func(instance, "check")()
            assert not instance.interrupted
        pause.release.set()
    assert _func(app, "check")() == 0 and _func(guarded, "check")() == 0
    assert not library.interrupted


async def test_an_interrupted_b_makes_a_raise_interrupted() -> None:
    pause = _Pause()
    pause.release = trio.Event()  # never set: the call is cancelled
    library, app, _ = _pair(pause)
    with trio.move_on_after(0.01):
        await _func(library, "step").call_async(1)
    assert library.interrupted
    with pytest.raises(Interrupted, match="interrupted"):
        _func(app, "check")()
    with pytest.raises(Interrupted):
        await _func(app, "check").call_async()
    assert not app.interrupted  # A only saw B refuse


async def test_a_waiting_for_b_gets_interrupted_when_b_does() -> None:
    pause = _Pause()
    pause.release = trio.Event()
    library, app, _ = _pair(pause)
    result = []

    async def a_checks():
        try:
            await _func(app, "check").call_async()
        except Interrupted as exc:
            result.append(exc)

    async with trio.open_nursery() as nursery:
        b_scope = trio.CancelScope()

        async def b_runs():
            with b_scope:
                await _func(library, "step").call_async(1)

        nursery.start_soon(b_runs)
        await pause.entered.wait()
        nursery.start_soon(a_checks)
        await trio.sleep(0.005)
        b_scope.cancel()
    assert library.interrupted and len(result) == 1


async def test_cancelling_a_inside_b_interrupts_both_and_frees_b() -> None:
    pause = _Pause()
    pause.release = trio.Event()
    library, app, _ = _pair(pause)
    with trio.move_on_after(0.01):
        await _func(app, "run").call_async(9)
    assert app.interrupted and library.interrupted
    with trio.fail_after(1):  # refused at once, not waiting for a turn nobody gives back
        with pytest.raises(Interrupted, match="stopped while running in it"):
            await _func(library, "pair").call_async()


async def test_a_trap_inside_b_gives_the_turn_back() -> None:
    library, app, _ = _pair()
    with pytest.raises(Trap, match="unreachable"):
        await _func(app, "boom").call_async()
    with trio.fail_after(1):
        assert await _func(library, "pair").call_async() == (0, 0)
    assert not library.interrupted and not app.interrupted


async def test_a_host_error_inside_b_gives_the_turn_back() -> None:
    async def pause(value: int) -> None:
        raise ValueError("host bug")

    library, app, _ = _pair(pause)
    with pytest.raises(ValueError, match="host bug"):
        await _func(app, "run").call_async(1)
    with trio.fail_after(1):
        assert await _func(library, "pair").call_async() == (1, 0)


async def test_a_cancelled_while_waiting_for_b_leaves_b_alone() -> None:
    pause = _Pause()
    pause.release = trio.Event()
    library, app, _ = _pair(pause)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_func(library, "step").call_async, 4)
        await pause.entered.wait()
        with trio.move_on_after(0.01):
            await _func(app, "check").call_async()  # waits for B, then is cancelled
        pause.release.set()
    assert app.interrupted  # stopped mid-run in A
    assert not library.interrupted
    assert await _func(library, "pair").call_async() == (4, 4)


async def test_calls_through_a_shared_table_take_the_turn_too() -> None:
    pause = _Pause()
    pause.release = trio.Event()
    library, app, _ = _pair(pause)
    pairs = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_func(app, "run_indirect").call_async, 6)
        await pause.entered.wait()

        async def reader():
            pairs.append(await _func(library, "pair").call_async())

        nursery.start_soon(reader)
        await trio.sleep(0.01)
        assert pairs == []
        pause.release.set()
    assert pairs == [(6, 6)]


def test_b_statistics_count_calls_from_other_instances() -> None:
    library, app, _ = _pair()
    before = library.statistics()
    for value in range(5):
        _func(app, "run")(value)  # the synchronous fast path: counted in C
    middle = library.statistics()
    assert middle.calls - before.calls == 5
    assert middle.fuel_used > before.fuel_used
    guarded_library, guarded_app, _ = _pair(lib_limits=Limits(fuel=1_000_000))
    _func(guarded_app, "check")()
    assert guarded_library.statistics().calls == 1 and guarded_library.statistics().fuel_used > 0


async def test_b_statistics_count_calls_made_under_the_async_driver() -> None:
    library, app, _ = _pair()
    for value in range(3):
        await _func(app, "run").call_async(value)
    stats = library.statistics()
    assert stats.calls == 3 and stats.fuel_used > 0


async def test_reentry_from_b_back_into_a_in_the_same_task() -> None:
    """B's host function calls into A (sync and async) while A's call into B runs."""
    holder: dict[str, asyncwasm.Instance] = {}
    results = []

    async def pause(value: int) -> None:
        app = holder["app"]
        results.append(_func(app, "add")(value, 1))
        results.append(await _func(app, "add").call_async(value, 2))

    library, app, _ = _pair(pause)
    holder["app"] = app
    await _func(app, "run").call_async(10)
    assert results == [11, 12]


async def test_a_cycle_of_waiting_tasks_is_a_deadlock_error() -> None:
    """Task 1 holds A and calls B; task 2 holds B and waits for A."""
    a_paused = trio.Event()
    a_go = trio.Event()
    holder: dict[str, asyncwasm.Instance] = {}
    errors = []

    async def b_pause(value: int) -> None:  # B's host function (task 2): waits for A
        await _func(holder["app"], "add").call_async(1, 2)

    library, _, _ = _pair(b_pause)
    linker = Linker()
    linker.define_instance("lib", library)

    async def a_wait(value: int) -> None:  # A's host function (task 1)
        a_paused.set()
        await a_go.wait()

    linker.define_func("env", "wait", FuncType([I32], []), a_wait)
    app = linker.instantiate(Module(wat("""
    (module
      (import "lib" "step" (func $step (param i32)))
      (import "env" "wait" (func $wait (param i32)))
      (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
      (func (export "run") (call $wait (i32.const 0)) (call $step (i32.const 1))))
    """)))
    holder["app"] = app

    async def task1():
        try:
            await _func(app, "run").call_async()
        except RuntimeError as exc:
            errors.append(str(exc))

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task1)
            await a_paused.wait()  # task 1 holds A
            nursery.start_soon(_func(library, "step").call_async, 2)  # task 2 holds B, waits for A
            await trio.sleep(0.01)
            a_go.set()  # task 1 calls B: the cycle closes
    assert len(errors) == 1 and errors[0].startswith("deadlock")
    assert await _func(library, "pair").call_async() == (2, 2)  # task 2 finished after task 1 let go
