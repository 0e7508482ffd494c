"""Socket calls of WASI preview1 (``sock_accept``, ``sock_recv``,
``sock_send``, ``sock_shutdown``) on the socket entries of
:mod:`asyncwasm.wasi.sockets`, and the registry of WasmEdge's socket
extension (its functions are in :mod:`asyncwasm.wasi.wasmedge_sock`).

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#sock_accept;
the exact layouts are in docs/sockets-abi.md.

Two registries. The preview1 functions are in
:data:`asyncwasm.wasi.decl.REGISTRY` (what ``WasiContext.imports()``
returns). WasmEdge's are in :data:`EXTENSIONS`, under the names WasmEdge
exports: ``sock_accept`` there is WasmEdge's V1 ``(fd, *fd)`` and
``sock_accept_v2`` is the preview1 function. The same import name can thus
mean two functions, told apart by the import's type, as WasmEdge does:
:func:`candidates` lists them and ``WasiContext.import_for(name, functype)``
picks the one whose type matches.

Rules (for both ABIs):
- Order of checks: the fd (BADF, then NOTSOCK), rights (NOTCAPABLE), flag
  values (INVAL), guest pointers (FAULT), the network policy (ACCES), then
  the operation. Output pointers are checked before anything happens, so a
  bad pointer never loses a received byte or an accepted connection.
- Blocking calls on a blocking fd return an awaitable (the guest's task
  waits); on a NONBLOCK fd they return AGAIN (see :mod:`.sockets`).
"""

from __future__ import annotations

import inspect
import socket
from typing import Any, Awaitable, Callable, Optional, Union

from .._types import I32, FuncType, ValType
from .abi import U32 as ABI_U32
from .abi import FDFLAGS_ALL, U16, Errno, Fdflags, Riflags, Rights, Roflags, Sdflags, WasiError
from .decl import FD, PTR, REGISTRY, U32, HostFunction, Kind, host_function
from .later import Later
from .sockets import SocketEntry, accepted_entry

__all__ = ["EXTENSIONS", "extension_function", "candidates", "S32", "socket_at", "pending", "store_u32",
           "recv_flags", "roflags", "accept"]

ErrnoResult = Union[int, Awaitable[int]]
#: A signed i32 parameter (``sock_listen``'s backlog).
S32 = Kind("s32", I32, None)

#: WasmEdge's socket extension (and ``epoll_oneoff``), by WasmEdge export name.
EXTENSIONS: dict[str, HostFunction] = {}


def extension_function(export_name: Optional[str] = None, /, *, results: tuple[ValType, ...] = (I32,),
                       **params: Kind) -> Callable[[Callable], Callable]:
    """Declare the decorated function as the WasmEdge import ``export_name``
    (default: the function's name), like
    :func:`asyncwasm.wasi.decl.host_function` but into :data:`EXTENSIONS`:

        @extension_function("sock_open_v2", af=U32, socktype=U32, ro_fd=PTR)
        def sock_open_v2(ctx, af, socktype, ro_fd): ...
    """

    def register(impl: Callable) -> Callable:
        names = list(inspect.signature(impl).parameters)[1:]
        if names != list(params):
            raise TypeError(f"{impl.__name__}: declared parameters {list(params)} != signature {names}")
        export = export_name or impl.__name__
        if export in EXTENSIONS:
            raise ValueError(f"WasmEdge function {export} declared twice")
        functype = FuncType([kind.valtype for kind in params.values()], results)
        EXTENSIONS[export] = HostFunction(export, tuple(params.items()), functype, impl)
        return impl

    return register


def candidates(name: str) -> list[HostFunction]:
    """Every function a ``wasi_snapshot_preview1`` import called ``name``
    may be linked to, in preference order: preview1, WasmEdge's ``name``
    (V1), then WasmEdge's ``name_v2`` (what WasmEdge links when the V1 type
    does not match the import)."""
    found = [f for f in (REGISTRY.get(name), EXTENSIONS.get(name)) if f is not None]
    if not name.endswith("_v2") and name + "_v2" in EXTENSIONS:
        found.append(EXTENSIONS[name + "_v2"])
    return found


# -- shared helpers --------------------------------------------------------------------


def socket_at(ctx: Any, fd: int, rights: int = 0) -> SocketEntry:
    """The socket at ``fd``: BADF, NOTSOCK, then NOTCAPABLE without ``rights``."""
    entry = ctx.fds.get(fd)
    if not entry.is_socket:
        raise WasiError(Errno.NOTSOCK)
    if rights & ~entry.rights_base:
        raise WasiError(Errno.NOTCAPABLE)
    return entry  # type: ignore[return-value]


