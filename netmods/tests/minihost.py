"""A minimal, blocking WASI-sockets host on wasmtime, for testing the netmods.

This is test scaffolding, not asyncwasm's host: it exists so the committed
.wasm files can be run end to end before the real (trio-based) host exists.
It implements exactly the imports the netmods use, with the layouts from
/work/shared/reference/sockets-abi.md:

- WASI preview1: args_*, environ_*, proc_exit, fd_write, fd_close,
  fd_fdstat_get, fd_fdstat_set_flags, clock_time_get, poll_oneoff,
  sock_accept (3 arguments), sock_recv, sock_send, sock_shutdown;
- WasmEdge V1: sock_open, sock_connect, sock_getaddrinfo (IPv4 only).

Guest fds 0-2 are stdio (captured), 3 is the pre-opened listener if given,
and sockets from accept/open get the next numbers. Blocking calls block the
calling thread, waking every 50 ms to honour stop(). Usage:

    host = MiniHost(wasm_path, args=["prog"], env={"A": "1"}, listener=sock)
    thread = host.start()          # or host.run() to run in this thread
    ...
    host.stop(); thread.join()
"""

from __future__ import annotations

import errno as host_errno
import select
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Callable

import wasmtime

P1 = "wasi_snapshot_preview1"

# Preview1 errno numbers used here (sockets-abi.md section 4.3).
SUCCESS, ACCES, AGAIN, BADF, CONNREFUSED, CONNRESET = 0, 2, 6, 8, 14, 15
INVAL, IO, NOTCONN, NOTSOCK, PIPE, NOTCAPABLE = 28, 29, 53, 57, 64, 76
AINONAME = 84

FILETYPE_CHARACTER_DEVICE, FILETYPE_SOCKET_STREAM = 2, 6
FDFLAGS_NONBLOCK = 4
EVENTTYPE_CLOCK, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE = 0, 1, 2
SUBCLOCKFLAGS_ABSTIME = 1
HANGUP = 1

_ERRNO_MAP = {
    host_errno.EAGAIN: AGAIN, host_errno.EBADF: BADF, host_errno.ECONNREFUSED: CONNREFUSED,
    host_errno.ECONNRESET: CONNRESET, host_errno.EINVAL: INVAL, host_errno.ENOTCONN: NOTCONN,
    host_errno.ENOTSOCK: NOTSOCK, host_errno.EPIPE: PIPE, host_errno.EACCES: ACCES,
}

WAKE_SECONDS = 0.05


class GuestExit(Exception):
    """The guest called proc_exit."""

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with status {code}")
        self.code = code


class HostStopped(Exception):
    """stop() was called while the guest was blocked in a host call."""


def _wasi_errno(exc: OSError) -> int:
    return _ERRNO_MAP.get(exc.errno or 0, IO)


class _Sock:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.nonblocking = False


