"""The pacer's slice sizing (asyncwasm._pacer), without running guests."""

from __future__ import annotations

import trio

from asyncwasm._pacer import INITIAL_FUEL, MIN_FUEL, MIN_SLICE_TIME, Pacer, crowd, slice_target


def test_first_slice_is_the_initial_fuel_then_follows_the_observed_speed():
    pacer = Pacer()
    assert pacer.fuel_for(0.001) == INITIAL_FUEL
    pacer.observe(1_000_000, 0.001)  # 1 ns per unit
    assert pacer.fuel_for(0.002) == 2_000_000


def test_slower_is_believed_at_once_faster_at_most_twice_per_slice():
    pacer = Pacer()
    pacer.observe(1_000_000, 0.001)
    pacer.observe(100_000, 0.001)  # 10x slower
    assert pacer.fuel_for(0.001) == 100_000
    pacer.observe(1_000_000, 0.0001)  # 100x faster than that: only 2x per observation
    assert pacer.fuel_for(0.001) == 200_000


def test_recovers_from_one_preempted_slice_through_short_slices():
    """A slice stalled by the OS makes the guest look very slow; the short
    slices that follow are too small to be observed one by one, so they are
    added up, and the estimate climbs back."""
    pacer = Pacer()
    pacer.observe(100_000, 0.1)  # 1 us per unit: the slice was preempted
    assert pacer.fuel_for(MIN_SLICE_TIME) == MIN_FUEL
    for _ in range(200):
        fuel = pacer.fuel_for(MIN_SLICE_TIME)
        pacer.observe(fuel, fuel * 1e-9)  # the real speed: 1 ns per unit
    assert pacer.fuel_for(MIN_SLICE_TIME) >= 0.8 * MIN_SLICE_TIME / 1e-9  # back within 20% of the real speed


def test_slice_target_shrinks_with_the_crowd_down_to_a_floor():
    assert slice_target(0.005, 1) == 0.00125
    assert slice_target(0.005, 10) == 0.000125
    assert slice_target(0.005, 10_000) == MIN_SLICE_TIME


async def test_crowd_is_per_trio_run():
    first = crowd()
    assert crowd() is first
    first.running += 1

    async def other_run():
        return crowd().running

    # Another trio run (in a thread) has its own crowd.
    assert await trio.to_thread.run_sync(trio.run, other_run) == 0
    assert crowd().running == 1
