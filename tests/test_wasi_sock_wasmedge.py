"""WasmEdge's socket extension on real loopback sockets: V1/V2 dispatch by
signature, the byte layouts of sockets-abi.md section 3.2, socket options,
getaddrinfo, the network policy inside the calls, and epoll_oneoff's edge
triggering. 127.0.0.1 / ::1 only; every wait is bounded."""

from __future__ import annotations

import logging
import socket
import struct

import pytest
import trio

from asyncwasm.wasi.netpolicy import LOGGER_NAME, NetPolicy
from asyncwasm.wasi.sock import candidates

from .test_wasi_sock import (
    ET,
    HANGUP,
    I32,
    LOOPBACK,
    NONBLOCK,
    TIMEOUT,
    Errno,
    FuncType,
    _accepted,
    _clock_sub,
    _connect,
    _events,
    _fd_sub,
    _finish,
    _guest,
    _pair,
    _poll,
    _port,
    _SockGuest,
    abi,
    wasi,
)

AF = abi.AddressFamily
SO = abi.SockOpt
WE = abi.WasmEdgeErrno
STREAM, DGRAM = int(abi.SockType.STREAM), int(abi.SockType.DGRAM)
LOCAL_ONLY = NetPolicy(listen=["127.0.0.1:*", "[::1]:*"], connect=["127.0.0.1:*", "[::1]:*"])


def _t(n: int) -> FuncType:
    return FuncType([I32] * n, [I32])


def _wasmedge(policy: NetPolicy = LOCAL_ONLY, **config) -> _SockGuest:
    config.setdefault("listeners", [])
    return _guest(net_policy=policy, **config)


def _address(guest: _SockGuest, ip: str) -> int:
    """A WasiAddress {buf, buf_len} holding the raw bytes of ``ip``."""
    raw = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    buf, length = guest.put(raw)
    ptr = guest.alloc(8)
    guest.memory.data[ptr : ptr + 8] = abi.WASI_ADDRESS.pack(buf, length)
    return ptr


def _storage(guest: _SockGuest, family: int, raw: bytes = b"") -> tuple[int, int]:
    """A WasiAddress over a 128-byte WasiAddrStorage; returns (address, buf)."""
    buf = guest.alloc(128)
    guest.memory.data[buf : buf + 128] = struct.pack("<H", family) + raw + bytes(126 - len(raw))
    ptr = guest.alloc(8)
    guest.memory.data[ptr : ptr + 8] = abi.WASI_ADDRESS.pack(buf, 128)
    return ptr, buf


def _buffer_address(guest: _SockGuest, size: int) -> tuple[int, int]:
    buf = guest.alloc(size)
    ptr = guest.alloc(8)
    guest.memory.data[ptr : ptr + 8] = abi.WASI_ADDRESS.pack(buf, size)
    return ptr, buf


def _open(guest: _SockGuest, af: int = AF.INET4, kind: int = STREAM) -> int:
    out = guest.alloc(4)
    assert guest.ext("sock_open", 3)(af, kind, out) == Errno.SUCCESS
    return guest.u32(out)


def _bind(guest: _SockGuest, fd: int, ip: str = "127.0.0.1", port: int = 0) -> int:
    return guest.ext("sock_bind", 3)(fd, _address(guest, ip), port)


def _localaddr(guest: _SockGuest, fd: int, size: int = 16, peer: bool = False) -> tuple[int, bytes, int, int]:
    """V1 get{local,peer}addr: (errno, raw address bytes, addr_type, port)."""
    address, buf = _buffer_address(guest, size)
    kind, port = guest.alloc(4), guest.alloc(4)
    errno = guest.ext("sock_getpeeraddr" if peer else "sock_getlocaladdr", 4)(fd, address, kind, port)
    return errno, guest.read(buf, size), guest.u32(kind), guest.u32(port)


# -- ABI constants (sockets-abi.md section 3.2, WasmEdge api.hpp) --------------------------------------


