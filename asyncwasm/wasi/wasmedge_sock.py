"""WasmEdge's socket extension, so guests built with its socket crate
(``wasmedge_wasi_socket``) run unchanged: ``sock_open``, ``sock_bind``,
``sock_listen``, ``sock_accept`` (V1, 2 arguments), ``sock_connect``,
``sock_recv_from``, ``sock_send_to``, ``sock_getlocaladdr``,
``sock_getpeeraddr``, ``sock_getsockopt``, ``sock_setsockopt``,
``sock_getaddrinfo``, and the ``_v2`` variants WasmEdge has. They live in
:data:`asyncwasm.wasi.sock.EXTENSIONS` (``WasiContext.import_for`` links
them by signature), work on the same socket entries as preview1's calls, and
follow the same rules (see :mod:`asyncwasm.wasi.sock`).

Sources: WasmEdge ``lib/host/wasi/wasifunc.cpp`` (argument checks, V1/V2)
and ``lib/host/wasi/inode-linux.cpp`` (the socket work); layouts in
docs/sockets-abi.md section 3. Where WasmEdge has a
quirk a guest can observe (V1 address types 4/6, the network-order port of
``sock_recv_from_v2``), it is kept and documented on the function.

The network policy (:mod:`.netpolicy`) decides bind, listen, connect,
send_to and name lookups; a denial is ACCES, logged on
``asyncwasm.wasi.net``. Differences from WasmEdge, all on the safe side:
ports above 65535 are INVAL (WasmEdge truncates them), AF_UNIX is NOSYS,
options on a host-preopened listener (shared with the host) are refused.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Optional

import trio

from .abi import (
    ADDR_STORAGE_ADDRESS_OFFSET,
    ADDR_STORAGE_FAMILY,
    ADDR_STORAGE_SIZE,
    AIFLAGS_ALL,
    U16,
    WASI_ADDRESS,
    WASI_ADDRINFO,
    WASI_ADDRINFO_ADDRLEN_OFFSET,
    WASI_ADDRINFO_CANONNAME_LEN_OFFSET,
    WASI_ADDRINFO_HEAD,
    WASI_SOCKADDR,
    AddressFamily,
    AiFlags,
    Errno,
    Protocol,
    Rights,
    SockOpt,
    SockOptLevel,
    SockType,
    WasiError,
    WasmEdgeErrno,
    errno_from_oserror,
)
from .decl import FD, PTR, U32
from .later import Later
from .netpolicy import IPAddress, deny, normalize_ip
from .sock import (
    S32,
    ErrnoResult,
    accept,
    extension_function,
    pending,
    recv_flags,
    roflags,
    socket_at,
    store_u32,
)
from .sockets import SocketEntry, python_sockaddr, socket_entry_for_guest, split_sockaddr, wasi_family

__all__ = ["sa_data"]


# -- addresses in guest memory ----------------------------------------------------


def _read_address(ctx: Any, address: int, *, storage: bool) -> IPAddress:
    """The IP in the ``WasiAddress`` at ``address``: buf_len 4 (IPv4 bytes),
    16 (IPv6 bytes) or, when ``storage`` (V2), 128 (a ``WasiAddrStorage``).
    INVAL for another length, NOSYS for an AF_UNIX storage, FAULT."""
    buf, buf_len = ctx.memory.unpack(WASI_ADDRESS, address)
    if buf_len in (4, 16):
        return ipaddress.ip_address(ctx.memory.read(buf, buf_len))
    if buf_len == ADDR_STORAGE_SIZE and storage:
        raw = ctx.memory.read(buf, ADDR_STORAGE_SIZE)
        (family,) = ADDR_STORAGE_FAMILY.unpack_from(raw, 0)
        start = ADDR_STORAGE_ADDRESS_OFFSET
        if family == AddressFamily.INET4:
            return ipaddress.IPv4Address(raw[start : start + 4])
        if family == AddressFamily.INET6:
            return ipaddress.IPv6Address(raw[start : start + 16])
        if family == AddressFamily.AF_UNIX:
            raise WasiError(Errno.NOSYS)  # WasmEdge without AF_UNIX allowed
        raise WasiError(Errno.INVAL)
    raise WasiError(Errno.INVAL)


def _check_port(port: int) -> int:
    if port > 0xFFFF:
        raise WasiError(Errno.INVAL)  # WasmEdge truncates to u16; a policy must see the real port
    return port


def _address_buffer(ctx: Any, address: int, sizes: tuple[int, ...]) -> tuple[int, int]:
    buf, buf_len = ctx.memory.unpack(WASI_ADDRESS, address)
    ctx.memory.check(buf, buf_len)
    if buf_len not in sizes:
        raise WasiError(Errno.INVAL)
    return buf, buf_len


def _write_raw_ip(ctx: Any, buf: int, buf_len: int, ip: IPAddress) -> None:
    """Raw address bytes into a V1 buffer (NOMEM when an IPv6 address does
    not fit a 4-byte buffer, as WasmEdge)."""
    if len(ip.packed) > buf_len:
        raise WasiError(Errno.NOMEM)
    ctx.memory.write(buf, ip.packed)


def _write_storage(ctx: Any, buf: int, ip: IPAddress) -> None:
    ctx.memory.pack(ADDR_STORAGE_FAMILY, buf, wasi_family(ip))
    ctx.memory.write(buf + ADDR_STORAGE_ADDRESS_OFFSET, ip.packed)


def _guest_sockaddr(entry: SocketEntry, ip: IPAddress, port: int) -> Any:
    return python_sockaddr(entry.host_socket().family, ip, port)


# -- open, bind, listen, accept, connect -------------------------------------------

_FAMILIES = {int(AddressFamily.INET4): socket.AF_INET, int(AddressFamily.INET6): socket.AF_INET6}
_TYPES = {int(SockType.DGRAM): socket.SOCK_DGRAM, int(SockType.STREAM): socket.SOCK_STREAM}


def _sock_open(ctx: Any, af: int, socktype: int, ro_fd: int) -> ErrnoResult:
    ctx.memory.check(ro_fd, 4)
    if af == AddressFamily.AF_UNIX:
        raise WasiError(Errno.NOSYS)  # WasmEdge without --allow-af-unix
    if af not in _FAMILIES or socktype not in _TYPES:
        raise WasiError(Errno.INVAL)
    ctx.fds.check_room()
    fd = ctx.fds.add(socket_entry_for_guest(_FAMILIES[af], _TYPES[socktype]))
    ctx.memory.store_u32(ro_fd, fd)
    return Errno.SUCCESS


@extension_function(af=U32, socktype=U32, ro_fd=PTR)
def sock_open(ctx: Any, af: int, socktype: int, ro_fd: int) -> ErrnoResult:
    """Open a socket; writes its fd (u32) at ``ro_fd``. ``af``: INET4 = 1,
    INET6 = 2 (AF_UNIX = 3 gives NOSYS); ``socktype``: DGRAM = 1, STREAM = 2.
    Needs no policy: the socket can do nothing until bind/connect pass it.
    Errnos: INVAL, NOSYS, FAULT, MFILE, NFILE (the process's fd budget)."""
    return _sock_open(ctx, af, socktype, ro_fd)


@extension_function("sock_open_v2", af=U32, socktype=U32, ro_fd=PTR)
def sock_open_v2(ctx: Any, af: int, socktype: int, ro_fd: int) -> ErrnoResult:
    """``sock_open`` (V2 has the same behaviour here: AF_UNIX is not offered)."""
    return _sock_open(ctx, af, socktype, ro_fd)


def _sock_bind(ctx: Any, fd: int, address: int, port: int, storage: bool) -> ErrnoResult:
    entry = socket_at(ctx, fd)
    ip = _read_address(ctx, address, storage=storage)
    sockaddr = _guest_sockaddr(entry, ip, _check_port(port))
    ctx.net.policy.check_listen("sock_bind", normalize_ip(ip), port)
    entry.host_socket().bind(sockaddr)
    return Errno.SUCCESS


@extension_function(fd=FD, address=PTR, port=U32)
def sock_bind(ctx: Any, fd: int, address: int, port: int) -> ErrnoResult:
    """Bind ``fd`` to the ``WasiAddress`` at ``address`` (8 bytes: buf u32
    @0, buf_len u32 @4; buf_len 4 = IPv4, 16 = IPv6 bytes in network order)
    and ``port`` (host order). Policy: ``listen`` rules.
    Errnos: BADF, NOTSOCK, INVAL (length, port > 65535, already bound),
    AFNOSUPPORT (family differs from the socket's), FAULT, ACCES, ADDRINUSE,
    ADDRNOTAVAIL."""
    return _sock_bind(ctx, fd, address, port, storage=False)


@extension_function("sock_bind_v2", fd=FD, address=PTR, port=U32)
def sock_bind_v2(ctx: Any, fd: int, address: int, port: int) -> ErrnoResult:
    """``sock_bind`` that also takes buf_len 128: a ``WasiAddrStorage``
    (family u16 @0: 1 = IPv4, 2 = IPv6; address bytes @2)."""
    return _sock_bind(ctx, fd, address, port, storage=True)


def _sock_listen(ctx: Any, fd: int, backlog: int) -> ErrnoResult:
    entry = socket_at(ctx, fd)
    if entry.preopened:
        return Errno.SUCCESS  # already listening; its backlog is the host's (the socket is shared)
    ip, port = entry.local_address()
    ctx.net.policy.check_listen("sock_listen", normalize_ip(ip), port)
    entry.host_socket().listen(max(0, min(backlog, socket.SOMAXCONN)))
    return Errno.SUCCESS


@extension_function(fd=FD, backlog=S32)
def sock_listen(ctx: Any, fd: int, backlog: int) -> ErrnoResult:
    """``listen(fd, backlog)`` (backlog clamped to 0..SOMAXCONN). Policy: the
    socket's local address must pass the ``listen`` rules (an unbound socket
    counts as the wildcard address, port 0). On a host-preopened listener
    it succeeds without changing anything. Errnos: BADF, NOTSOCK, ACCES, OPNOTSUPP (datagram socket), ADDRINUSE."""
    return _sock_listen(ctx, fd, backlog)


@extension_function("sock_listen_v2", fd=FD, backlog=S32)
def sock_listen_v2(ctx: Any, fd: int, backlog: int) -> ErrnoResult:
    """Same as ``sock_listen``."""
    return _sock_listen(ctx, fd, backlog)


@extension_function("sock_accept", fd=FD, ro_fd=PTR)
def sock_accept_v1(ctx: Any, fd: int, ro_fd: int) -> ErrnoResult:
    """WasmEdge V1 ``sock_accept(fd, *fd)``: the preview1 call with flags 0
    (registered as ``sock_accept``; ``sock_accept_v2`` is the preview1 one)."""
    return accept(ctx, fd, 0, ro_fd)



def _sock_connect(ctx: Any, fd: int, address: int, port: int, storage: bool) -> ErrnoResult:
    entry = socket_at(ctx, fd)
    ip = _read_address(ctx, address, storage=storage)
    sockaddr = _guest_sockaddr(entry, ip, _check_port(port))
    ctx.net.policy.check_connect("sock_connect", normalize_ip(ip), port)
    return pending(entry.connect(sockaddr), lambda _: Errno.SUCCESS)


@extension_function(fd=FD, address=PTR, port=U32)
def sock_connect(ctx: Any, fd: int, address: int, port: int) -> ErrnoResult:
    """Connect ``fd`` to a ``WasiAddress`` (as ``sock_bind``) and ``port``.
    A stream connect waits (awaitable) on a blocking fd, or gives INPROGRESS
    on a NONBLOCK one (then poll for FD_WRITE and read SO_ERROR). Policy:
    ``connect`` rules. Errnos: BADF, NOTSOCK, INVAL, AFNOSUPPORT, FAULT,
    ACCES, INPROGRESS, CONNREFUSED, TIMEDOUT, NETUNREACH, ISCONN."""
    return _sock_connect(ctx, fd, address, port, storage=False)


@extension_function("sock_connect_v2", fd=FD, address=PTR, port=U32)
def sock_connect_v2(ctx: Any, fd: int, address: int, port: int) -> ErrnoResult:
    """``sock_connect`` that also takes a 128-byte ``WasiAddrStorage``."""
    return _sock_connect(ctx, fd, address, port, storage=True)


# -- datagrams ---------------------------------------------------------------------


@extension_function(fd=FD, ri_data=PTR, ri_data_len=U32, address=PTR, ri_flags=U32, ro_datalen=PTR,
                    ro_flags=PTR)
def sock_recv_from(ctx: Any, fd: int, ri_data: int, ri_data_len: int, address: int, ri_flags: int,
                   ro_datalen: int, ro_flags: int) -> ErrnoResult:
    """WasmEdge V1 ``sock_recv_from`` (7 arguments): like ``sock_recv``,
    and the sender's raw IP bytes are written into the ``WasiAddress``
    buffer at ``address`` when it is big enough (4 for IPv4, 16 for IPv6).
    No port. Errnos: as ``sock_recv``."""
    return _recv_from(ctx, fd, ri_data, ri_data_len, address, ri_flags, None, ro_datalen, ro_flags)


@extension_function("sock_recv_from_v2", fd=FD, ri_data=PTR, ri_data_len=U32, address=PTR, ri_flags=U32,
                    ro_port=PTR, ro_datalen=PTR, ro_flags=PTR)
def sock_recv_from_v2(ctx: Any, fd: int, ri_data: int, ri_data_len: int, address: int, ri_flags: int,
                      ro_port: int, ro_datalen: int, ro_flags: int) -> ErrnoResult:
    """WasmEdge V2 ``sock_recv_from`` (8 arguments; what the crate imports as
    ``sock_recv_from``). The ``WasiAddress`` buffer is 4, 16 or 128 bytes; a
    128-byte ``WasiAddrStorage`` gets the family (u16 @0) and the address
    (@2). The port is written as a **u16 in network byte order** at
    ``ro_port`` (WasmEdge stores ``sin_port`` without ``ntohs``; kept so
    crate-built guests see what they see on WasmEdge). Errnos: as
    ``sock_recv``, INVAL for another buffer size."""
    return _recv_from(ctx, fd, ri_data, ri_data_len, address, ri_flags, ro_port, ro_datalen, ro_flags)


def _recv_from(ctx: Any, fd: int, ri_data: int, ri_data_len: int, address: int, ri_flags: int,
               ro_port: Optional[int], ro_datalen: int, ro_flags: int) -> ErrnoResult:
    entry = socket_at(ctx, fd, Rights.FD_READ)
    v2 = ro_port is not None
    buf, buf_len = ctx.memory.unpack(WASI_ADDRESS, address)
    ctx.memory.check(buf, buf_len)
    if v2 and buf_len not in (4, 16, ADDR_STORAGE_SIZE):
        raise WasiError(Errno.INVAL)
    peek, waitall = recv_flags(ri_flags)
    if ro_port is not None:
        ctx.memory.check(ro_port, 2)
    buffers = ctx.memory.iovecs(ri_data, ri_data_len)
    ctx.memory.check(ro_datalen, 4)
    ctx.memory.check(ro_flags, 2)
    family = entry.host_socket().family

    def store(got: Any) -> int:
        n, msg_flags, sender = got
        if sender is not None and family in (socket.AF_INET, socket.AF_INET6):
            ip, port = split_sockaddr(family, sender)
            if v2 and buf_len == ADDR_STORAGE_SIZE:
                _write_storage(ctx, buf, ip)
            elif buf_len >= len(ip.packed):
                ctx.memory.write(buf, ip.packed)
            if ro_port is not None:
                ctx.memory.write(ro_port, port.to_bytes(2, "big"))
        ctx.memory.store_u32(ro_datalen, n)
        ctx.memory.pack(U16, ro_flags, roflags(msg_flags))
        return Errno.SUCCESS

    return pending(entry.recv(buffers, peek, waitall=waitall), store)


def _send_to(ctx: Any, fd: int, si_data: int, si_data_len: int, address: int, port: int, storage: bool,
             so_datalen: int) -> ErrnoResult:
    entry = socket_at(ctx, fd, Rights.FD_WRITE)
    ip = _read_address(ctx, address, storage=storage)
    buffers = ctx.memory.iovecs(si_data, si_data_len)
    ctx.memory.check(so_datalen, 4)
    sockaddr = _guest_sockaddr(entry, ip, _check_port(port))
    ctx.net.policy.check_connect("sock_send_to", normalize_ip(ip), port)
    return pending(entry.send(buffers, sockaddr), lambda n: store_u32(ctx, so_datalen, n))


@extension_function(fd=FD, si_data=PTR, si_data_len=U32, address=PTR, port=U32, si_flags=U32, so_datalen=PTR)
def sock_send_to(ctx: Any, fd: int, si_data: int, si_data_len: int, address: int, port: int, si_flags: int,
                 so_datalen: int) -> ErrnoResult:
    """Send a datagram to a ``WasiAddress`` (4 or 16 bytes) and ``port``
    (host order); writes the count (u32) at ``so_datalen``. Policy:
    ``connect`` rules. Errnos: as ``sock_send``, plus ACCES, AFNOSUPPORT,
    ISCONN (connected stream socket)."""
    return _send_to(ctx, fd, si_data, si_data_len, address, port, False, so_datalen)


@extension_function("sock_send_to_v2", fd=FD, si_data=PTR, si_data_len=U32, address=PTR, port=U32,
                    si_flags=U32, so_datalen=PTR)
def sock_send_to_v2(ctx: Any, fd: int, si_data: int, si_data_len: int, address: int, port: int, si_flags: int,
                    so_datalen: int) -> ErrnoResult:
    """``sock_send_to`` that also takes a 128-byte ``WasiAddrStorage``."""
    return _send_to(ctx, fd, si_data, si_data_len, address, port, True, so_datalen)


# -- local and peer addresses ---------------------------------------------------------


def _addr_v1(ctx: Any, fd: int, address: int, ro_type: int, ro_port: int, peer: bool) -> ErrnoResult:
    entry = socket_at(ctx, fd)
    buf, buf_len = _address_buffer(ctx, address, (4, 16))
    ctx.memory.check(ro_type, 4)
    ctx.memory.check(ro_port, 4)
    ip, port = entry.peer_address() if peer else entry.local_address()
    _write_raw_ip(ctx, buf, buf_len, ip)
    ctx.memory.store_u32(ro_type, 4 if ip.version == 4 else 6)  # WasmEdge's V1 "workaround" values
    ctx.memory.store_u32(ro_port, port)
    return Errno.SUCCESS


def _addr_v2(ctx: Any, fd: int, address: int, ro_port: int, peer: bool) -> ErrnoResult:
    entry = socket_at(ctx, fd)
    buf, _ = _address_buffer(ctx, address, (ADDR_STORAGE_SIZE,))
    ctx.memory.check(ro_port, 4)
    ip, port = entry.peer_address() if peer else entry.local_address()
    _write_storage(ctx, buf, ip)
    ctx.memory.store_u32(ro_port, port)
    return Errno.SUCCESS


@extension_function(fd=FD, address=PTR, ro_type=PTR, ro_port=PTR)
def sock_getlocaladdr(ctx: Any, fd: int, address: int, ro_type: int, ro_port: int) -> ErrnoResult:
    """V1: the local address. The ``WasiAddress`` buffer (4 or 16 bytes)
    receives the raw IP bytes; writes the address type (u32: **4 or 6**,
    not the AddressFamily 1/2, as WasmEdge) at ``ro_type`` and the port
    (u32, host order) at ``ro_port``. Errnos: BADF, NOTSOCK, INVAL (buffer
    size), NOMEM (IPv6 address, 4-byte buffer), FAULT, NOSYS (not IP)."""
    return _addr_v1(ctx, fd, address, ro_type, ro_port, peer=False)


@extension_function(fd=FD, address=PTR, ro_type=PTR, ro_port=PTR)
def sock_getpeeraddr(ctx: Any, fd: int, address: int, ro_type: int, ro_port: int) -> ErrnoResult:
    """V1: the peer address, laid out as ``sock_getlocaladdr``.
    Errnos: as ``sock_getlocaladdr``, plus NOTCONN."""
    return _addr_v1(ctx, fd, address, ro_type, ro_port, peer=True)


@extension_function("sock_getlocaladdr_v2", fd=FD, address=PTR, ro_port=PTR)
def sock_getlocaladdr_v2(ctx: Any, fd: int, address: int, ro_port: int) -> ErrnoResult:
    """V2: the ``WasiAddress`` buffer must be a 128-byte ``WasiAddrStorage``
    (gets family u16 @0 = 1/2, address @2); port (u32, host order) at
    ``ro_port``. Errnos: as V1, INVAL unless the buffer is 128 bytes."""
    return _addr_v2(ctx, fd, address, ro_port, peer=False)


@extension_function("sock_getpeeraddr_v2", fd=FD, address=PTR, ro_port=PTR)
def sock_getpeeraddr_v2(ctx: Any, fd: int, address: int, ro_port: int) -> ErrnoResult:
    """V2 peer address, laid out as ``sock_getlocaladdr_v2``."""
    return _addr_v2(ctx, fd, address, ro_port, peer=True)


# -- socket options ----------------------------------------------------------------

#: WASI option -> host SOL_SOCKET option passed through as raw bytes.
_PASSTHROUGH = {
    SockOpt.REUSEADDR: socket.SO_REUSEADDR,
    SockOpt.TYPE: socket.SO_TYPE,
    SockOpt.ERROR: socket.SO_ERROR,
    SockOpt.DONTROUTE: socket.SO_DONTROUTE,
    SockOpt.BROADCAST: socket.SO_BROADCAST,
    SockOpt.SNDBUF: socket.SO_SNDBUF,
    SockOpt.RCVBUF: socket.SO_RCVBUF,
    SockOpt.KEEPALIVE: socket.SO_KEEPALIVE,
    SockOpt.OOBINLINE: socket.SO_OOBINLINE,
    SockOpt.LINGER: socket.SO_LINGER,  # struct linger {int, int}: same on wasm32 and the host
    SockOpt.RCVLOWAT: socket.SO_RCVLOWAT,
    SockOpt.ACCEPTCONN: socket.SO_ACCEPTCONN,
}
_TIMEOUTS = (SockOpt.RCVTIMEO, SockOpt.SNDTIMEO)
_MAX_OPTION_SIZE = 1024  # Python's getsockopt buffer limit; no SOL_SOCKET option comes close
_TIMEVAL_SIZE = 16  # wasm32 wasi-libc timeval: i64 tv_sec @0, i64 tv_usec @8
_WASI_SOCK_TYPE = {socket.SOCK_DGRAM: int(SockType.DGRAM), socket.SOCK_STREAM: int(SockType.STREAM)}


def _option(level: int, name: int) -> SockOpt:
    if level != SockOptLevel.SOL_SOCKET:
        raise WasiError(Errno.INVAL)
    try:
        return SockOpt(name)
    except ValueError:
        raise WasiError(Errno.INVAL) from None


@extension_function(fd=FD, level=U32, name=U32, flag=PTR, flag_size=PTR)
def sock_getsockopt(ctx: Any, fd: int, level: int, name: int, flag: int, flag_size: int) -> ErrnoResult:
    """Read a SOL_SOCKET option (level 0; names 0-14 as WasmEdge) into the
    buffer at ``flag`` whose size (u32) is read from and written back to
    ``flag_size``. SO_ERROR comes back as a WASI errno, SO_TYPE as the WASI
    sock type (1 dgram, 2 stream), RCVTIMEO/SNDTIMEO as a wasm32 timeval
    (16 bytes). Errnos: BADF, NOTSOCK, INVAL (level/name), FAULT,
    NOPROTOOPT (BINDTODEVICE)."""
    entry = socket_at(ctx, fd)
    option = _option(level, name)
    size = ctx.memory.load_u32(flag_size)
    ctx.memory.check(flag, size)
    size = min(size, _MAX_OPTION_SIZE)
    sock = entry.host_socket()
    if option in _TIMEOUTS:
        value = entry.timeouts[option][:size]
    elif option in _PASSTHROUGH:
        value = sock.getsockopt(socket.SOL_SOCKET, _PASSTHROUGH[option], size) if size else b""
        if option in (SockOpt.ERROR, SockOpt.TYPE) and len(value) == 4:
            number = int.from_bytes(value, "little", signed=True)
            if option == SockOpt.ERROR:
                number = int(_errno_of_host(number)) if number else 0
            else:
                number = _WASI_SOCK_TYPE.get(number, int(SockType.ANY))
            value = number.to_bytes(4, "little", signed=True)
    else:
        raise WasiError(Errno.NOPROTOOPT)
    ctx.memory.write(flag, value)
    ctx.memory.store_u32(flag_size, len(value))
    return Errno.SUCCESS


def _errno_of_host(number: int) -> Errno:
    return errno_from_oserror(OSError(number, ""))


@extension_function(fd=FD, level=U32, name=U32, flag=PTR, flag_size=U32)
def sock_setsockopt(ctx: Any, fd: int, level: int, name: int, flag: int, flag_size: int) -> ErrnoResult:
    """Set a SOL_SOCKET option from the ``flag_size`` bytes at ``flag``
    (ints are 4 bytes; LINGER is 8; RCVTIMEO/SNDTIMEO take a 16-byte wasm32
    timeval and bound this host's waits, since host sockets never block).
    BINDTODEVICE, and any host option on a pre-opened listener (shared with
    the host), are refused by policy (ACCES). Errnos: BADF, NOTSOCK, INVAL
    (level/name/size), FAULT, ACCES, NOPROTOOPT (read-only options)."""
    entry = socket_at(ctx, fd)
    option = _option(level, name)
    value = ctx.memory.read(flag, flag_size)
    if option == SockOpt.BINDTODEVICE:
        deny("sock_setsockopt", "SO_BINDTODEVICE")
    if option in _TIMEOUTS:
        if flag_size != _TIMEVAL_SIZE:
            raise WasiError(Errno.INVAL)
        seconds = int.from_bytes(value[:8], "little", signed=True)
        micros = int.from_bytes(value[8:], "little", signed=True)
        if seconds < 0 or not 0 <= micros < 1_000_000:
            raise WasiError(Errno.DOM)  # as setsockopt(2) for an out-of-range timeval
        entry.timeouts[option] = value
        return Errno.SUCCESS
    if option in (SockOpt.TYPE, SockOpt.ERROR, SockOpt.ACCEPTCONN):
        raise WasiError(Errno.NOPROTOOPT)
    if entry.preopened:  # its file description is shared with the host and other instances
        deny("sock_setsockopt", f"{option.name} on a pre-opened listener")
    entry.host_socket().setsockopt(socket.SOL_SOCKET, _PASSTHROUGH[option], value)
    return Errno.SUCCESS


# -- name resolution ----------------------------------------------------------------

_AI_FLAGS = (
    (AiFlags.AI_PASSIVE, socket.AI_PASSIVE),
    (AiFlags.AI_CANONNAME, socket.AI_CANONNAME),
    (AiFlags.AI_NUMERICHOST, socket.AI_NUMERICHOST),
    (AiFlags.AI_NUMERICSERV, socket.AI_NUMERICSERV),
    (AiFlags.AI_V4MAPPED, socket.AI_V4MAPPED),
    (AiFlags.AI_ALL, socket.AI_ALL),
    (AiFlags.AI_ADDRCONFIG, socket.AI_ADDRCONFIG),
)
_HOST_FAMILY = {int(AddressFamily.UNSPEC): socket.AF_UNSPEC, int(AddressFamily.INET4): socket.AF_INET,
                int(AddressFamily.INET6): socket.AF_INET6}
_HOST_TYPE = {int(SockType.ANY): 0, int(SockType.DGRAM): socket.SOCK_DGRAM, int(SockType.STREAM): socket.SOCK_STREAM}
_HOST_PROTO = {int(Protocol.IP): 0, int(Protocol.TCP): socket.IPPROTO_TCP, int(Protocol.UDP): socket.IPPROTO_UDP}
_WASI_PROTO = {0: int(Protocol.IP), socket.IPPROTO_TCP: int(Protocol.TCP), socket.IPPROTO_UDP: int(Protocol.UDP)}
_EAI = {
    getattr(socket, name): code
    for name, code in (
        ("EAI_ADDRFAMILY", WasmEdgeErrno.AIADDRFAMILY), ("EAI_AGAIN", WasmEdgeErrno.AIAGAIN),
        ("EAI_BADFLAGS", WasmEdgeErrno.AIBADFLAG), ("EAI_FAIL", WasmEdgeErrno.AIFAIL),
        ("EAI_FAMILY", WasmEdgeErrno.AIFAMILY), ("EAI_MEMORY", WasmEdgeErrno.AIMEMORY),
        ("EAI_NODATA", WasmEdgeErrno.AINODATA), ("EAI_NONAME", WasmEdgeErrno.AINONAME),
        ("EAI_SERVICE", WasmEdgeErrno.AISERVICE), ("EAI_SOCKTYPE", WasmEdgeErrno.AISOCKTYPE),
        ("EAI_SYSTEM", WasmEdgeErrno.AISYSTEM),
    )
    if hasattr(socket, name)
}

#: One resolved entry: (family, socktype, proto, canonname, sockaddr).
AddrInfo = tuple[int, int, int, str, Any]


def _c_string(ctx: Any, ptr: int, length: int) -> Optional[str]:
    """A NUL-terminated guest string (the length counts the NUL); None when empty."""
    raw = ctx.memory.read(ptr, length).split(b"\0", 1)[0]
    if not raw:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise WasiError(Errno.INVAL) from None  # host names reach getaddrinfo in ASCII (IDNA)


def _is_numeric_host(node: str) -> bool:
    try:
        normalize_ip(node)
        return True
    except ValueError:
        return False


def sa_data(family: int, sockaddr: Any) -> bytes:
    """The ``sa_data`` bytes WasmEdge writes: the host ``sockaddr`` from
    ``sin_port`` on. IPv4: port (BE u16), address (4), zero (8) = 14 bytes;
    IPv6: port (BE u16), flowinfo (BE u32), address (16), scope id (u32) =
    26 bytes."""
    if family == socket.AF_INET:
        return sockaddr[1].to_bytes(2, "big") + ipaddress.IPv4Address(sockaddr[0]).packed + bytes(8)
    host, port, flowinfo, scope_id = sockaddr
    return (port.to_bytes(2, "big") + flowinfo.to_bytes(4, "big")
            + ipaddress.IPv6Address(host.split("%", 1)[0]).packed + scope_id.to_bytes(4, "little"))


def _write_addrinfos(ctx: Any, first: int, infos: list[AddrInfo], ai_flags: int, max_len: int,
                     res_len: int) -> int:
    """Fill the guest's ``WasiAddrinfo`` chain starting at ``first`` with at
    most ``max_len`` results (fewer if the chain ends in a NULL ``ai_next``).
    Every pointer is checked before anything is written (FAULT)."""
    plan = []
    node = first
    for family, socktype, proto, canonname, sockaddr in infos[:max_len]:
        if plan and node == 0:
            break
        *_, ai_addr, ai_canonname, canonname_cap, ai_next = ctx.memory.unpack(WASI_ADDRINFO, node)
        _, sa_data_cap, sa_data_ptr = ctx.memory.unpack(WASI_SOCKADDR, ai_addr)
        data = sa_data(family, sockaddr)[:sa_data_cap]
        ctx.memory.check(sa_data_ptr, len(data))
        name = canonname.encode("ascii", "replace")[: canonname_cap - 1] if canonname_cap else b""
        ctx.memory.check(ai_canonname, len(name) + 1 if canonname_cap else 0)
        plan.append((node, family, socktype, proto, ai_addr, sa_data_ptr, data, ai_canonname, name, canonname_cap))
        node = ai_next
    for node, family, socktype, proto, ai_addr, sa_data_ptr, data, ai_canonname, name, canonname_cap in plan:
        wasi_af = _wasi_family_of(family)
        ctx.memory.pack(WASI_ADDRINFO_HEAD, node, ai_flags, wasi_af, _WASI_SOCK_TYPE.get(socktype, 0),
                        _WASI_PROTO.get(proto, 0))
        ctx.memory.store_u32(node + WASI_ADDRINFO_ADDRLEN_OFFSET, _HOST_SOCKADDR_SIZE[family])
        ctx.memory.store_u32(node + WASI_ADDRINFO_CANONNAME_LEN_OFFSET, len(name))
        if canonname_cap:
            ctx.memory.write(ai_canonname, name + b"\0")
        ctx.memory.pack(WASI_SOCKADDR, ai_addr, wasi_af, len(data), sa_data_ptr)
        ctx.memory.write(sa_data_ptr, data)
    ctx.memory.store_u32(res_len, len(plan))
    return Errno.SUCCESS


#: ``ai_addrlen`` as the host's getaddrinfo reports it (sizeof sockaddr_in / sockaddr_in6).
_HOST_SOCKADDR_SIZE = {socket.AF_INET: 16, socket.AF_INET6: 28}


def _wasi_family_of(host_family: int) -> int:
    return int(AddressFamily.INET4 if host_family == socket.AF_INET else AddressFamily.INET6)


def _only_ip(infos: list[Any]) -> list[AddrInfo]:
    return [info for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]


async def _resolve_later(args: tuple) -> list[AddrInfo]:
    try:
        return _only_ip(await trio.socket.getaddrinfo(*args))
    except socket.gaierror as exc:
        raise _AiError(_EAI.get(exc.errno, WasmEdgeErrno.AIFAIL)) from None


class _AiError(Exception):
    def __init__(self, code: int) -> None:
        self.code = int(code)


async def _resolve_and_store(ctx: Any, args: tuple, first: int, ai_flags: int, max_len: int, res_len: int) -> int:
    try:
        infos = await _resolve_later(args)
    except _AiError as exc:
        return exc.code
    return _write_addrinfos(ctx, first, infos, ai_flags, max_len, res_len)


@extension_function(node=PTR, node_len=U32, service=PTR, service_len=U32, hints=PTR, res=PTR, max_len=U32,
                    res_len=PTR)
def sock_getaddrinfo(ctx: Any, node: int, node_len: int, service: int, service_len: int, hints: int, res: int,
                     max_len: int, res_len: int) -> ErrnoResult:
    """``getaddrinfo(node, service, hints)`` into a guest-allocated chain.

    ``node``/``service``: NUL-terminated strings whose lengths include the
    NUL (empty = none). ``hints``: a ``WasiAddrinfo`` (28 bytes; ai_flags
    u16 @0 as bit flags PASSIVE 1, CANONNAME 2, NUMERICHOST 4, NUMERICSERV 8,
    V4MAPPED 16, ALL 32, ADDRCONFIG 64; ai_family u8 @2; ai_socktype u8 @3;
    ai_protocol u8 @4). ``*res`` (u32 at ``res``) points to the first of
    ``max_len`` ``WasiAddrinfo``s chained by ``ai_next`` @24; for each
    result the host writes ai_flags (0), ai_family (1/2), ai_socktype,
    ai_protocol (0 IP, 1 TCP, 2 UDP), ai_addrlen (16/28, the host sockaddr
    size), ai_canonname_len, the canonical name (when its buffer has room),
    and at ``ai_addr`` @12 a ``WasiSockaddr`` (sa_family u8 @0, sa_data_len
    u32 @4, sa_data ptr @8) whose ``sa_data`` gets the bytes of
    :func:`sa_data` (cut to the buffer's ``sa_data_len``). The count (u32)
    goes to ``res_len``. A host name (not a numeric address) needs the
    policy's ``dns``; the lookup runs in a worker thread (awaitable).
    Errnos: FAULT, INVAL, NOSYS (protocol/socktype), ACCES, and WasmEdge's
    AINONAME (84: both empty or not found), AIMEMORY (82: max_len 0),
    AIBADFLAG (79), AIFAMILY (81), AIAGAIN, AIFAIL, AISERVICE..."""
    node_name = _c_string(ctx, node, node_len)
    service_name = _c_string(ctx, service, service_len)
    ai_flags, ai_family, ai_socktype, ai_protocol = ctx.memory.unpack(WASI_ADDRINFO_HEAD, hints)
    first = ctx.memory.load_u32(res)
    ctx.memory.check(res_len, 4)
    if node_name is None and service_name is None:
        return int(WasmEdgeErrno.AINONAME)
    if max_len < 1:
        return int(WasmEdgeErrno.AIMEMORY)
    if ai_flags & ~AIFLAGS_ALL or (ai_flags & AiFlags.AI_CANONNAME and node_name is None):
        return int(WasmEdgeErrno.AIBADFLAG)
    if ai_family not in _HOST_FAMILY:
        return int(WasmEdgeErrno.AIFAMILY)
    if ai_protocol not in _HOST_PROTO or ai_socktype not in _HOST_TYPE:
        raise WasiError(Errno.NOSYS)
    flags = 0
    for wasi_flag, host_flag in _AI_FLAGS:
        if ai_flags & wasi_flag:
            flags |= host_flag
    args = (node_name, service_name, _HOST_FAMILY[ai_family], _HOST_TYPE[ai_socktype], _HOST_PROTO[ai_protocol])
    if node_name is not None and not _is_numeric_host(node_name):
        ctx.net.policy.check_dns("sock_getaddrinfo", node_name)
        return Later(_resolve_and_store, ctx, args + (flags,), first, ai_flags, max_len, res_len)
    try:  # numeric or no host: no network involved, answer at once
        infos = _only_ip(socket.getaddrinfo(*args, flags | (socket.AI_NUMERICHOST if node_name else 0)))
    except socket.gaierror as exc:
        return int(_EAI.get(exc.errno, WasmEdgeErrno.AIFAIL))
    return _write_addrinfos(ctx, first, infos, ai_flags, max_len, res_len)
