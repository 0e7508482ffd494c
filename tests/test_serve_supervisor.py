"""The supervisor (asyncwasm.serve.supervisor) with scripted lives: restart
with exponential back-off, one log line per start/stop/restart, cancellation
is not a failure. Uses trio's autojump clock, so the delays cost no time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from asyncwasm import Exit, FuelExhausted, Trap
from asyncwasm.serve.supervisor import Backoff, Supervisor, describe_end


def test_backoff_doubles_up_to_the_maximum():
    backoff = Backoff(initial=0.1, maximum=1.0)
    assert [backoff.delay(n) for n in range(0, 7)] == pytest.approx([0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert Backoff(1, 30).delay(10_000) == 30
    for bad in (dict(initial=2, maximum=1), dict(factor=0.5), dict(initial=-1)):
        with pytest.raises(ValueError):
            Backoff(**bad)


def test_describe_end():
    assert describe_end(None) == "exited with status 0"
    assert describe_end(Exit(3)) == "exited with status 3"
    assert describe_end(Trap("unreachable executed\n  at f")) == "trapped: unreachable executed"
    assert describe_end(FuelExhausted("fuel")) == "ran out of fuel"
    assert describe_end(OSError("boom")) == "failed: OSError: boom"


def test_instance_count_is_checked():
    async def life(index, started):
        pass

    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            Supervisor(life, bad)


async def _run_until(supervisor: Supervisor, condition, limit: float = 1000) -> float:
    """Run the supervisor until ``condition()``; the (virtual) time taken."""
    start = trio.current_time()
    with trio.fail_after(limit):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            while not condition():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    return trio.current_time() - start


@pytest.mark.trio
async def test_failing_instance_restarts_with_backoff_and_peers_stay_up(autojump_clock):
    starts: dict[int, list[float]] = {0: [], 1: []}
    log: list[str] = []

    async def life(index, started):
        started()
        starts[index].append(trio.current_time())
        if index == 0:
            await trio.sleep_forever()  # a healthy peer
        await trio.sleep(0.01)
        raise Trap("unreachable executed")

    supervisor = Supervisor(life, 2, backoff=Backoff(initial=1.0, maximum=8.0, reset_after=100), log=log.append)
    await _run_until(supervisor, lambda: len(starts[1]) >= 6)
    gaps = [b - a for a, b in zip(starts[1], starts[1][1:])]
    assert gaps == pytest.approx([1.01, 2.01, 4.01, 8.01, 8.01], abs=0.005)
    assert len(starts[0]) == 1  # the peer was never restarted
    assert supervisor.restarts == 5
    assert "instance 0: started" in log and "instance 0: stopped" in log
    assert "instance 1: trapped: unreachable executed; restarting in 1 s" in log
    assert "instance 1: trapped: unreachable executed; restarting in 8 s" in log
    assert log.count("instance 1: started") == 6


@pytest.mark.trio
async def test_a_long_healthy_life_resets_the_backoff(autojump_clock):
    lives = [0.0, 0.0, 0.0, 50.0, 0.0]  # seconds each life lasts before exiting
    starts: list[float] = []

    async def life(index, started):
        started()
        starts.append(trio.current_time())
        await trio.sleep(lives[len(starts) - 1] if len(starts) <= len(lives) else 1000)
        raise Exit(1)

    supervisor = Supervisor(life, 1, backoff=Backoff(initial=1.0, maximum=60, reset_after=10))
    await _run_until(supervisor, lambda: len(starts) >= 6)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # 1, 2, 4 after quick failures; after the 50 s life the delay is 1 again,
    # then doubles from there.
    assert gaps == pytest.approx([1, 2, 4, 51, 2], abs=0.01)


@pytest.mark.trio
async def test_failed_instantiation_is_retried_and_start_reports_when_all_tried(autojump_clock):
    attempts = []
    log: list[str] = []

    async def life(index, started):
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise OSError("listener gone")
        started()
        await trio.sleep_forever()

    supervisor = Supervisor(life, 1, backoff=Backoff(initial=0.5), log=log.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)  # returns after the first attempt, even failed
        assert len(attempts) == 1 and supervisor.running == 0
        while supervisor.running == 0:
            await trio.sleep(0.01)
        assert len(attempts) == 3
        nursery.cancel_scope.cancel()
    assert log[0] == "instance 0: failed: OSError: listener gone; restarting in 0.5 s"
    assert log[-2:] == ["instance 0: started", "instance 0: stopped"]
    assert supervisor.running == 0


@pytest.mark.trio
async def test_stop_restarting_lets_ended_lives_stay_ended(autojump_clock):
    log: list[str] = []

    async def life(index, started):
        started()
        await trio.sleep(1)

    supervisor = Supervisor(life, 3, log=log.append)
    supervisor.stop_restarting()
    with trio.fail_after(10):
        await supervisor.run()  # returns by itself: nothing to restart
    assert log.count("instance 1: exited with status 0; not restarted (shutting down)") == 1
    assert supervisor.restarts == 0