def test_wasmedge_struct_layouts():
    assert abi.WASI_ADDRESS.size == 8 and abi.WASI_SOCKADDR.size == 12 and abi.WASI_ADDRINFO.size == 28
    data = abi.WASI_ADDRINFO.pack(0x0102, 3, 4, 5, 0x11, 0x22, 0x33, 0x44, 0x55)
    assert data[0:2] == b"\x02\x01" and data[2:5] == bytes([3, 4, 5])
    assert [int.from_bytes(data[o : o + 4], "little") for o in (8, 12, 16, 20, 24)] == [0x11, 0x22, 0x33, 0x44, 0x55]
    assert abi.WASI_ADDRINFO_ADDRLEN_OFFSET == 8 and abi.WASI_ADDRINFO_CANONNAME_LEN_OFFSET == 20
    data = abi.WASI_SOCKADDR.pack(2, 26, 0x1234)
    assert data[0] == 2 and data[4:8] == (26).to_bytes(4, "little") and data[8:12] == (0x1234).to_bytes(4, "little")


def test_wasmedge_enum_values():
    assert [int(m) for m in abi.WasmEdgeErrno] == list(range(77, 88))
    assert [m.name for m in abi.SockOpt][:3] == ["REUSEADDR", "TYPE", "ERROR"] and int(SO.BINDTODEVICE) == 14
    assert (int(AF.INET4), int(AF.INET6), int(AF.AF_UNIX)) == (1, 2, 3)
    assert (DGRAM, STREAM) == (1, 2) and int(abi.Protocol.UDP) == 2
    assert [int(f) for f in abi.AiFlags] == [1 << i for i in range(7)] and abi.AIFLAGS_ALL == 0x7F


# -- linking by signature -------------------------------------------------------------------


def test_import_for_dispatches_by_signature_as_wasmedge_does():
    assert [f.impl.__name__ for f in candidates("sock_accept")] == ["sock_accept", "sock_accept_v1", "sock_accept"]
    with _wasmedge() as guest:
        ctx = guest.ctx
        assert ctx.import_for("sock_accept", _t(3))[0] == _t(3)  # preview1
        assert ctx.import_for("sock_accept", _t(2))[0] == _t(2)  # WasmEdge V1
        assert ctx.import_for("sock_accept", _t(4)) is None
        assert ctx.import_for("sock_recv_from", _t(8))[0] == _t(8)  # V2, what the crate imports
        assert ctx.import_for("sock_recv_from", _t(7))[0] == _t(7)  # V1
        assert ctx.import_for("sock_getlocaladdr", _t(3))[0] == _t(3)  # V2
        assert ctx.import_for("sock_getpeeraddr", _t(4))[0] == _t(4)  # V1
        for name, n in [("sock_open_v2", 3), ("epoll_oneoff", 4), ("sock_getaddrinfo", 8), ("fd_write", 4)]:
            assert ctx.import_for(name, _t(n)) is not None, name
        assert ctx.import_for("fd_write", _t(3)) is None
        assert ctx.import_for("no_such_function", _t(1)) is None
        assert set(ctx.imports()) == set(wasi.FUNCTIONS)  # imports() stays preview1


async def test_v1_accept_and_preview1_accept_share_a_name():
    with _wasmedge(listeners=[LOOPBACK]) as guest:
        v1 = guest.ctx.import_for("sock_accept", _t(2))[1]
        client = await _connect(_port(guest))
        out = guest.alloc(4)
        assert await _finish(v1(3, out)) == Errno.SUCCESS
        assert guest.fdstat(guest.u32(out))[1][1] == 0  # V1 accepts with flags 0
        await client.aclose()


# -- a server the way the crate builds one ------------------------------------------------------


async def test_crate_style_server_open_bind_listen_accept_peeraddr():
    with _wasmedge() as guest:
        fd = _open(guest)
        one = guest.put((1).to_bytes(4, "little"))[0]
        assert guest.ext("sock_setsockopt", 5)(fd, 0, int(SO.REUSEADDR), one, 4) == Errno.SUCCESS
        assert _bind(guest, fd) == Errno.SUCCESS
        assert guest.ext("sock_listen", 2)(fd, 128) == Errno.SUCCESS
        errno, raw, kind, port = _localaddr(guest, fd)
        assert errno == Errno.SUCCESS and raw[:4] == bytes([127, 0, 0, 1]) and kind == 4 and port > 0
        assert guest.fdstat(fd)[1][0] == abi.Filetype.SOCKET_STREAM
        client = await _connect(port)
        out = guest.alloc(4)
        assert await _finish(guest.ext("sock_accept", 2)(fd, out)) == Errno.SUCCESS
        conn = guest.u32(out)
        errno, raw, kind, peer_port = _localaddr(guest, conn, 4, peer=True)
        assert (errno, raw, kind, peer_port) == (Errno.SUCCESS, bytes([127, 0, 0, 1]), 4,
                                                 client.socket.getsockname()[1])
        await client.send_all(b"ping")
        result, where = guest.recv(conn, 16)
        assert await _finish(result) == Errno.SUCCESS and guest.received(where)[0] == b"ping"
        assert await _finish(guest.send(conn, b"pong")[0]) == Errno.SUCCESS
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(16) == b"pong"
        await client.aclose()