class MiniHost:
    """Runs one netmods module with a blocking preview1 + WasmEdge socket host."""

    def __init__(self, wasm: Path | str, args: list[str] | None = None,
                 env: dict[str, str] | None = None, listener: socket.socket | None = None,
                 allow_connect: Callable[[str, int], bool] | None = None) -> None:
        self.wasm = Path(wasm)
        self.args = args or [self.wasm.stem]
        self.env = env or {}
        self.allow_connect = allow_connect or (lambda ip, port: ip.startswith("127."))
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self.calls: dict[str, int] = {}
        self._stop = threading.Event()
        self._fds: dict[int, _Sock] = {}
        self._next_fd = 3
        if listener is not None:
            self._fds[3] = _Sock(listener)
            self._next_fd = 4
        self._memory: wasmtime.Memory | None = None

    # -- running ----------------------------------------------------------------

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int | None:
        """Runs _start; records the exit code (or the error) and closes sockets."""
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        module = wasmtime.Module.from_file(engine, str(self.wasm))
        for imp in module.imports:
            fn = getattr(self, f"_{imp.name}", None)
            if imp.module != P1 or fn is None:
                raise RuntimeError(f"minihost does not provide {imp.module}.{imp.name}")
            linker.define_func(P1, imp.name, imp.type, self._wrap(imp.name, fn),
                               access_caller=True)
        try:
            instance = linker.instantiate(store, module)
            self._memory = instance.exports(store)["memory"]
            instance.exports(store)["_start"](store)
            self.exit_code = 0
        except GuestExit as exc:
            self.exit_code = exc.code
        except wasmtime.ExitTrap as exc:
            self.exit_code = exc.code
        except HostStopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to report
            if isinstance(exc.__cause__, GuestExit):
                self.exit_code = exc.__cause__.code
            elif not self._stop.is_set():
                self.error = exc
        finally:
            for entry in self._fds.values():
                entry.sock.close()
            self._fds.clear()
        return self.exit_code

    def _wrap(self, name: str, fn: Callable) -> Callable:
        def call(caller, *args):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(caller, *args)
        return call

    # -- memory helpers -----------------------------------------------------------

    def _read(self, caller, ptr: int, n: int) -> bytes:
        return bytes(self._memory.read(caller, ptr, ptr + n))

    def _write(self, caller, ptr: int, data: bytes) -> None:
        self._memory.write(caller, data, ptr)

    def _u32(self, caller, ptr: int) -> int:
        return struct.unpack("<I", self._read(caller, ptr, 4))[0]

    def _put_u32(self, caller, ptr: int, v: int) -> None:
        self._write(caller, ptr, struct.pack("<I", v))

    def _iovecs(self, caller, ptr: int, count: int) -> list[tuple[int, int]]:
        raw = self._read(caller, ptr, 8 * count)
        return [struct.unpack_from("<II", raw, 8 * i) for i in range(count)]

    def _strings(self, caller, ptrs: int, buf: int, items: list[str]) -> int:
        offset = buf
        for i, s in enumerate(items):
            data = s.encode() + b"\0"
            self._write(caller, offset, data)
            self._put_u32(caller, ptrs + 4 * i, offset)
            offset += len(data)
        return SUCCESS

    def _sizes(self, caller, count_ptr: int, size_ptr: int, items: list[str]) -> int:
        self._put_u32(caller, count_ptr, len(items))
        self._put_u32(caller, size_ptr, sum(len(s.encode()) + 1 for s in items))
        return SUCCESS

    def _blocking(self, entry: _Sock, events: int) -> None:
        """Waits until ready, waking up to notice stop()."""
        poller = select.poll()
        poller.register(entry.sock.fileno(), events)
        while not poller.poll(int(WAKE_SECONDS * 1000)):
            if self._stop.is_set():
                raise HostStopped()

    # -- preview1: process ----------------------------------------------------------

    def _args_get(self, caller, argv, buf):
        return self._strings(caller, argv, buf, self.args)

    def _args_sizes_get(self, caller, count, size):
        return self._sizes(caller, count, size, self.args)

    def _environ_get(self, caller, environ, buf):
        return self._strings(caller, environ, buf, [f"{k}={v}" for k, v in self.env.items()])

    def _environ_sizes_get(self, caller, count, size):
        return self._sizes(caller, count, size, [f"{k}={v}" for k, v in self.env.items()])

    def _proc_exit(self, caller, code):
        raise GuestExit(code)

    def _clock_time_get(self, caller, clock_id, precision, out):
        now = time.monotonic_ns() if clock_id == 1 else time.time_ns()
        self._write(caller, out, struct.pack("<Q", now))
        return SUCCESS

    # -- preview1: fds --------------------------------------------------------------

    def _fd_write(self, caller, fd, iovs, count, nwritten):
        data = b"".join(self._read(caller, p, n) for p, n in self._iovecs(caller, iovs, count))
        if fd == 1:
            self.stdout += data
        elif fd == 2:
            self.stderr += data
        elif fd in self._fds:
            return self._sock_send(caller, fd, iovs, count, 0, nwritten)
        else:
            return BADF
        self._put_u32(caller, nwritten, len(data))
        return SUCCESS

    def _fd_close(self, caller, fd):
        entry = self._fds.pop(fd, None)
        if entry is None:
            return BADF
        entry.sock.close()
        return SUCCESS

    def _fd_fdstat_get(self, caller, fd, out):
        if fd in (0, 1, 2):
            filetype, flags = FILETYPE_CHARACTER_DEVICE, 0
        elif fd in self._fds:
            filetype = FILETYPE_SOCKET_STREAM
            flags = FDFLAGS_NONBLOCK if self._fds[fd].nonblocking else 0
        else:
            return BADF
        rights = (1 << 64) - 1
        self._write(caller, out, struct.pack("<BxHxxxxQQ", filetype, flags, rights, rights))
        return SUCCESS

    def _fd_fdstat_set_flags(self, caller, fd, flags):
        entry = self._fds.get(fd)
        if entry is None:
            return BADF
        entry.nonblocking = bool(flags & FDFLAGS_NONBLOCK)
        return SUCCESS

    # -- preview1: poll_oneoff (subscription 48 bytes, event 32 bytes) ---------------

    def _poll_oneoff(self, caller, in_ptr, out_ptr, nsubs, nevents_ptr):
        if nsubs == 0:
            return INVAL
        raw = self._read(caller, in_ptr, 48 * nsubs)
        poller = select.poll()
        fd_subs: list[tuple[int, int, int, int]] = []   # (userdata, tag, guest fd, host fd)
        deadline = None
        clock_userdata = []
        for i in range(nsubs):
            userdata, tag = struct.unpack_from("<QB", raw, 48 * i)
            if tag == EVENTTYPE_CLOCK:
                clock_id, timeout, _precision, flags = struct.unpack_from("<IxxxxQQH", raw, 48 * i + 16)
                now = time.monotonic_ns() if clock_id == 1 else time.time_ns()
                at = timeout if flags & SUBCLOCKFLAGS_ABSTIME else now + timeout
                at_mono = time.monotonic_ns() + max(0, at - now)
                deadline = at_mono if deadline is None else min(deadline, at_mono)
                clock_userdata.append(userdata)
            else:
                fd = struct.unpack_from("<I", raw, 48 * i + 16)[0]
                entry = self._fds.get(fd)
                host_fd = entry.sock.fileno() if entry else -1
                fd_subs.append((userdata, tag, fd, host_fd))
                if host_fd >= 0:
                    poller.register(host_fd, select.POLLIN if tag == EVENTTYPE_FD_READ
                                    else select.POLLOUT)
        events: list[bytes] = []
        while True:
            wait = WAKE_SECONDS
            if deadline is not None:
                wait = min(wait, max(0.0, (deadline - time.monotonic_ns()) / 1e9))
            ready = dict(poller.poll(int(wait * 1000)))
            for userdata, tag, fd, host_fd in fd_subs:
                if host_fd < 0:
                    events.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, BADF, tag, 0, 0))
                elif ready.get(host_fd):
                    rev = ready[host_fd]
                    flags = HANGUP if rev & select.POLLHUP else 0
                    events.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, 0, tag, 1, flags))
            if deadline is not None and time.monotonic_ns() >= deadline:
                for userdata in clock_userdata:
                    events.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, 0, EVENTTYPE_CLOCK,
                                              0, 0))
            if events:
                break
            if self._stop.is_set():
                raise HostStopped()
        self._write(caller, out_ptr, b"".join(events))
        self._put_u32(caller, nevents_ptr, len(events))
        return SUCCESS

    # -- preview1: sockets -------------------------------------------------------------

    def _add_fd(self, sock: socket.socket, nonblocking: bool = False) -> int:
        fd = self._next_fd
        self._next_fd += 1
        entry = _Sock(sock)
        entry.nonblocking = nonblocking
        self._fds[fd] = entry
        return fd

    def _sock_accept(self, caller, fd, flags, out):
        entry = self._fds.get(fd)
        if entry is None:
            return BADF
        if not entry.nonblocking:
            self._blocking(entry, select.POLLIN)
        try:
            entry.sock.setblocking(False)
            conn, _ = entry.sock.accept()
        except BlockingIOError:
            return AGAIN
        except OSError as exc:
            return _wasi_errno(exc)
        conn.setblocking(False)
        self._put_u32(caller, out, self._add_fd(conn, bool(flags & FDFLAGS_NONBLOCK)))
        return SUCCESS

    def _sock_recv(self, caller, fd, iovs, count, riflags, nread_ptr, roflags_ptr):
        entry = self._fds.get(fd)
        if entry is None:
            return BADF
        vecs = self._iovecs(caller, iovs, count)
        want = sum(n for _, n in vecs)
        if not entry.nonblocking:
            self._blocking(entry, select.POLLIN)
        try:
            data = entry.sock.recv(want)
        except BlockingIOError:
            return AGAIN
        except OSError as exc:
            return _wasi_errno(exc)
        offset = 0
        for ptr, n in vecs:
            piece = data[offset:offset + n]
            self._write(caller, ptr, piece)
            offset += len(piece)
        self._put_u32(caller, nread_ptr, len(data))
        self._write(caller, roflags_ptr, b"\0\0")   # u16 roflags
        return SUCCESS

    def _sock_send(self, caller, fd, iovs, count, siflags, nsent_ptr):
        entry = self._fds.get(fd)
        if entry is None:
            return BADF
        data = b"".join(self._read(caller, p, n) for p, n in self._iovecs(caller, iovs, count))
        if not entry.nonblocking:
            self._blocking(entry, select.POLLOUT)
        try:
            sent = entry.sock.send(data)
        except BlockingIOError:
            return AGAIN
        except OSError as exc:
            return _wasi_errno(exc)
        self._put_u32(caller, nsent_ptr, sent)
        return SUCCESS

    def _sock_shutdown(self, caller, fd, how):
        entry = self._fds.get(fd)
        if entry is None:
            return BADF
        modes = {1: socket.SHUT_RD, 2: socket.SHUT_WR, 3: socket.SHUT_RDWR}
        if how not in modes:
            return INVAL
        try:
            entry.sock.shutdown(modes[how])
        except OSError as exc:
            return _wasi_errno(exc)
        return SUCCESS

    # -- WasmEdge socket extension (V1) ---------------------------------------------------

    def _sock_open(self, caller, af, ty, out):
        if af != 1 or ty != 2:
            return INVAL
        self._put_u32(caller, out, self._add_fd(socket.socket(socket.AF_INET, socket.SOCK_STREAM)))
        return SUCCESS

    def _sock_connect(self, caller, fd, addr_ptr, port):
        entry = self._fds.get(fd)
        if entry is None:
            return BADF
        buf, buf_len = struct.unpack("<II", self._read(caller, addr_ptr, 8))
        if buf_len != 4:
            return INVAL
        ip = socket.inet_ntoa(self._read(caller, buf, 4))
        if not self.allow_connect(ip, port):
            return NOTCAPABLE
        try:
            entry.sock.settimeout(5)
            entry.sock.connect((ip, port))
            entry.sock.setblocking(False)
        except OSError as exc:
            return _wasi_errno(exc)
        return SUCCESS

    def _sock_getaddrinfo(self, caller, node, node_len, service, service_len, hints, res,
                          max_len, res_len):
        name = self._read(caller, node, node_len).rstrip(b"\0").decode()
        serv = self._read(caller, service, service_len).rstrip(b"\0").decode() or None
        try:
            infos = socket.getaddrinfo(name, serv, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror:
            return AINONAME
        entry = self._u32(caller, res)
        count = 0
        for _family, _type, _proto, _canon, (ip, port) in infos:
            if count >= max_len or entry == 0:
                break
            self._write(caller, entry + 2, bytes([1, 2, 1]))           # family, socktype, protocol
            self._put_u32(caller, entry + 8, 14)                        # ai_addrlen
            sockaddr = self._u32(caller, entry + 12)
            sa_data = self._u32(caller, sockaddr + 8)
            self._write(caller, sockaddr, bytes([1]))                   # sa_family inet4
            self._put_u32(caller, sockaddr + 4, 14)                     # sa_data_len
            self._write(caller, sa_data, struct.pack(">H", port) + socket.inet_aton(ip) + bytes(8))
            entry = self._u32(caller, entry + 24)                       # ai_next
            count += 1
        self._put_u32(caller, res_len, count)
        return SUCCESS
