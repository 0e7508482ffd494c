"""The per-call fast paths of the WASI host keep the ABI's semantics.

Covers the untraced callable that :func:`asyncwasm.wasi.decl.bind` generates
per signature (masking of i32/i64 arguments, signed kinds, errno
translation), :meth:`GuestMemory.iovecs` (one-iovec path and tables), and
the non-blocking ``sock_recv`` that answers AGAIN without raising.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from asyncwasm.wasi import decl
from asyncwasm.wasi.abi import Errno, Rights, WasiError
from asyncwasm.wasi.decl import FD, PTR, S64, U32, U64, HostFunction
from asyncwasm.wasi.fdtable import FdTable
from asyncwasm.wasi.memory import GuestMemory
from asyncwasm.wasi.sock import S32
from asyncwasm.wasi.sockets import SocketEntry
from asyncwasm._types import I32, FuncType


class _Memory:
    def __init__(self, size: int = 65536) -> None:
        self.data = bytearray(size)

    def view(self) -> memoryview:
        return memoryview(self.data)


class _Ctx:
    def __init__(self) -> None:
        self.memory = GuestMemory(_Memory())
        self.fds = FdTable()


def _function(impl: Any, **params: decl.Kind) -> HostFunction:
    functype = FuncType([kind.valtype for kind in params.values()], [I32])
    return HostFunction(impl.__name__, tuple(params.items()), functype, impl)


def test_generated_call_masks_unsigned_kinds_and_keeps_signed_ones() -> None:
    seen = []

    def probe(ctx: Any, fd: int, ptr: int, n: int, big: int, signed64: int, signed32: int) -> int:
        seen.append((fd, ptr, n, big, signed64, signed32))
        return 0

    call = decl.bind(_function(probe, fd=FD, ptr=PTR, n=U32, big=U64, signed64=S64, signed32=S32), _Ctx(), None)
    assert call(-1, -2, 5, -1, -3, -4) == 0
    assert seen == [(0xFFFFFFFF, 0xFFFFFFFE, 5, 0xFFFFFFFFFFFFFFFF, -3, -4)]
    assert call.__name__ == "probe"


def test_generated_call_translates_outcomes() -> None:
    outcomes: list[Any] = []

    def probe(ctx: Any, fd: int) -> Any:
        outcome = outcomes.pop()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    call = decl.bind(_function(probe, fd=FD), _Ctx(), None)
    cases = [
        (None, 0),
        (Errno.NOENT, int(Errno.NOENT)),
        (True, 1),
        (WasiError(Errno.BADF), int(Errno.BADF)),
        (ConnectionResetError(104, "reset"), int(Errno.CONNRESET)),
    ]
    for outcome, expected in cases:
        outcomes.append(outcome)
        result = call(1)
        assert result == expected and type(result) is int, outcome
    outcomes.append(KeyError("not an errno"))
    with pytest.raises(KeyError):
        call(1)


def test_generated_call_is_shared_per_signature() -> None:
    def one(ctx: Any, fd: int, ptr: int) -> int:
        return fd

    def two(ctx: Any, a: int, b: int) -> int:
        return b

    call_one = decl.bind(_function(one, fd=FD, ptr=PTR), _Ctx(), None)
    call_two = decl.bind(_function(two, a=U32, b=PTR), _Ctx(), None)
    assert call_one.__code__ is call_two.__code__  # one compiled factory for (u32, u32)
    assert (call_one(-1, 2), call_two(1, -1)) == (0xFFFFFFFF, 0xFFFFFFFF)


def _iovecs(memory: GuestMemory, ptr: int, count: int) -> Any:
    try:
        return [bytes(b) for b in memory.iovecs(ptr, count)]
    except WasiError as exc:
        return exc.errno


def test_iovecs_bounds_and_empty_buffers() -> None:
    raw = _Memory()
    memory = GuestMemory(raw)
    size = len(raw.data)
    struct.pack_into("<6I", raw.data, 100, 200, 3, 300, 0, 202, 2)
    raw.data[200:203] = b"abc"
    assert _iovecs(memory, 100, 1) == [b"abc"]
    assert _iovecs(memory, 100, 2) == [b"abc"]  # the empty one is dropped
    assert _iovecs(memory, 100, 3) == [b"abc", b"c\0"]
    assert _iovecs(memory, 108, 1) == []
    assert _iovecs(memory, size, 0) == []
    assert _iovecs(memory, size + 1, 0) == Errno.FAULT
    assert _iovecs(memory, size - 4, 1) == Errno.FAULT  # the table itself is out of bounds
    assert _iovecs(memory, size - 12, 2) == Errno.FAULT
    assert _iovecs(memory, 100, 1025) == Errno.INVAL
    struct.pack_into("<2I", raw.data, 120, size - 6, 7)  # a buffer one byte past the end
    assert _iovecs(memory, 120, 1) == Errno.FAULT
    assert _iovecs(memory, 112, 2) == Errno.FAULT
    struct.pack_into("<2I", raw.data, 120, size - 6, 6)
    assert _iovecs(memory, 120, 1) == [b"\0" * 6]


@pytest.mark.parametrize("nonblocking", [True, False])
def test_sock_recv_on_nonblocking_socket(nonblocking: bool) -> None:
    ctx = _Ctx()
    ours, peer = socket.socketpair()
    with peer:
        rights = int(Rights.FD_READ | Rights.FD_WRITE)
        fd = ctx.fds.add(SocketEntry(ours, rights_base=rights, fdflags=4 if nonblocking else 0))
        recv = decl.bind(decl.REGISTRY["sock_recv"], ctx, None)
        data = ctx.memory._memory.data
        struct.pack_into("<2I", data, 100, 1000, 16)
        if nonblocking:
            assert recv(fd, 100, 1, 0, 300, 304) == Errno.AGAIN
        else:
            pending = recv(fd, 100, 1, 0, 300, 304)
            assert not isinstance(pending, int)  # a blocking fd waits (awaitable)
            pending.close()
        peer.send(b"hello")
        assert recv(fd, 100, 1, 1, 300, 304) == 0  # RECV_PEEK leaves the bytes
        assert recv(fd, 100, 1, 0, 300, 304) == 0
        assert bytes(data[1000:1005]) == b"hello"
        assert struct.unpack_from("<IH", data, 300)[0] == 5
        assert recv(fd, 100, 1, 0, 65535, 304) == Errno.FAULT  # output checked before receiving
        assert recv(fd, 100, 1, 8, 300, 304) == Errno.INVAL
        ctx.fds.close(fd)


def test_handed_listener_never_receives_even_non_blocking() -> None:
    from asyncwasm.serve import Handoff
    from asyncwasm.wasi import WasiConfig
    from asyncwasm.wasi.abi import Fdflags
    from asyncwasm.wasi.context import WasiContext

    handoff = Handoff.bind(["127.0.0.1:0"])
    ctx = WasiContext(WasiConfig(listeners=[handoff]))
    try:
        entry = ctx.fds.get(3)
        entry.set_fdflags(int(Fdflags.NONBLOCK))
        with pytest.raises(WasiError) as info:
            entry.try_recv([memoryview(bytearray(4))], 0)
        assert info.value.errno == Errno.NOTCONN
    finally:
        ctx.close()
        handoff.close()