def test_address_layouts_v1_and_v2_on_ipv6():
    with _wasmedge(listeners=[("::1", 0)]) as guest:
        port = _port(guest)
        errno, raw, kind, got_port = _localaddr(guest, 3, 16)
        assert (errno, raw, kind, got_port) == (Errno.SUCCESS, socket.inet_pton(socket.AF_INET6, "::1"), 6, port)
        assert _localaddr(guest, 3, 4)[0] == Errno.NOMEM  # IPv6 does not fit 4 bytes
        assert _localaddr(guest, 3, 8)[0] == Errno.INVAL
        address, buf = _storage(guest, 0)
        port_out = guest.alloc(4)
        assert guest.ext("sock_getlocaladdr", 3)(3, address, port_out) == Errno.SUCCESS  # V2
        stored = guest.read(buf, 128)
        assert struct.unpack_from("<H", stored)[0] == AF.INET6
        assert stored[2:18] == socket.inet_pton(socket.AF_INET6, "::1") and guest.u32(port_out) == port
        small, _ = _buffer_address(guest, 16)
        assert guest.ext("sock_getlocaladdr", 3)(3, small, port_out) == Errno.INVAL  # V2 wants 128
        assert _localaddr(guest, 3, 16, peer=True)[0] == Errno.NOTCONN


def test_open_checks_family_and_type():
    with _wasmedge() as guest:
        sock_open, out = guest.ext("sock_open", 3), guest.alloc(4)
        assert sock_open(AF.AF_UNIX, STREAM, out) == Errno.NOSYS
        assert sock_open(AF.UNSPEC, STREAM, out) == Errno.INVAL
        assert sock_open(AF.INET4, 0, out) == Errno.INVAL
        assert sock_open(AF.INET4, STREAM, 1 << 30) == Errno.FAULT
        assert guest.ext("sock_open_v2", 3)(AF.INET6, DGRAM, out) == Errno.SUCCESS
        assert guest.fdstat(guest.u32(out))[1][0] == abi.Filetype.SOCKET_DGRAM


def test_bind_checks_address_family_and_port():
    with _wasmedge() as guest:
        fd = _open(guest)
        assert _bind(guest, fd, "::1") == Errno.AFNOSUPPORT  # IPv6 address, IPv4 socket
        assert _bind(guest, fd, port=70000) == Errno.INVAL
        bad, _ = _buffer_address(guest, 8)
        assert guest.ext("sock_bind", 3)(fd, bad, 0) == Errno.INVAL
        storage, _ = _storage(guest, AF.INET4, bytes([127, 0, 0, 1]))
        assert guest.ext("sock_bind", 3)(fd, storage, 0) == Errno.INVAL  # V1: no storage
        assert guest.ext("sock_bind_v2", 3)(fd, storage, 0) == Errno.SUCCESS
        assert _localaddr(guest, fd)[1][:4] == bytes([127, 0, 0, 1])
        unix, _ = _storage(guest, AF.AF_UNIX)
        assert guest.ext("sock_bind_v2", 3)(_open(guest), unix, 0) == Errno.NOSYS


# -- clients ---------------------------------------------------------------------------------


async def test_connect_send_and_receive():
    async with trio.open_nursery() as nursery:
        listener = trio.socket.socket()
        await listener.bind(LOOPBACK)
        listener.listen()
        port = listener.getsockname()[1]
        with listener, _wasmedge() as guest:
            fd = _open(guest)
            pending = guest.ext("sock_connect", 3)(fd, _address(guest, "127.0.0.1"), port)
            server, _ = await listener.accept()
            assert await _finish(pending) == Errno.SUCCESS
            assert await _finish(guest.send(fd, b"GET /")[0]) == Errno.SUCCESS
            with server, trio.fail_after(TIMEOUT):
                assert await server.recv(16) == b"GET /"
                await server.send(b"200")
                result, where = guest.recv(fd, 16)
                assert await _finish(result) == Errno.SUCCESS and guest.received(where)[0] == b"200"
            errno, raw, kind, peer_port = _localaddr(guest, fd, peer=True)
            assert (raw[:4], kind, peer_port) == (bytes([127, 0, 0, 1]), 4, port)
        nursery.cancel_scope.cancel()


