"""Limits per instance: fuel budget (exact counts), timeout (sync and
async), call depth (fast path included), memory and table caps,
yield_interval; and Limits' own validation."""

from __future__ import annotations

import signal

import pytest
import trio

import asyncwasm
from asyncwasm import FuelExhausted, Interrupted, Limits, Linker, Module, Trap

from .test_execution import _ticks_during
from .wat import wat

GUEST = Module(wat("""
(module
  (memory (export "memory") 1)
  (table (export "table") 1 funcref)
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $i))
  (func (export "spin") (loop $l (br $l)))
  (func $rec (export "rec") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $rec (i32.sub (local.get 0) (i32.const 1)))))))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "grow_table") (param i32) (result i32) (table.grow (ref.null func) (local.get 0))))
"""))


def _fuel_of_count(n: int) -> int:
    instance = Linker().instantiate(GUEST)
    instance.exports["count"](n)
    return instance.statistics().fuel_used


# -- fuel ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fuel_budget_is_exact(mode):
    need = _fuel_of_count(1000)
    assert need > 1000  # several instructions per iteration

    async def call(instance, n):
        func = instance.exports["count"]
        return func(n) if mode == "sync" else await func.call_async(n)

    enough = Linker().instantiate(GUEST, limits=Limits(fuel=need))
    assert await call(enough, 1000) == 1000
    assert enough.statistics().fuel_used == need

    short = Linker().instantiate(GUEST, limits=Limits(fuel=need - 1))
    with pytest.raises(FuelExhausted) as info:
        await call(short, 1000)
    consumed = info.value.consumed
    assert consumed == short.statistics().fuel_used
    assert need - 1 - 10 < consumed <= need - 1  # stopped before the region that did not fit
    assert not short.interrupted  # a trap, not an interruption
    # The budget is the instance's total: the next call has nothing left.
    with pytest.raises(FuelExhausted) as again:
        await call(short, 1)
    assert again.value.consumed == consumed
    assert isinstance(info.value, Trap) and info.value.kind == "fuel exhausted"


@pytest.mark.parametrize("budget", [0, 1, 12_345, 1_000_000])
async def test_spinning_guest_stops_with_the_budget_it_was_given(budget):
    instance = Linker().instantiate(GUEST, limits=Limits(fuel=budget))
    with pytest.raises(FuelExhausted) as info:
        await instance.exports["spin"].call_async()
    # "spin" is one region per iteration (a few units): the count is the
    # budget less at most one region.
    assert budget - 4 <= info.value.consumed <= budget
    assert info.value.consumed == instance.statistics().fuel_used


def test_fuel_budget_is_shared_by_calls():
    per_call = _fuel_of_count(10)
    instance = Linker().instantiate(GUEST, limits=Limits(fuel=3 * per_call))
    for _ in range(3):
        assert instance.exports["count"](10) == 10
    with pytest.raises(FuelExhausted):
        instance.exports["count"](10)
    assert instance.statistics().calls == 4


# -- timeout ----------------------------------------------------------------------------


def test_sync_call_of_a_spinning_guest_with_a_timeout_raises_interrupted():
    instance = Linker().instantiate(GUEST, limits=Limits(timeout=0.05))
    assert instance.exports["count"](10) == 10  # quick calls are fine
    with pytest.raises(Interrupted, match="Limits.timeout=0.05") as info:
        instance.exports["spin"]()
    assert info.value.timeout == 0.05
    assert instance.interrupted
    with pytest.raises(Interrupted, match="instantiate the module again"):
        instance.exports["count"](1)


async def test_async_call_with_a_timeout_raises_interrupted_not_cancelled():
    instance = Linker().instantiate(GUEST, limits=Limits(timeout=0.05))
    with pytest.raises(Interrupted) as info:
        await instance.exports["spin"].call_async()
    assert info.value.timeout == 0.05 and instance.interrupted


async def test_timeout_covers_a_guest_suspended_in_a_host_function():
    linker = Linker()
    linker.define_func("env", "hang", asyncwasm.FuncType([], []), trio.sleep_forever)
    module = Module(wat('(module (import "env" "hang" (func $h)) (func (export "go") (call $h)))'))
    instance = linker.instantiate(module, limits=Limits(timeout=0.02))
    with pytest.raises(Interrupted):
        await instance.exports["go"].call_async()
    assert instance.interrupted


# -- call depth, memory, tables ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fast", "async", "guarded"])
async def test_max_call_depth_applies_to_every_call(mode):
    limits = Limits(max_call_depth=50, fuel=10**9 if mode == "guarded" else None)
    instance = Linker().instantiate(GUEST, limits=limits)
    rec = instance.exports["rec"]

    async def call(n):
        return await rec.call_async(n) if mode == "async" else rec(n)

    assert await call(40) == 40
    with pytest.raises(Trap, match="call stack exhausted"):
        await call(60)
    deep = Linker().instantiate(GUEST)  # the default allows far more
    assert deep.exports["rec"](1000) == 1000


def test_memory_grow_past_the_limit_returns_minus_one():
    instance = Linker().instantiate(GUEST, limits=Limits(max_memory_pages=3))
    grow = instance.exports["grow"]
    assert grow(2) == 1
    assert grow(1) == -1
    assert instance.exports["memory"].size == 3
    with pytest.raises(asyncwasm.WasmError):
        Linker().instantiate(Module(wat("(module (memory 4))")), limits=Limits(max_memory_pages=3))


def test_table_grow_past_the_limit_returns_minus_one():
    instance = Linker().instantiate(GUEST, limits=Limits(max_table_elements=5))
    assert instance.exports["grow_table"](4) == 1
    assert instance.exports["grow_table"](1) == -1
    assert instance.exports["table"].size == 5


# -- yield_interval ---------------------------------------------------------------------------


async def test_yield_interval_bounds_the_gaps_a_spinning_guest_leaves():
    """A spinning guest with yield_interval=2 ms lets a ticking task run
    many times in 0.3 s (it would get 0 chances without slicing)."""
    instance = Linker().instantiate(GUEST, limits=Limits(yield_interval=0.002))

    async def spin_for_a_while():
        with trio.move_on_after(0.3):
            await instance.exports["spin"].call_async()

    ticks = await _ticks_during(spin_for_a_while)
    assert instance.statistics().slices > 20
    assert ticks > 20


# -- Limits validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fuel": -1}, ValueError),
        ({"fuel": 1.0}, TypeError),
        ({"timeout": 0}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": "1"}, TypeError),
        ({"yield_interval": 0}, ValueError),
        ({"yield_interval": None}, TypeError),
        ({"max_call_depth": 0}, ValueError),
        ({"max_call_depth": 2**32}, ValueError),
    ],
)
def test_bad_limits_are_rejected(kwargs, error):
    with pytest.raises(error):
        Limits(**kwargs)


def test_limits_are_checked_at_instantiation():
    with pytest.raises(TypeError, match="Limits"):
        Linker().instantiate(GUEST, limits={"fuel": 10})


class _Alarm(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
@pytest.mark.parametrize("limits", [None, Limits(fuel=10**15)], ids=["fast-path", "driven"])
def test_a_signal_handler_stops_a_spinning_sync_call_and_interrupts_the_instance(limits):
    """Ctrl-C (or any signal handler that raises) stops a synchronous call
    of a guest in an infinite loop, on the fast path too."""

    def handler(signum, frame):
        raise _Alarm()

    instance = Linker().instantiate(GUEST, limits=limits)
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(_Alarm):
            instance.exports["spin"]()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert instance.interrupted
    with pytest.raises(Interrupted, match="_Alarm"):
        instance.exports["count"](1)
