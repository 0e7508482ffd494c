"""Cross-instance turns (see test_execution_turns.py) with Wasm 3.0 control
flow: a tail call into another instance's function takes that instance's
turn for the frame it replaces (and gives back the one the frame took); an
exception that unwinds out of another instance gives that instance's turn
back as soon as the frames are gone, caught or not."""

from __future__ import annotations

import pytest
import trio

import asyncwasm
from asyncwasm import FuncType, I32, Linker, Module, WasmException

from .wat import wat

# B: `step` sets two globals around a host call that may suspend (between
# the two, B is mid-call); `throw` throws out of B; `bounce` tail-calls
# whatever is at table[1] (A puts its own function there).
LIBRARY = wat("""
(module
  (import "env" "pause" (func $pause (param i32)))
  (global $first (mut i32) (i32.const 0))
  (global $second (mut i32) (i32.const 0))
  (table (export "table") 2 funcref)
  (tag $oops (export "oops") (param i32))
  (type $v (func (param i32)))
  (func $step (export "step") (param i32)
    (global.set $first (local.get 0))
    (call $pause (local.get 0))
    (global.set $second (local.get 0)))
  (func (export "pair") (result i32 i32) (global.get $first) (global.get $second))
  (func (export "throw") (param i32)
    (global.set $first (local.get 0))
    (throw $oops (local.get 0)))
  (func (export "bounce") (param i32)
    (return_call_indirect (type $v) (local.get 0) (i32.const 1)))
  (elem (i32.const 0) $step))
""")

APP = wat("""
(module
  (import "lib" "step" (func $step (param i32)))
  (import "lib" "throw" (func $throw (param i32)))
  (import "lib" "bounce" (func $bounce (param i32)))
  (import "lib" "table" (table 2 funcref))
  (import "lib" "oops" (tag $oops (param i32)))
  (import "env" "wait" (func $wait (param i32)))
  (type $v (func (param i32)))
  (func (export "tail") (param i32) (return_call $step (local.get 0)))
  (func $inner (param i32) (return_call $step (local.get 0)))
  (func (export "tail_nested") (param i32) (call $inner (local.get 0)))
  (func $inner_indirect (param i32) (return_call_indirect (type $v) (local.get 0) (i32.const 0)))
  (func (export "tail_indirect") (param i32) (call $inner_indirect (local.get 0)))
  (func $mine (param i32) (call $wait (local.get 0)))
  (elem (table 0) (i32.const 1) func $mine)
  (func (export "bounce") (param i32) (call $bounce (local.get 0)))
  (func (export "catch_then_wait") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $oops $h) (call $throw (local.get 0)))
      (i32.const -1))
    (call $wait (i32.const 0)))
  (func (export "uncaught") (param i32) (call $throw (local.get 0))))
""")


class _Pause:
    """A host function that suspends until released, when given an event."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release: trio.Event | None = None

    async def __call__(self, value: int) -> None:
        self.entered.set()
        if self.release is not None:
            await self.release.wait()


def _pair(pause=None, wait=None):  # type: ignore[no-untyped-def]
    lib_linker = Linker()
    lib_linker.define_func("env", "pause", FuncType([I32], []), pause or (lambda value: None))
    library = lib_linker.instantiate(Module(LIBRARY))
    linker = Linker()
    linker.define_instance("lib", library)
    linker.define_func("env", "wait", FuncType([I32], []), wait or (lambda value: None))
    return library, linker.instantiate(Module(APP))


def _func(instance: asyncwasm.Instance, name: str) -> asyncwasm.Func:
    func = instance.exports[name]
    assert isinstance(func, asyncwasm.Func)
    return func


@pytest.mark.parametrize("entry", ["tail", "tail_nested", "tail_indirect"])
async def test_a_tail_call_into_b_waits_for_b_and_holds_its_turn(entry: str) -> None:
    """B is mid-call in task 1: A's tail call into B waits; while A runs in B
    (paused), B's own callers wait; afterwards B is free."""
    pause = _Pause()
    pause.release = trio.Event()
    library, app = _pair(pause)
    order = []

    async def a_tail_calls():
        await _func(app, entry).call_async(5)
        order.append("a done")

    async def reader():
        order.append(await _func(library, "pair").call_async())

    with trio.fail_after(5):  # not a hang when the turn is not taken
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_func(library, "step").call_async, 7)
            await pause.entered.wait()
            nursery.start_soon(a_tail_calls)
            await trio.sleep(0.01)
            assert order == []  # A waits for B's turn
            pause.entered = trio.Event()
            release, pause.release = pause.release, trio.Event()
            release.set()  # task 1 finishes; A enters B and pauses in step(5)
            await pause.entered.wait()
            nursery.start_soon(reader)
            await trio.sleep(0.01)
            assert order == []  # B is A's now: the reader waits
            pause.release.set()
    assert order == ["a done", (5, 5)]
    assert not library.interrupted and not app.interrupted


async def test_a_tail_call_from_b_back_into_a_gives_b_its_turn_back() -> None:
    """A calls B's bounce, which tail-calls A's function: B's frame is gone,
    so while that function is paused, B's own callers do not wait."""
    waiting = _Pause()
    waiting.release = trio.Event()
    library, app = _pair(wait=waiting)
    pairs = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_func(app, "bounce").call_async, 3)
        await waiting.entered.wait()
        with trio.fail_after(1):
            pairs.append(await _func(library, "pair").call_async())
        waiting.release.set()
    assert pairs == [(0, 0)]


async def test_an_exception_caught_in_a_gives_b_its_turn_back_at_once() -> None:
    waiting = _Pause()
    waiting.release = trio.Event()
    library, app = _pair(wait=waiting)
    pairs = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_func(app, "catch_then_wait").call_async, 8)
        await waiting.entered.wait()  # A caught B's exception and waits, in A
        with trio.fail_after(1):
            pairs.append(await _func(library, "pair").call_async())
        waiting.release.set()
    assert pairs == [(8, 0)]
    assert await _func(app, "catch_then_wait").call_async(9) == 9


async def test_an_uncaught_exception_out_of_b_gives_the_turn_back() -> None:
    library, app = _pair()
    with pytest.raises(WasmException) as info:
        await _func(app, "uncaught").call_async(4)
    assert info.value.tag is library.exports["oops"] and info.value.values == (4,)
    with trio.fail_after(1):
        assert await _func(library, "pair").call_async() == (4, 0)
    with pytest.raises(WasmException):
        _func(app, "uncaught")(6)  # the synchronous fast path
    assert _func(library, "pair")() == (6, 0)
    assert not library.interrupted and not app.interrupted


def test_b_statistics_count_tail_calls_and_throws_from_a() -> None:
    library, app = _pair()
    before = library.statistics().calls
    for name in ("tail", "tail_nested", "tail_indirect"):
        _func(app, name)(1)
    with pytest.raises(WasmException):
        _func(app, "uncaught")(1)
    assert _func(app, "catch_then_wait")(2) == 2
    _func(app, "bounce")(1)
    assert library.statistics().calls - before == 6