async def test_nonblocking_connect_then_poll_and_so_error():
    listener = trio.socket.socket()
    await listener.bind(LOOPBACK)
    listener.listen()
    with listener, _wasmedge() as guest:
        fd = _open(guest)
        assert guest.call("fd_fdstat_set_flags", fd, NONBLOCK) == Errno.SUCCESS
        errno = guest.ext("sock_connect", 3)(fd, _address(guest, "127.0.0.1"), listener.getsockname()[1])
        assert errno in (Errno.SUCCESS, Errno.INPROGRESS)
        result, out, nevents = _poll(guest, _fd_sub(1, fd, ET.FD_WRITE))
        assert await _finish(result) == Errno.SUCCESS and _events(guest, out, nevents)[0][1] == 0
        value, size = guest.alloc(4), guest.alloc(4)
        guest.memory.data[size : size + 4] = (4).to_bytes(4, "little")
        assert guest.ext("sock_getsockopt", 5)(fd, 0, int(SO.ERROR), value, size) == Errno.SUCCESS
        assert guest.u32(value) == 0 and guest.u32(size) == 4


async def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(LOOPBACK)
        closed_port = probe.getsockname()[1]  # bound, never listening: connects are refused
        with _wasmedge() as guest:
            fd = _open(guest)
            result = guest.ext("sock_connect", 3)(fd, _address(guest, "127.0.0.1"), closed_port)
            assert await _finish(result) == Errno.CONNREFUSED


# -- the policy inside the calls -------------------------------------------------------------------


def test_policy_denials_happen_before_any_syscall(caplog):
    policy = NetPolicy(listen=["127.0.0.1:9000-9100"], connect=["127.0.0.1:80"])
    with _wasmedge(policy) as guest, caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        fd = _open(guest)
        assert _bind(guest, fd, "127.0.0.1", 0) == Errno.ACCES  # ephemeral port not allowed
        assert _localaddr(guest, fd)[3] == 0  # still unbound
        assert guest.ext("sock_listen", 2)(fd, 5) == Errno.ACCES  # would autobind 0.0.0.0:random
        connect = guest.ext("sock_connect", 3)
        assert connect(fd, _address(guest, "127.0.0.1"), 81) == Errno.ACCES
        assert connect(fd, _address(guest, "127.0.0.2"), 80) == Errno.ACCES
        v6 = _open(guest, AF.INET6)
        assert connect(v6, _address(guest, "::ffff:127.0.0.1"), 81) == Errno.ACCES  # mapped: judged as IPv4
        value = guest.put(b"lo\0")[0]
        assert guest.ext("sock_setsockopt", 5)(fd, 0, int(SO.BINDTODEVICE), value, 3) == Errno.ACCES
    denials = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert len(denials) == 6 and "sock_bind" in denials[0] and "port 0" in denials[0]


def test_default_policy_allows_only_the_preopened_listener():
    with _guest(listeners=[LOOPBACK]) as guest:  # WasiConfig default: NetPolicy() denies all
        fd = _open(guest)
        assert _bind(guest, fd) == Errno.ACCES
        assert guest.ext("sock_connect", 3)(fd, _address(guest, "127.0.0.1"), _port(guest)) == Errno.ACCES
        assert guest.ext("sock_listen", 2)(3, 10) == Errno.SUCCESS  # the host's listener: a no-op
        one = guest.put((1).to_bytes(4, "little"))[0]
        assert guest.ext("sock_setsockopt", 5)(3, 0, int(SO.KEEPALIVE), one, 4) == Errno.ACCES  # shared socket


# -- datagrams ---------------------------------------------------------------------------------------


