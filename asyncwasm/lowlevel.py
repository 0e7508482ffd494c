"""The engine's resumable calls, for people writing their own drivers.

Most code never needs this module: :class:`~asyncwasm.Func` calls and the
drivers in :mod:`asyncwasm.execution` use it for you. A driver looks like::

    from asyncwasm.lowlevel import Fiber, Outcome

    fiber = Fiber(instance.exports["run"], (10,))
    while True:
        outcome = fiber.run(max(1000, fiber.fuel_needed))   # one fuel slice
        if outcome == Outcome.DONE:
            break                                   # fiber.results
        if outcome == Outcome.TRAP:
            raise fiber.trap()
        if outcome == Outcome.EXCEPTION:
            raise fiber.exception()                 # a Wasm exception nothing caught
        if outcome == Outcome.SUSPEND:
            fiber.resume(await fiber.awaitable)     # or fiber.throw(exc): a WasmException
                                                    # is thrown into the guest
        # Outcome.OUT_OF_FUEL: a checkpoint, then the next slice

A fiber that is never resumed again is simply dropped: Wasm frames live on the
heap, so cancelling a guest costs nothing. Call ``fiber.close()`` when you drop
it mid-run: a fiber inside a call into another instance holds that instance's
turn, and closing gives it back at once (and marks that instance interrupted)
rather than when the fiber is garbage-collected. A driver that cannot await
(it runs fibers synchronously) passes ``Fiber(..., awaits=False)``, so that a
call into an instance another task holds fails at once as busy.
"""

from ._engine import Fiber
from .execution import Outcome

__all__ = ["Fiber", "Outcome"]
