"""WASI preview1 socket calls: ``sock_accept``, ``sock_recv``, ``sock_send``,
``sock_shutdown``.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#sock_accept

Until the networking issue adds socket entries (preopened listeners, the
trio-backed socket table) every fd is a non-socket: these return BADF for an
fd that is not open and NOTSOCK for anything else, before touching memory.
Socket entries will set ``Entry.is_socket`` and implement the methods these
functions will then call.
"""

from __future__ import annotations

from typing import Any, Awaitable, Union

from .abi import Errno, WasiError
from .decl import FD, PTR, U32, host_function

ErrnoResult = Union[int, Awaitable[int]]


def _socket(ctx: Any, fd: int) -> Any:
    entry = ctx.fds.get(fd)
    if not entry.is_socket:
        raise WasiError(Errno.NOTSOCK)
    return entry


@host_function(fd=FD, flags=U32, ro_fd=PTR)
def sock_accept(ctx: Any, fd: int, flags: int, ro_fd: int) -> ErrnoResult:
    """Accept a connection on listening socket ``fd``; would write the new fd
    (u32) at ``ro_fd``. Errnos now: BADF, NOTSOCK."""
    _socket(ctx, fd)
    raise WasiError(Errno.NOTSOCK)


@host_function(fd=FD, ri_data=PTR, ri_data_len=U32, ri_flags=U32, ro_datalen=PTR, ro_flags=PTR)
def sock_recv(ctx: Any, fd: int, ri_data: int, ri_data_len: int, ri_flags: int, ro_datalen: int,
              ro_flags: int) -> ErrnoResult:
    """Receive into iovecs; would write the byte count (u32) at ``ro_datalen``
    and ``$roflags`` (u16) at ``ro_flags``. Errnos now: BADF, NOTSOCK."""
    _socket(ctx, fd)
    raise WasiError(Errno.NOTSOCK)


@host_function(fd=FD, si_data=PTR, si_data_len=U32, si_flags=U32, so_datalen=PTR)
def sock_send(ctx: Any, fd: int, si_data: int, si_data_len: int, si_flags: int, so_datalen: int) -> ErrnoResult:
    """Send from ciovecs; would write the byte count (u32) at ``so_datalen``.
    Errnos now: BADF, NOTSOCK."""
    _socket(ctx, fd)
    raise WasiError(Errno.NOTSOCK)


@host_function(fd=FD, how=U32)
def sock_shutdown(ctx: Any, fd: int, how: int) -> ErrnoResult:
    """Shut down reading (RD = 1) and/or writing (WR = 2).
    Errnos now: BADF, NOTSOCK."""
    _socket(ctx, fd)
    raise WasiError(Errno.NOTSOCK)
