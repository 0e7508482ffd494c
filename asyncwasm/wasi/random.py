"""WASI ``random_get``.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#random_get

The source is ``WasiConfig.random_bytes`` (default ``os.urandom``, the host's
CSPRNG, which does not block once the system is booted).
"""

from __future__ import annotations

from typing import Any, Awaitable, Union

from .abi import Errno, WasiError
from .decl import PTR, U32, host_function

ErrnoResult = Union[int, Awaitable[int]]
_CHUNK = 1 << 20


@host_function(buf=PTR, buf_len=U32)
def random_get(ctx: Any, buf: int, buf_len: int) -> ErrnoResult:
    """Fill ``buf_len`` bytes at ``buf`` with random data. Errnos: FAULT, IO
    (the configured source returned the wrong number of bytes)."""
    ctx.memory.check(buf, buf_len)
    done = 0
    while done < buf_len:
        n = min(_CHUNK, buf_len - done)
        data = ctx.random_bytes(n)
        if len(data) != n:
            raise WasiError(Errno.IO)
        ctx.memory.write(buf + done, data)
        done += n
    return Errno.SUCCESS
