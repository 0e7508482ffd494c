"""Alarms (asyncwasm/wasi/alarms.py): deadlines of waiting polls on one timer task per trio run."""

from __future__ import annotations

import gc
import weakref

import trio
import trio.testing

from asyncwasm.wasi.alarms import Alarms


async def test_alarms_go_off_in_deadline_order_on_trios_clock(autojump_clock):
    alarms = Alarms.current()
    assert Alarms.current() is alarms  # one per run
    went_off: list[tuple[str, float]] = []
    start = trio.current_time()
    for name, delay in (("c", 30.0), ("a", 10.0), ("b", 20.0)):
        alarms.set(start + delay, lambda name=name: went_off.append((name, trio.current_time() - start)))
    assert len(alarms) == 3
    await trio.sleep(25)
    assert went_off == [("a", 10.0), ("b", 20.0)] and len(alarms) == 1
    alarms.set(trio.current_time() + 1, lambda: went_off.append(("d", trio.current_time() - start)))  # earlier than c
    await trio.sleep(10)
    assert went_off[2:] == [("d", 26.0), ("c", 30.0)] and len(alarms) == 0


async def test_a_cleared_alarm_never_goes_off(autojump_clock):
    alarms = Alarms.current()
    went_off: list[int] = []
    first = alarms.set(trio.current_time() + 1, lambda: went_off.append(1))
    alarms.set(trio.current_time() + 2, lambda: went_off.append(2))
    alarms.clear(first)
    alarms.clear(first)  # twice: nothing
    await trio.sleep(5)
    assert went_off == [2] and len(alarms) == 0
    alarms.clear(first)  # after going off, or long cleared: nothing


async def test_an_alarm_already_due_goes_off_at_the_next_turn():
    alarms = Alarms.current()
    went_off: list[int] = []
    alarms.set(trio.current_time() - 1, lambda: went_off.append(1))
    with trio.fail_after(5):
        while not went_off:
            await trio.sleep(0)


async def test_cleared_alarms_do_not_pile_up(autojump_clock):
    alarms = Alarms.current()
    far = trio.current_time() + 3600
    alarms.set(far, lambda: None)
    for _ in range(10_000):  # a wait per request, each ended by readiness before its deadline
        alarms.clear(alarms.set(far, lambda: None))
    assert len(alarms) == 1 and len(alarms._heap) <= 2 + 64 + 1  # rebuilt as it grows: bounded by the live ones


class _Waiter:
    def on_time(self) -> None:
        pass


async def test_alarms_let_go_of_their_callbacks_when_cleared_or_gone_off(autojump_clock):
    """A cleared alarm's callback (a guest's socket mirror, and through it
    the guest's instance) is freed at once, not at its deadline; the timer
    task holds none while asleep (regression: MemoryBudget pages held by
    finished guests until their polls' timeouts passed)."""
    alarms = Alarms.current()
    far = trio.current_time() + 3600
    cleared, fired = _Waiter(), _Waiter()
    alarms.clear(alarms.set(far, cleared.on_time))
    alarms.set(trio.current_time() + 1, fired.on_time)
    for _ in range(200):  # enough clears for a rebuild of the heap while the timer sleeps
        alarms.clear(alarms.set(far, _Waiter().on_time))
    refs = [weakref.ref(cleared), weakref.ref(fired)]
    del cleared, fired
    await trio.sleep(2)
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


async def test_the_timer_task_sleeps_without_alarms_and_wakes_for_a_new_one(autojump_clock):
    alarms = Alarms.current()
    went_off: list[float] = []
    alarms.set(trio.current_time() + 1, lambda: went_off.append(trio.current_time()))
    await trio.sleep(2)
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    alarms.set(start + 5, lambda: went_off.append(trio.current_time() - start))  # the timer sleeps with no deadline
    await trio.sleep(10)
    assert went_off[1:] == [5.0]
