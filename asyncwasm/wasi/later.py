"""Later: an awaitable that creates its coroutine only when awaited.

Why: a host function that would block hands the engine an awaitable, and the
engine may never await it (a synchronous call refuses it and calls
``close()``). A coroutine object created eagerly and then dropped makes
Python warn "coroutine ... was never awaited", and chained helpers (a
coroutine holding another as an argument) cannot all be closed from the
outside. Building every chain from ``Later`` objects means nothing exists
to warn about until someone actually awaits.

    >>> pending = Later(trio.sleep, 1)      # nothing started yet
    >>> await pending                       # now trio.sleep(1) runs

Await a ``Later`` at most once.
"""

from __future__ import annotations

from typing import Any, Callable, Generator


class Later:
    __slots__ = ("_fn", "_args")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._fn = fn
        self._args = args

    def __await__(self) -> Generator[Any, None, Any]:
        if self._fn is None:
            raise RuntimeError("this awaitable was closed or already awaited")
        fn, args = self._fn, self._args
        self._fn, self._args = None, ()
        return fn(*args).__await__()

    def close(self) -> None:
        """Forget the call (and close awaitables passed as arguments)."""
        for arg in self._args:
            close = getattr(arg, "close", None)
            if isinstance(arg, Later) and close is not None:
                close()
        self._fn, self._args = None, ()

    def __repr__(self) -> str:
        name = getattr(self._fn, "__qualname__", "closed")
        return f"<Later {name}>"