async def test_udp_send_to_and_recv_from_layouts():
    peer = trio.socket.socket(type=socket.SOCK_DGRAM)
    await peer.bind(LOOPBACK)
    peer_port = peer.getsockname()[1]
    with peer, _wasmedge() as guest:
        fd = _open(guest, kind=DGRAM)
        assert _bind(guest, fd) == Errno.SUCCESS
        my_port = _localaddr(guest, fd)[3]
        await peer.sendto(b"datagram-one", ("127.0.0.1", my_port))
        # V2 (8 args): storage gets family and address, port as a network-order u16
        address, buf = _storage(guest, 0)
        data = guest.alloc(64)
        iovs, count = guest.iovecs([(data, 64)])
        port_out, nread, oflags = guest.alloc(4), guest.alloc(4), guest.alloc(4)
        guest.memory.data[port_out : port_out + 4] = b"\xaa\xaa\xaa\xaa"
        recv_from_v2 = guest.ext("sock_recv_from", 8)
        assert await _finish(recv_from_v2(fd, iovs, count, address, 0, port_out, nread, oflags)) == Errno.SUCCESS
        assert guest.read(data, guest.u32(nread)) == b"datagram-one"
        assert struct.unpack_from("<H", guest.read(buf, 2))[0] == AF.INET4
        assert guest.read(buf + 2, 4) == bytes([127, 0, 0, 1])
        assert guest.read(port_out, 4) == peer_port.to_bytes(2, "big") + b"\xaa\xaa"  # WasmEdge's quirk
        # V1 (7 args): raw bytes into a 4-byte buffer; truncation reported in roflags
        await peer.sendto(b"0123456789", ("127.0.0.1", my_port))
        address, buf = _buffer_address(guest, 4)
        small = guest.alloc(4)
        iovs, count = guest.iovecs([(small, 4)])
        recv_from_v1 = guest.ext("sock_recv_from", 7)
        assert await _finish(recv_from_v1(fd, iovs, count, address, 0, nread, oflags)) == Errno.SUCCESS
        assert guest.u32(nread) == 4 and guest.read(small, 4) == b"0123" and guest.read(buf, 4) == bytes([127, 0, 0, 1])
        assert int.from_bytes(guest.read(oflags, 2), "little") == abi.Roflags.RECV_DATA_TRUNCATED
        # send_to, allowed and denied
        ptr, length = guest.put(b"reply")
        iovs, count = guest.iovecs([(ptr, length)])
        sent = guest.alloc(4)
        send_to = guest.ext("sock_send_to", 7)
        assert send_to(fd, iovs, count, _address(guest, "127.0.0.1"), peer_port, 0, sent) == Errno.SUCCESS
        assert guest.u32(sent) == 5
        with trio.fail_after(TIMEOUT):
            assert (await peer.recvfrom(16))[0] == b"reply"
        assert send_to(fd, iovs, count, _address(guest, "10.0.0.1"), peer_port, 0, sent) == Errno.ACCES


# -- socket options --------------------------------------------------------------------------------


def _getopt(guest: _SockGuest, fd: int, name: int, size: int = 4, level: int = 0) -> tuple[int, bytes]:
    value, size_ptr = guest.alloc(max(size, 1)), guest.alloc(4)
    guest.memory.data[size_ptr : size_ptr + 4] = size.to_bytes(4, "little")
    errno = guest.ext("sock_getsockopt", 5)(fd, level, name, value, size_ptr)
    return errno, guest.read(value, guest.u32(size_ptr)) if errno == Errno.SUCCESS else b""


def test_socket_options():
    with _wasmedge() as guest:
        fd, udp = _open(guest), _open(guest, kind=DGRAM)
        setopt = guest.ext("sock_setsockopt", 5)
        assert _getopt(guest, fd, SO.REUSEADDR) == (Errno.SUCCESS, bytes(4))
        one = guest.put((1).to_bytes(4, "little"))[0]
        assert setopt(fd, 0, int(SO.REUSEADDR), one, 4) == Errno.SUCCESS
        assert _getopt(guest, fd, SO.REUSEADDR) == (Errno.SUCCESS, (1).to_bytes(4, "little"))
        assert _getopt(guest, fd, SO.TYPE) == (Errno.SUCCESS, (2).to_bytes(4, "little"))  # WASI stream
        assert _getopt(guest, udp, SO.TYPE) == (Errno.SUCCESS, (1).to_bytes(4, "little"))  # WASI dgram
        assert _getopt(guest, fd, SO.ERROR) == (Errno.SUCCESS, bytes(4))
        assert _getopt(guest, fd, SO.ACCEPTCONN) == (Errno.SUCCESS, bytes(4))
        timeval = (3).to_bytes(8, "little") + (250).to_bytes(8, "little")
        ptr = guest.put(timeval)[0]
        assert setopt(fd, 0, int(SO.SNDTIMEO), ptr, 16) == Errno.SUCCESS
        assert _getopt(guest, fd, SO.SNDTIMEO, 16) == (Errno.SUCCESS, timeval)
        assert _getopt(guest, fd, SO.SNDTIMEO, 4) == (Errno.SUCCESS, timeval[:4])
        assert setopt(fd, 0, int(SO.SNDTIMEO), ptr, 8) == Errno.INVAL
        bad = guest.put((0).to_bytes(8, "little") + (2_000_000).to_bytes(8, "little"))[0]
        assert setopt(fd, 0, int(SO.RCVTIMEO), bad, 16) == Errno.DOM
        assert _getopt(guest, fd, SO.REUSEADDR, level=1)[0] == Errno.INVAL
        assert _getopt(guest, fd, 15)[0] == Errno.INVAL
        assert _getopt(guest, fd, SO.BINDTODEVICE)[0] == Errno.NOPROTOOPT
        assert setopt(fd, 0, int(SO.TYPE), one, 4) == Errno.NOPROTOOPT
        assert setopt(fd, 0, int(SO.REUSEADDR), one, 0) == Errno.INVAL  # the kernel wants an int
        assert setopt(1, 0, int(SO.REUSEADDR), one, 4) == Errno.NOTSOCK