# Results that are never awaitables: checked first because this runs on
# every socket call (inspect.isawaitable is the slow general test).
_PLAIN = (int, tuple, socket.socket, type(None))


def pending(result: Any, then: Callable[[Any], int]) -> ErrnoResult:
    """``then(result)`` now, or once ``result`` (an awaitable) is done."""
    if isinstance(result, _PLAIN) or not inspect.isawaitable(result):
        return then(result)
    return Later(_then_later, result, then)


async def _then_later(awaitable: Awaitable[Any], then: Callable[[Any], int]) -> int:
    return then(await awaitable)


# Plain ints: enum.Flag arithmetic costs microseconds on the per-call path.
_RECV_PEEK = int(Riflags.RECV_PEEK)
_RECV_WAITALL = int(Riflags.RECV_WAITALL)
_RIFLAGS_ALL = _RECV_PEEK | _RECV_WAITALL
_TRUNCATED = int(Roflags.RECV_DATA_TRUNCATED)
_MSG_TRUNC = int(socket.MSG_TRUNC)  # socket.MsgFlag is an enum too
_NO_RECV_FLAGS = (0, False)
_FD_READ = int(Rights.FD_READ)
_FD_WRITE = int(Rights.FD_WRITE)
_SUCCESS = int(Errno.SUCCESS)
_AGAIN = int(Errno.AGAIN)
_U32_PACK = ABI_U32.pack_into
_U16_PACK = U16.pack_into


def recv_flags(ri_flags: int) -> tuple[int, bool]:
    """``$riflags`` as (host MSG_PEEK or 0, waitall); INVAL for unknown bits."""
    if not ri_flags:
        return _NO_RECV_FLAGS
    if ri_flags & ~_RIFLAGS_ALL:
        raise WasiError(Errno.INVAL)
    peek = socket.MSG_PEEK if ri_flags & _RECV_PEEK else 0
    return peek, bool(ri_flags & _RECV_WAITALL)


def roflags(msg_flags: int) -> int:
    """The ``$roflags`` for host recvmsg ``msg_flags``."""
    return _TRUNCATED if msg_flags & _MSG_TRUNC else 0


def _store_accepted(ctx: Any, conn: socket.socket, fdflags: int, ro_fd: int, budgeted: bool) -> int:
    entry = accepted_entry(conn, fdflags)
    ctx.memory.store_u32(ro_fd, ctx.fds.add(entry, budgeted))
    return Errno.SUCCESS


def accept(ctx: Any, fd: int, flags: int, ro_fd: int) -> ErrnoResult:
    """``sock_accept`` of both ABIs: the new connection gets ``flags & NONBLOCK``.
    On a listener the guest made itself it takes a slot of the fd budget
    (:mod:`.fdbudget`); on a pre-opened one it does not."""
    entry = socket_at(ctx, fd, Rights.SOCK_ACCEPT)
    if flags & ~FDFLAGS_ALL:
        raise WasiError(Errno.INVAL)
    ctx.memory.check(ro_fd, 4)
    budgeted = not getattr(entry, "preopened", False)
    ctx.fds.check_room(budgeted)  # before accepting: the connection stays queued
    fdflags = flags & int(Fdflags.NONBLOCK)
    return pending(entry.accept(), lambda conn: _store_accepted(ctx, conn, fdflags, ro_fd, budgeted))


# -- WASI preview1 -----------------------------------------------------------------------


@host_function(fd=FD, flags=U32, ro_fd=PTR)
def sock_accept(ctx: Any, fd: int, flags: int, ro_fd: int) -> ErrnoResult:
    """Accept a connection on listening socket ``fd``; writes the new fd
    (u32) at ``ro_fd``. ``flags`` is an ``$fdflags``: NONBLOCK makes the new
    socket non-blocking (other defined bits are ignored). Waits (awaitable)
    on a blocking listener with no pending connection.
    Errnos: BADF, NOTSOCK, NOTCAPABLE (no SOCK_ACCEPT), INVAL (unknown flag
    bits, or ``fd`` not listening), FAULT, MFILE, NFILE, AGAIN (NONBLOCK listener)."""
    return accept(ctx, fd, flags, ro_fd)


