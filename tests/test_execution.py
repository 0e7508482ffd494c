"""The trio driver: call_async, async host functions, cancellation and
interrupted instances, one task per instance, re-entry, handles, statistics.

Limits (fuel, timeout, call depth, memory, tables) are in
test_execution_limits.py; fairness and the loopback echo soak in
test_execution_load.py.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import trio

import asyncwasm
from asyncwasm import FuncType, I32, Interrupted, Limits, Linker, Module, Trap

from .guests.harness import guest_path
from .wat import wat

GUEST = wat("""
(module
  (import "env" "wait" (func $wait (param i32) (result i32)))
  (import "env" "note" (func $note (param i32)))
  (global $g (mut i32) (i32.const 0))
  (func (export "spin") (loop $l (global.set $g (i32.add (global.get $g) (i32.const 1))) (br $l)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "pair") (param i32) (result i32 i32) (local.get 0) (i32.mul (local.get 0) (i32.const 2)))
  (func (export "nothing"))
  (func (export "wait") (param i32) (result i32) (call $wait (local.get 0)))
  (func (export "wait_then_note") (param i32)
    (call $note (call $wait (local.get 0))))
  (func (export "wait_many") (param $n i32) (result i32) (local $sum i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $sum (i32.add (local.get $sum) (call $wait (local.get $n))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $sum))
  (func (export "get") (result i32) (global.get $g))
)
""")

WAIT = FuncType([I32], [I32])
NOTE = FuncType([I32], [])


def _instance(wait=None, note=None, limits=None, linker=None):
    linker = linker or Linker()
    linker.define_func("env", "wait", WAIT, wait or (lambda x: x))
    linker.define_func("env", "note", NOTE, note or (lambda x: None))
    return linker.instantiate(Module(GUEST), limits=limits)


async def _sleep_forever(x):
    await trio.sleep_forever()


async def _ticks_during(call, period: float = 0.0) -> int:
    """How many times a task sleeping ``period`` in a loop ran while
    ``await call()`` ran."""
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await trio.sleep(period)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await call()
        nursery.cancel_scope.cancel()
    return ticks


# -- call_async basics ------------------------------------------------------------


async def test_call_async_returns_what_a_sync_call_returns():
    instance = _instance()
    exports = instance.exports
    assert await exports["add"].call_async(2, 3) == exports["add"](2, 3) == 5
    assert await exports["pair"].call_async(7) == exports["pair"](7) == (7, 14)
    assert await exports["nothing"].call_async() is None
    assert await asyncwasm.execution.call_async(exports["add"], 1, 1) == 2


async def test_async_host_function_suspends_only_its_task():
    ticks = []

    async def wait(x):
        await trio.sleep(0.01)
        return x * 10

    instance = _instance(wait=wait)

    async def ticker():
        for _ in range(5):
            ticks.append(1)
            await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        assert await instance.exports["wait_many"].call_async(3) == 60
    assert len(ticks) == 5
    stats = instance.statistics()
    assert stats.suspensions == 3 and stats.host_calls == 3


async def test_async_host_function_result_is_checked_against_its_type():
    async def wait(x):
        return "not a number"

    instance = _instance(wait=wait)
    with pytest.raises(TypeError):
        await instance.exports["wait"].call_async(1)
    assert not instance.interrupted


async def test_host_functions_called_directly_through_call_async():
    async def double(x):
        await trio.sleep(0)
        return 2 * x

    func = asyncwasm.Func(WAIT, double)
    assert await func.call_async(21) == 42


async def test_sync_call_of_a_suspending_guest_is_refused_clearly():
    instance = _instance(wait=_sleep_forever)
    with pytest.raises(RuntimeError, match="call_async"):
        instance.exports["wait"](1)
    assert not instance.interrupted


# -- errors through the driver ----------------------------------------------------------


async def test_trap_raised_by_an_async_host_function_traps_the_guest():
    boom = Trap("boom from the host")

    async def wait(x):
        await trio.sleep(0)
        raise boom

    instance = _instance(wait=wait)
    with pytest.raises(Trap) as info:
        await instance.exports["wait_then_note"].call_async(1)
    assert info.value is boom
    assert not instance.interrupted  # a trap is an outcome, not an interruption
    assert await instance.exports["add"].call_async(1, 2) == 3


async def test_host_exception_is_thrown_into_the_guest_and_ends_the_call():
    notes = []

    async def wait(x):
        await trio.sleep(0)
        raise ValueError("host bug")

    instance = _instance(wait=wait, note=notes.append)
    with pytest.raises(ValueError, match="host bug"):
        await instance.exports["wait_then_note"].call_async(1)
    assert notes == []  # the guest did not go on past the failed call
    assert not instance.interrupted


async def test_guest_trap_through_call_async():
    instance = Linker().instantiate(Module(wat(
        '(module (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0))))')))
    with pytest.raises(Trap, match="integer divide by zero"):
        await instance.exports["div"].call_async(0)


async def test_exit_from_proc_exit_through_call_async():
    out = bytearray()
    linker = Linker()
    linker.define_wasi(asyncwasm.WasiConfig(argv=["exit_code", "7"], stdout=out))
    with await linker.instantiate_async(Module.from_file(str(guest_path("exit_code")))) as instance:
        with pytest.raises(asyncwasm.Exit) as info:
            await instance.exports["_start"].call_async()
    assert info.value.code == 7
    assert out == b"exiting\n"
    assert not instance.interrupted


async def test_exit_raised_by_an_async_host_function():
    async def wait(x):
        raise asyncwasm.Exit(3)

    instance = _instance(wait=wait)
    with pytest.raises(asyncwasm.Exit) as info:
        await instance.exports["wait"].call_async(1)
    assert info.value.code == 3


# -- cancellation and interrupted instances ----------------------------------------------


async def test_cancel_scope_stops_a_spinning_guest_and_interrupts_the_instance():
    instance = _instance()
    with trio.move_on_after(0.02) as scope:
        await instance.exports["spin"].call_async()
    assert scope.cancelled_caught  # trio.Cancelled propagated normally to its scope
    assert instance.interrupted
    with pytest.raises(Interrupted, match="instantiate the module again"):
        instance.exports["get"]()  # the sync fast path refuses too
    with pytest.raises(Interrupted, match="interrupted"):
        await instance.exports["get"].call_async()
    assert "interrupted" in repr(instance)


async def test_cancel_scope_stops_a_guest_suspended_in_a_host_function():
    instance = _instance(wait=_sleep_forever)
    with trio.move_on_after(0.01) as scope:
        await instance.exports["wait"].call_async(1)
    assert scope.cancelled_caught
    assert instance.interrupted
    with pytest.raises(Interrupted):
        await instance.exports["add"].call_async(1, 2)


async def test_fail_after_raises_too_slow_and_other_instances_are_untouched():
    spinner, other = _instance(), _instance()
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(0.01):
            await spinner.exports["spin"].call_async()
    assert spinner.interrupted and not other.interrupted
    assert other.exports["add"](1, 2) == 3


async def test_reinstantiating_gives_a_fresh_usable_instance():
    linker = Linker()
    linker.define_func("env", "wait", WAIT, lambda x: x)
    linker.define_func("env", "note", NOTE, lambda x: None)
    module = Module(GUEST)
    first = linker.instantiate(module)
    with trio.move_on_after(0.01):
        await first.exports["spin"].call_async()
    assert first.interrupted
    second = linker.instantiate(module)
    assert not second.interrupted and await second.exports["add"].call_async(2, 2) == 4


async def test_a_call_finished_before_cancellation_leaves_the_instance_usable():
    instance = _instance()
    with trio.CancelScope() as scope:
        assert await instance.exports["add"].call_async(1, 2) == 3
        scope.cancel()
        await trio.sleep(1)
    assert not instance.interrupted


# -- one instance, one task ------------------------------------------------------------------


async def test_concurrent_async_calls_into_one_instance_take_turns_in_order():
    events = []

    async def wait(x):
        events.append(("enter", x))
        await trio.sleep(0.005)
        events.append(("leave", x))
        return x

    instance = _instance(wait=wait)
    results = {}

    async def call(x):
        results[x] = await instance.exports["wait"].call_async(x)

    async with trio.open_nursery() as nursery:
        for x in range(1, 5):
            nursery.start_soon(call, x)
            await trio.sleep(0)  # start in a known order
    assert results == {1: 1, 2: 2, 3: 3, 4: 4}
    assert events == [(kind, x) for x in range(1, 5) for kind in ("enter", "leave")]


async def test_sync_call_into_an_instance_held_by_another_task_fails_clearly():
    started = trio.Event()
    release = trio.Event()

    async def wait(x):
        started.set()
        await release.wait()
        return x

    instance = _instance(wait=wait)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance.exports["wait"].call_async, 1)
        await started.wait()
        with pytest.raises(RuntimeError, match="busy"):
            instance.exports["add"](1, 2)
        release.set()
    assert instance.exports["add"](1, 2) == 3  # free again: the fast path


async def test_a_waiting_call_is_refused_when_the_holder_gets_interrupted():
    started = trio.Event()
    instance = _instance(wait=_sleep_forever)
    errors = []

    async def second():
        try:
            await instance.exports["add"].call_async(1, 2)
        except Interrupted as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        async def first():
            with trio.move_on_after(0.02):
                await instance.exports["wait"].call_async(1)

        nursery.start_soon(first)
        await trio.sleep(0.005)
        nursery.start_soon(second)
    assert len(errors) == 1 and instance.interrupted
    del started


async def test_a_call_cancelled_while_waiting_its_turn_leaves_the_instance_usable():
    release = trio.Event()

    async def wait(x):
        await release.wait()
        return x

    instance = _instance(wait=wait)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance.exports["wait"].call_async, 1)
        await trio.sleep(0.001)
        with trio.move_on_after(0.01) as scope:
            await instance.exports["add"].call_async(1, 2)  # waits its turn, then gives up
        assert scope.cancelled_caught
        release.set()
    assert not instance.interrupted
    assert await instance.exports["add"].call_async(1, 2) == 3


async def test_reentry_from_an_async_host_function_into_its_own_instance():
    holder = {}

    async def wait(x):
        exports = holder["instance"].exports
        inner = await exports["add"].call_async(x, 100)  # async re-entry
        return inner + exports["add"](x, 1000)  # sync re-entry while this task holds it

    instance = _instance(wait=wait)
    holder["instance"] = instance
    assert await instance.exports["wait"].call_async(5) == 105 + 1005


def test_reentry_from_a_sync_host_function_on_a_guarded_instance():
    holder = {}

    def wait(x):
        return holder["instance"].exports["add"](x, 1)

    instance = _instance(wait=wait, limits=Limits(fuel=1_000_000))  # guarded: goes through the gate
    holder["instance"] = instance
    assert instance.exports["wait_many"](3) == 4 + 3 + 2


# -- instantiation ---------------------------------------------------------------------------

START_GUEST = wat("""
(module
  (import "env" "wait" (func $wait (param i32) (result i32)))
  (global $g (mut i32) (i32.const 0))
  (func $start (global.set $g (call $wait (i32.const 41))))
  (start $start)
  (func (export "get") (result i32) (global.get $g)))
""")


async def test_instantiate_async_runs_a_start_function_that_suspends():
    async def wait(x):
        await trio.sleep(0.001)
        return x + 1

    linker = Linker()
    linker.define_func("env", "wait", WAIT, wait)
    instance = await linker.instantiate_async(Module(START_GUEST))
    assert instance.exports["get"]() == 42
    assert instance.statistics().suspensions == 1
    with pytest.raises(RuntimeError, match="call_async"):
        linker.instantiate(Module(START_GUEST))


async def test_instantiate_async_can_be_cancelled():
    linker = Linker()
    linker.define_func("env", "wait", WAIT, _sleep_forever)
    with trio.move_on_after(0.01) as scope:
        await linker.instantiate_async(Module(START_GUEST))
    assert scope.cancelled_caught


# -- WASI linking --------------------------------------------------------------------------------


async def test_define_wasi_gives_each_instance_its_own_context():
    out = bytearray()
    linker = Linker()
    linker.define_wasi(asyncwasm.WasiConfig(argv=["args_env", "x"], stdout=out))
    module = Module.from_file(str(guest_path("args_env")))
    with await linker.instantiate_async(module) as first, await linker.instantiate_async(module) as second:
        assert first.wasi is not None and second.wasi is not None and first.wasi is not second.wasi
        await first.exports["_start"].call_async()
    assert out.startswith(b"argc=2\nargv[0]=args_env\nargv[1]=x\n")
    assert "closed" in repr(first.wasi)
    first.close()  # idempotent


async def test_wasi_guest_sleeping_suspends_only_its_task():
    out = bytearray()
    linker = Linker()
    linker.define_wasi(asyncwasm.WasiConfig(argv=["sleep_poll", "sleep", "50"], stdout=out))
    with await linker.instantiate_async(Module.from_file(str(guest_path("sleep_poll")))) as instance:
        ticks = await _ticks_during(instance.exports["_start"].call_async, 0.005)
    assert out == b"nanosleep=0 elapsed_ok=1\n"
    assert ticks >= 3  # the event loop ran while the guest slept
    assert instance.statistics().suspensions >= 1


def test_define_wasi_unknown_import_is_a_link_error():
    module = Module(wat('(module (import "wasi_snapshot_preview1" "no_such_call" (func (param i32))))'))
    linker = Linker()
    linker.define_wasi()
    with pytest.raises(asyncwasm.LinkError, match="no_such_call"):
        linker.instantiate(module)
    wrong_type = Module(wat('(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32))))'))
    with pytest.raises(asyncwasm.LinkError, match="fd_write.*has type"):
        linker.instantiate(wrong_type)


def test_define_wasi_checks_its_config_and_explicit_definitions_win():
    linker = Linker()
    with pytest.raises(TypeError, match="WasiConfig"):
        linker.define_wasi({"argv": []})
    linker.define_wasi()
    with pytest.raises(ValueError, match="already defined"):
        linker.define_wasi()
    calls = []
    linker.define_func("wasi_snapshot_preview1", "sched_yield", FuncType([], [I32]), lambda: calls.append(1) or 0)
    module = Module(wat('''(module (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
                            (memory (export "memory") 1)
                            (func (export "go") (result i32) (call $y)))'''))
    with linker.instantiate(module) as instance:
        assert instance.exports["go"]() == 0
        assert instance.wasi is None  # nothing was taken from WASI
    assert calls == [1]


def test_modules_without_wasi_imports_get_no_context():
    linker = Linker()
    linker.define_wasi()
    instance = linker.instantiate(Module(wat("(module)")))
    assert instance.wasi is None
    instance.close()


# -- handles ----------------------------------------------------------------------------------------


async def test_execute_wait_for_false_on_a_spinning_guest_then_cancel():
    instance = _instance()
    async with trio.open_nursery() as nursery:
        execution = asyncwasm.execute(nursery, instance.exports["spin"])
        started = trio.current_time()
        assert await execution.wait_for(0.05) is False
        waited = trio.current_time() - started
        assert 0.05 <= waited < 0.3  # "about 50 ms": the guest yields every few ms
        assert not execution.done
        assert instance.exports["spin"]._gate.holder is not None  # still running
        execution.cancel()
        with pytest.raises(Interrupted, match="cancelled"):
            await execution.result()
        assert execution.done
    assert instance.interrupted
    stats = execution.statistics()
    assert stats.calls == 1 and stats.fuel_used > 0 and stats.slices > 1
    assert stats.wall_time >= 0.05 and 0 < stats.guest_time <= stats.wall_time


async def test_execute_wait_for_false_on_a_guest_suspended_forever_then_cancel():
    instance = _instance(wait=_sleep_forever)
    async with trio.open_nursery() as nursery:
        execution = asyncwasm.execute(nursery, instance.exports["wait"], 1)
        assert await execution.wait_for(0.05) is False
        execution.cancel()
        with pytest.raises(Interrupted):
            await execution.result()
    assert instance.interrupted
    assert execution.statistics().suspensions == 1


async def test_execute_results_and_errors_stay_in_the_handle():
    instance = _instance()
    async with trio.open_nursery() as nursery:
        ok = asyncwasm.execute(nursery, instance.exports["pair"], 4)
        bad = asyncwasm.execute(nursery, instance.exports["add"], "x", 1)
        assert await ok.wait_for(5) is True
        await bad.wait()  # never raises the guest's error
        assert bad.done
    assert await ok.result() == (4, 8)
    assert await ok.result() == (4, 8)
    with pytest.raises(TypeError):
        await bad.result()
    assert "done" in repr(ok) and "failed" in repr(bad)


async def test_execute_cancelled_by_its_nursery_finishes_as_interrupted():
    instance = _instance()
    async with trio.open_nursery() as nursery:
        execution = asyncwasm.execute(nursery, instance.exports["spin"])
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert execution.done
    with pytest.raises(Interrupted):
        await execution.result()
    assert instance.interrupted


async def test_execute_cancelled_before_it_starts_leaves_the_instance_alone():
    instance = _instance()
    async with trio.open_nursery() as nursery:
        execution = asyncwasm.execute(nursery, instance.exports["spin"])
        execution.cancel()
    with pytest.raises(Interrupted):
        await execution.result()
    assert not instance.interrupted


async def test_execute_trap_is_kept_for_result():
    async def wait(x):
        raise Trap("nope")

    instance = _instance(wait=wait)
    async with trio.open_nursery() as nursery:
        execution = asyncwasm.execute(nursery, instance.exports["wait"], 1)
    with pytest.raises(Trap, match="nope"):
        await execution.result()


# -- statistics ----------------------------------------------------------------------------------------


async def test_instance_statistics_add_up_fast_and_driven_calls():
    instance = _instance()
    before = instance.statistics()
    assert before.calls == 0 and before.fuel_used == 0
    instance.exports["add"](1, 2)  # fast path: counted, not timed
    fast = instance.statistics()
    assert fast.calls == 1 and fast.fuel_used > 0 and fast.wall_time == 0
    await instance.exports["wait_many"].call_async(4)
    total = instance.statistics()
    assert total.calls == 2 and total.host_calls == 4 and total.suspensions == 0
    assert total.fuel_used > fast.fuel_used and total.slices >= 1
    assert total.wall_time > 0 and math.isfinite(total.guest_time)
    assert isinstance(total, asyncwasm.Statistics)


async def test_instance_statistics_include_a_call_still_running():
    instance = _instance(wait=_sleep_forever)
    async with trio.open_nursery() as nursery:
        execution = asyncwasm.execute(nursery, instance.exports["wait_then_note"], 1)
        await trio.sleep(0.01)
        running = instance.statistics()
        assert running.calls == 1 and running.host_calls == 1 and running.suspensions == 1
        assert running.fuel_used > 0 and running.wall_time > 0
        assert execution.statistics().suspensions == 1
        execution.cancel()
    assert instance.statistics().calls == 1


async def test_execute_needs_a_func():
    async with trio.open_nursery() as nursery:
        with pytest.raises(TypeError, match="needs an asyncwasm.Func, not builtin_function_or_method"):
            asyncwasm.execute(nursery, print)


async def test_async_host_functions_that_never_yield_still_let_other_tasks_run():
    import time

    async def busy(x):  # CPU work without a checkpoint
        deadline = time.perf_counter() + 0.001
        while time.perf_counter() < deadline:
            pass
        return x

    instance = _instance(wait=busy, limits=Limits(yield_interval=0.005))
    # wait_many(100): about 0.1 s of host work
    ticks = await _ticks_during(partial(instance.exports["wait_many"].call_async, 100))
    assert ticks >= 10  # one checkpoint at least every ~5 calls