# -- getaddrinfo ----------------------------------------------------------------------------------------


def _addrinfo_chain(guest: _SockGuest, count: int, sa_size: int = 26) -> tuple[int, list[tuple[int, int, int]]]:
    """``count`` WasiAddrinfo entries chained by ai_next, as the crate lays
    them out; returns (res pointer holding the first, [(info, sockaddr, sa_data)])."""
    nodes = []
    for _ in range(count):
        info, sockaddr, data = guest.alloc(28, 4), guest.alloc(12, 4), guest.alloc(sa_size)
        guest.memory.data[sockaddr : sockaddr + 12] = abi.WASI_SOCKADDR.pack(int(AF.INET4), sa_size, data)
        nodes.append((info, sockaddr, data))
    for i, (info, sockaddr, _) in enumerate(nodes):
        nxt = nodes[i + 1][0] if i + 1 < count else 0
        guest.memory.data[info : info + 28] = abi.WASI_ADDRINFO.pack(0, 1, 2, 1, 0, sockaddr, 0, 0, nxt)
    res = guest.alloc(4)
    guest.memory.data[res : res + 4] = nodes[0][0].to_bytes(4, "little")
    return res, nodes


def _getaddrinfo(guest: _SockGuest, node: bytes, service: bytes, *, flags: int = 0, family: int = AF.INET4,
                 socktype: int = STREAM, protocol: int = 1, count: int = 3, max_len: int = 3):
    node_ptr = guest.put(node + b"\0")[0]
    service_ptr = guest.put(service + b"\0")[0]
    hints = guest.alloc(28, 4)
    guest.memory.data[hints : hints + 28] = abi.WASI_ADDRINFO.pack(flags, family, socktype, protocol, 0, 0, 0, 0, 0)
    res, nodes = _addrinfo_chain(guest, count)
    res_len = guest.alloc(4)
    result = guest.ext("sock_getaddrinfo", 8)(node_ptr, len(node) + 1, service_ptr, len(service) + 1, hints, res,
                                              max_len, res_len)
    return result, nodes, res_len


def _entry(guest, node):
    info, sockaddr, _ = node
    fields = abi.WASI_ADDRINFO.unpack(guest.read(info, 28))
    sa_family, sa_len, sa_ptr = abi.WASI_SOCKADDR.unpack(guest.read(sockaddr, 12))
    return fields, sa_family, guest.read(sa_ptr, sa_len)


def test_getaddrinfo_numeric_ipv4_layout():
    with _wasmedge() as guest:
        result, nodes, res_len = _getaddrinfo(guest, b"127.0.0.1", b"8080")
        assert result == Errno.SUCCESS and guest.u32(res_len) == 1
        fields, sa_family, data = _entry(guest, nodes[0])
        assert fields[:5] == (0, AF.INET4, STREAM, 1, 16)  # flags, family, socktype, protocol TCP, addrlen
        assert fields[5] == nodes[0][1]  # the guest's pointers are left alone
        assert sa_family == AF.INET4
        assert data == (8080).to_bytes(2, "big") + bytes([127, 0, 0, 1]) + bytes(8)