@host_function(fd=FD, ri_data=PTR, ri_data_len=U32, ri_flags=U32, ro_datalen=PTR, ro_flags=PTR)
def sock_recv(ctx: Any, fd: int, ri_data: int, ri_data_len: int, ri_flags: int, ro_datalen: int,
              ro_flags: int) -> ErrnoResult:
    """Receive into ``ri_data_len`` iovecs at ``ri_data``; writes the byte
    count (u32, 0 = end of stream) at ``ro_datalen`` and ``$roflags`` (u16,
    RECV_DATA_TRUNCATED = 1 for a datagram cut short) at ``ro_flags``.
    ``ri_flags``: RECV_PEEK = 1, RECV_WAITALL = 2 (waits for full buffers on
    a blocking stream socket). Errnos: BADF, NOTSOCK, NOTCAPABLE (no
    FD_READ), INVAL (unknown flags, more than 1024 iovecs), FAULT, AGAIN,
    NOTCONN, CONNRESET."""
    entry = socket_at(ctx, fd, _FD_READ)
    peek, waitall = recv_flags(ri_flags) if ri_flags else _NO_RECV_FLAGS
    memory = ctx.memory
    buffers = memory.iovecs(ri_data, ri_data_len)
    memory.check(ro_datalen, 4)
    view = memory.view_to(ro_flags + 2)  # checks ro_flags; both outputs are inside `view` from now on
    if buffers and not waitall and entry.nonblocking:  # a non-blocking server's read: AGAIN is common
        got = entry.try_recv(buffers, peek)
        if got is None:
            return _AGAIN  # returned, not raised: an exception costs more than the rest of the call
    else:
        got = entry.recv(buffers, peek, waitall=waitall)
    if got.__class__ is tuple:  # data was there: no closure, no pending()
        _U32_PACK(view, ro_datalen, got[0])
        _U16_PACK(view, ro_flags, _TRUNCATED if got[1] & _MSG_TRUNC else 0)
        return _SUCCESS
    return pending(got, lambda got: _store_received(ctx.memory, ro_datalen, ro_flags, got))


def _store_received(memory: Any, ro_datalen: int, ro_flags: int, got: Any) -> int:
    n, msg_flags, _ = got
    memory.store_u32(ro_datalen, n)
    memory.pack(U16, ro_flags, _TRUNCATED if msg_flags & _MSG_TRUNC else 0)
    return _SUCCESS


@host_function(fd=FD, si_data=PTR, si_data_len=U32, si_flags=U32, so_datalen=PTR)
def sock_send(ctx: Any, fd: int, si_data: int, si_data_len: int, si_flags: int, so_datalen: int) -> ErrnoResult:
    """Send from ``si_data_len`` ciovecs at ``si_data``; writes the byte
    count (u32) at ``so_datalen``. ``si_flags`` has no defined bits and is
    ignored. Never raises SIGPIPE. Errnos: BADF, NOTSOCK, NOTCAPABLE (no
    FD_WRITE), INVAL, FAULT, AGAIN, PIPE, CONNRESET, NOTCONN."""
    entry = socket_at(ctx, fd, _FD_WRITE)
    memory = ctx.memory
    buffers = memory.iovecs(si_data, si_data_len)
    view = memory.view_to(so_datalen + 4)
    sent = entry.send(buffers)
    if sent.__class__ is int:  # sent at once
        _U32_PACK(view, so_datalen, sent)
        return _SUCCESS
    return pending(sent, lambda n: store_u32(ctx, so_datalen, n))


def store_u32(ctx: Any, ptr: int, value: int) -> int:
    """Write a u32 result and return SUCCESS (the tail of most socket calls)."""
    ctx.memory.store_u32(ptr, value)
    return Errno.SUCCESS


_SHUTDOWN_HOW = {
    int(Sdflags.RD): socket.SHUT_RD,
    int(Sdflags.WR): socket.SHUT_WR,
    int(Sdflags.RD | Sdflags.WR): socket.SHUT_RDWR,
}


@host_function(fd=FD, how=U32)
def sock_shutdown(ctx: Any, fd: int, how: int) -> ErrnoResult:
    """Shut down reading (RD = 1), writing (WR = 2) or both (3).
    Errnos: BADF, NOTSOCK, NOTCAPABLE (no SOCK_SHUTDOWN), INVAL (other
    ``how``), NOTCONN (not connected, or a listener: see
    :meth:`~.sockets.SocketEntry.shutdown`). Writes nothing."""
    entry = socket_at(ctx, fd, Rights.SOCK_SHUTDOWN)
    if how not in _SHUTDOWN_HOW:
        raise WasiError(Errno.INVAL)
    entry.shutdown(_SHUTDOWN_HOW[how])
    return Errno.SUCCESS


# -- aliases: WasmEdge's _v2 names for calls whose V2 is the preview1 function ---------------------

EXTENSIONS["sock_accept_v2"] = REGISTRY["sock_accept"]
EXTENSIONS["sock_recv_v2"] = REGISTRY["sock_recv"]
EXTENSIONS["sock_send_v2"] = REGISTRY["sock_send"]
