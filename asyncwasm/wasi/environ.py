"""WASI ``environ_sizes_get`` and ``environ_get``.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#environ_get

The environment is exactly ``WasiConfig.env`` (plus the host's with
``inherit_env=True``), as ``KEY=VALUE`` strings.
"""

from __future__ import annotations

from typing import Any, Awaitable, Union

from .abi import Errno
from .decl import PTR, host_function

ErrnoResult = Union[int, Awaitable[int]]


@host_function(environ_count=PTR, environ_buf_size=PTR)
def environ_sizes_get(ctx: Any, environ_count: int, environ_buf_size: int) -> ErrnoResult:
    """Write the variable count (u32) at ``environ_count`` and the bytes of
    all ``KEY=VALUE\\0`` strings (u32) at ``environ_buf_size``. Errnos: FAULT."""
    ctx.memory.check(environ_count, 4)
    ctx.memory.check(environ_buf_size, 4)
    ctx.memory.store_u32(environ_count, len(ctx.env))
    ctx.memory.store_u32(environ_buf_size, sum(len(e) + 1 for e in ctx.env))
    return Errno.SUCCESS


@host_function(environ=PTR, environ_buf=PTR)
def environ_get(ctx: Any, environ: int, environ_buf: int) -> ErrnoResult:
    """Write the NUL-terminated ``KEY=VALUE`` strings at ``environ_buf`` and
    a u32 pointer to each at ``environ[i]``. Errnos: FAULT."""
    ctx.memory.check(environ, 4 * len(ctx.env))
    ctx.memory.check(environ_buf, sum(len(e) + 1 for e in ctx.env))
    ctx.memory.store_strings(environ, environ_buf, ctx.env)
    return Errno.SUCCESS