def test_getaddrinfo_numeric_ipv6_layout():
    with _wasmedge() as guest:
        result, nodes, res_len = _getaddrinfo(guest, b"::1", b"443", family=AF.INET6)
        assert result == Errno.SUCCESS and guest.u32(res_len) == 1
        fields, sa_family, data = _entry(guest, nodes[0])
        assert fields[1] == AF.INET6 and fields[4] == 28 and sa_family == AF.INET6
        assert data == (443).to_bytes(2, "big") + bytes(4) + socket.inet_pton(socket.AF_INET6, "::1") + bytes(4)


def test_getaddrinfo_stops_at_the_end_of_the_guest_chain():
    with _wasmedge() as guest:
        # no node + PASSIVE: the wildcard addresses of both families (no lookup at all)
        result, nodes, res_len = _getaddrinfo(guest, b"", b"80", flags=int(abi.AiFlags.AI_PASSIVE),
                                              family=AF.UNSPEC, count=1, max_len=5)
        assert result == Errno.SUCCESS and guest.u32(res_len) == 1


@pytest.mark.parametrize(
    "node, service, kwargs, expected",
    [
        (b"", b"", {}, WE.AINONAME),
        (b"127.0.0.1", b"80", {"max_len": 0}, WE.AIMEMORY),
        (b"127.0.0.1", b"80", {"flags": 0x80}, WE.AIBADFLAG),
        (b"", b"80", {"flags": int(abi.AiFlags.AI_CANONNAME)}, WE.AIBADFLAG),
        (b"127.0.0.1", b"80", {"family": 7}, WE.AIFAMILY),
        (b"127.0.0.1", b"80", {"protocol": 9}, Errno.NOSYS),
        (b"127.0.0.1", b"80", {"socktype": 5}, Errno.NOSYS),
        (b"127.0.0.1", b"no-such-service-name", {}, WE.AISERVICE),
        (b"::1", b"80", {"family": AF.INET4}, WE.AIADDRFAMILY),
        (b"localhost", b"80", {}, Errno.ACCES),  # a name lookup: the policy has no dns
    ],
)
def test_getaddrinfo_errors(node, service, kwargs, expected):
    with _wasmedge() as guest:
        result, nodes, res_len = _getaddrinfo(guest, node, service, **kwargs)
        assert result == expected
        assert _entry(guest, nodes[0])[0][4] == 0  # nothing written


def test_getaddrinfo_checks_every_pointer_before_writing():
    with _wasmedge() as guest:
        node_ptr, service_ptr = guest.put(b"127.0.0.1\0")[0], guest.put(b"80\0")[0]
        hints = guest.alloc(28, 4)
        res, nodes = _addrinfo_chain(guest, 1)
        info, sockaddr, data = nodes[0]
        guest.memory.data[sockaddr : sockaddr + 12] = abi.WASI_SOCKADDR.pack(1, 26, 1 << 30)  # sa_data out of bounds
        res_len = guest.alloc(4)
        call = guest.ext("sock_getaddrinfo", 8)
        assert call(node_ptr, 10, service_ptr, 3, hints, res, 1, res_len) == Errno.FAULT
        assert guest.read(info, 12) == abi.WASI_ADDRINFO.pack(0, 1, 2, 1, 0, sockaddr, 0, 0, 0)[:12]
        assert call(node_ptr, 10, service_ptr, 3, 1 << 30, res, 1, res_len) == Errno.FAULT


async def test_getaddrinfo_name_lookup_runs_in_a_thread_when_allowed():
    with _wasmedge(NetPolicy(dns=True)) as guest:
        result, nodes, res_len = _getaddrinfo(guest, b"localhost", b"80", family=AF.UNSPEC)
        assert not isinstance(result, int)  # suspends the guest, not the thread
        assert await _finish(result) == Errno.SUCCESS
        found = [_entry(guest, node) for node in nodes[: guest.u32(res_len)]]
        assert found and all(sa_family in (AF.INET4, AF.INET6) for _, sa_family, _ in found)
        assert all(data[:2] == (80).to_bytes(2, "big") for _, _, data in found)


# -- epoll_oneoff: edge-triggered ---------------------------------------------------------------------


def _epoll(guest, subs: bytes):
    n = len(subs) // 48
    sub_ptr = guest.alloc(len(subs))
    guest.memory.data[sub_ptr : sub_ptr + len(subs)] = subs
    out, nevents = guest.alloc(32 * n), guest.alloc(4)
    return guest.ext("epoll_oneoff", 4)(sub_ptr, out, n, nevents), out, nevents


