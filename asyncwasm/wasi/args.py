"""WASI ``args_sizes_get`` and ``args_get``.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#args_get
"""

from __future__ import annotations

from typing import Any, Awaitable, Union

from .abi import Errno
from .decl import PTR, host_function

ErrnoResult = Union[int, Awaitable[int]]


@host_function(argc=PTR, argv_buf_size=PTR)
def args_sizes_get(ctx: Any, argc: int, argv_buf_size: int) -> ErrnoResult:
    """Write the argument count (u32) at ``argc`` and the bytes all
    arguments take with their NULs (u32) at ``argv_buf_size``. Errnos: FAULT."""
    ctx.memory.check(argc, 4)
    ctx.memory.check(argv_buf_size, 4)
    ctx.memory.store_u32(argc, len(ctx.argv))
    ctx.memory.store_u32(argv_buf_size, sum(len(a) + 1 for a in ctx.argv))
    return Errno.SUCCESS


@host_function(argv=PTR, argv_buf=PTR)
def args_get(ctx: Any, argv: int, argv_buf: int) -> ErrnoResult:
    """Write the NUL-terminated arguments back to back at ``argv_buf`` and a
    u32 pointer to each at ``argv[i]`` (sizes from ``args_sizes_get``).
    Errnos: FAULT."""
    ctx.memory.check(argv, 4 * len(ctx.argv))
    ctx.memory.check(argv_buf, sum(len(a) + 1 for a in ctx.argv))
    ctx.memory.store_strings(argv, argv_buf, ctx.argv)
    return Errno.SUCCESS
