"""WASI ``sched_yield``.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#sched_yield

Inside trio it returns an awaitable that passes one trio checkpoint, so the
guest's task lets others run (and can be cancelled there). Outside any trio
run there is nobody to yield to, and it returns SUCCESS at once, so purely
synchronous guests that call it keep working.
"""

from __future__ import annotations

from typing import Any, Awaitable, Union

import trio

from .abi import Errno
from .decl import host_function
from .later import Later

ErrnoResult = Union[int, Awaitable[int]]


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
        return True
    except RuntimeError:
        return False


async def _checkpoint() -> int:
    await trio.lowlevel.checkpoint()
    return Errno.SUCCESS


@host_function()
def sched_yield(ctx: Any) -> ErrnoResult:
    """Yield to other tasks. Errnos: none. Writes nothing."""
    if not _in_trio():
        return Errno.SUCCESS
    return Later(_checkpoint)