async def test_epoll_oneoff_reports_each_readiness_change_once():
    with _guest(listeners=[LOOPBACK]) as guest:
        client, conn = await _pair(guest)
        await client.send_all(b"12345")
        await trio.sleep(0.02)
        subs = _fd_sub(1, conn) + _clock_sub(2, 30 * 10**6)
        result, out, nevents = _epoll(guest, subs)
        assert result == Errno.SUCCESS
        assert [(e[0], e[3]) for e in _events(guest, out, nevents)] == [(1, 5)]
        # not drained, nothing new: edge-triggered stays quiet until the clock
        result, out, nevents = _epoll(guest, subs)
        assert await _finish(result) == Errno.SUCCESS
        assert [e[0] for e in _events(guest, out, nevents)] == [2]
        # level-triggered poll_oneoff still says "readable"
        result, out, nevents = _poll(guest, subs)
        assert result == Errno.SUCCESS and [e[0] for e in _events(guest, out, nevents)] == [1]
        # new data is a new edge, even though it arrived between calls
        await client.send_all(b"678")
        await trio.sleep(0.02)
        result, out, nevents = _epoll(guest, subs)
        assert result == Errno.SUCCESS and [(e[0], e[3]) for e in _events(guest, out, nevents)] == [(1, 8)]
        # and a wait that is woken by the edge
        result, out, nevents = _epoll(guest, _fd_sub(3, conn) + _clock_sub(4, 60 * 10**9))
        assert not isinstance(result, int)
        await client.send_all(b"9")
        assert await _finish(result) == Errno.SUCCESS
        assert [e[0] for e in _events(guest, out, nevents)] == [3]
        await client.aclose()


async def test_epoll_oneoff_hangup_and_errors_and_level_fallback():
    with _guest(listeners=[LOOPBACK], stdin=b"abc") as guest:
        client, conn = await _pair(guest)
        client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        await client.aclose()
        await trio.sleep(0.05)
        result, out, nevents = _epoll(guest, _fd_sub(1, conn) + _fd_sub(2, 99) + _fd_sub(3, 0))
        assert await _finish(result) == Errno.SUCCESS
        events = {e[0]: e for e in _events(guest, out, nevents)}
        assert events[1][4] & HANGUP and events[2][1] == Errno.BADF and events[3][3] == 3
        result, out, nevents = _epoll(guest, _fd_sub(3, 0))  # in-memory stdin: level-triggered
        assert result == Errno.SUCCESS and _events(guest, out, nevents)[0][3] == 3


async def test_epoll_poller_closes_with_the_context():
    guest = _guest(listeners=[LOOPBACK])
    client = await _connect(_port(guest))
    conn = await _accepted(guest)
    result, _, _ = _epoll(guest, _fd_sub(1, conn) + _clock_sub(2, 0))
    assert result == Errno.SUCCESS
    poller = guest.ctx.net.edge_poller
    assert poller is not None and poller.fileno() >= 0
    guest.close()
    assert guest.ctx.net.edge_poller is None
    with pytest.raises(ValueError):
        poller.fileno()  # the epoll fd is closed
    await client.aclose()


async def test_epoll_registration_ends_with_the_fd_even_when_its_file_is_shared():
    with socket.create_server(LOOPBACK) as server, _guest(listeners=[server]) as guest:
        listener_host_fd = guest.ctx.fds.get(3).host_fd
        result, _, _ = _epoll(guest, _fd_sub(1, 3) + _clock_sub(2, 0))
        assert result == Errno.SUCCESS
        assert guest.call("fd_close", 3) == Errno.SUCCESS  # the host's `server` keeps the file alive
        fd = _open(guest, kind=DGRAM)  # quiet until a datagram comes (an unconnected TCP socket reports HUP)
        assert guest.ctx.fds.get(fd).host_fd == listener_host_fd  # the number is reused
        client = socket.create_connection(server.getsockname(), timeout=TIMEOUT)  # an edge on the old file
        await trio.sleep(0.02)
        result, out, nevents = _epoll(guest, _fd_sub(3, fd) + _clock_sub(4, 20 * 10**6))
        assert await _finish(result) == Errno.SUCCESS
        assert [e[0] for e in _events(guest, out, nevents)] == [4]  # no stale event for the new socket
        client.close()
