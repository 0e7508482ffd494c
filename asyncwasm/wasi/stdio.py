"""Entries for fds 0-2 built from the WasiConfig stdio values.

Rule: what sits behind fds 0-2 is reported as what it really is. A host fd
(``"inherit"``, or a file object with a ``fileno()``) becomes an
:class:`~asyncwasm.wasi.fdtable.OsEntry`, so a redirected file is a
``REGULAR_FILE``, a terminal a ``CHARACTER_DEVICE`` and a pipe ``UNKNOWN``.
In-memory sources and sinks have no host kind and are ``UNKNOWN`` too, like a
pipe (wasmtime reports its in-memory pipes the same way).

Rule: ``"inherit"`` borrows the process's fds 0-2 instead of duplicating
them (they live as long as the process), so stdio costs a guest no host fd;
a file object's fd is duplicated (its owner may close it first).

Rule: stdin 0 only reads and stdout/stderr only write (rights say so), and
a sink that must wait (a trio stream, an async callback) returns an
awaitable rather than blocking.
"""

from __future__ import annotations

import inspect
import io
import os
from typing import Any, Callable, Optional

import trio

from .abi import Errno, Eventrwflags, Rights, WasiError
from .fdtable import Entry, IoResult, OsEntry, Readiness
from .later import Later

_READ_RIGHTS = int(Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE)
_WRITE_RIGHTS = int(
    Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE
    | Rights.FD_SYNC | Rights.FD_DATASYNC
)
# Seekable host files behind stdio keep their file rights (seek, tell, ...).
_FILE_EXTRA = int(Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_ADVISE | Rights.FD_FILESTAT_SET_TIMES)
_RECEIVE_SIZE = 65536


def _scatter(data: bytes, buffers: list[memoryview]) -> int:
    """Copy ``data`` into ``buffers`` in order; returns the bytes copied."""
    done = 0
    for buf in buffers:
        if done >= len(data):
            break
        part = data[done : done + len(buf)]
        buf[: len(part)] = part
        done += len(part)
    return done


def _capacity(buffers: list[memoryview]) -> int:
    return sum(len(b) for b in buffers)


class NullEntry(Entry):
    """``None`` stdio: reads see end of file, writes vanish."""

    def readv(self, buffers: list[memoryview]) -> IoResult:
        return 0

    def writev(self, buffers: list[memoryview]) -> IoResult:
        return _capacity(buffers)


class BytesSource(Entry):
    """stdin from a bytes value: the guest reads it, then end of file."""

    def __init__(self, data: bytes, rights: int) -> None:
        super().__init__(rights)
        self._data = bytes(data)
        self._pos = 0

    def readv(self, buffers: list[memoryview]) -> IoResult:
        n = _scatter(self._data[self._pos : self._pos + _capacity(buffers)], buffers)
        self._pos += n
        return n

    def poll_read(self) -> Readiness:
        left = len(self._data) - self._pos
        return (left, 0 if left else int(Eventrwflags.FD_READWRITE_HANGUP))


class PyReader(Entry):
    """stdin from a Python binary file object without a host fd (e.g. BytesIO)."""

    def __init__(self, file: Any, rights: int) -> None:
        super().__init__(rights)
        self._file = file

    def readv(self, buffers: list[memoryview]) -> IoResult:
        total = 0
        for buf in buffers:
            if hasattr(self._file, "readinto"):
                n = self._file.readinto(buf) or 0
            else:
                data = self._file.read(len(buf)) or b""
                n = _scatter(data, [buf])
            total += n
            if n < len(buf):
                break
        return total


class PyWriter(Entry):
    """stdout/stderr into a bytearray, a BytesIO or a binary file object."""

    def __init__(self, sink: Any, rights: int) -> None:
        super().__init__(rights)
        self._sink = sink

    def writev(self, buffers: list[memoryview]) -> IoResult:
        data = b"".join(buffers)
        if isinstance(self._sink, bytearray):
            self._sink += data
        else:
            self._sink.write(data)
        return len(data)

    def sync(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    datasync = sync


class CallbackWriter(Entry):
    """stdout/stderr into ``callback(bytes)``; an awaitable result is awaited."""

    def __init__(self, callback: Callable[[bytes], Any], rights: int) -> None:
        super().__init__(rights)
        self._callback = callback

    def writev(self, buffers: list[memoryview]) -> IoResult:
        data = b"".join(buffers)
        result = self._callback(data)
        if result is not None and inspect.isawaitable(result):
            return Later(self._after, result, len(data))
        return len(data)

    @staticmethod
    async def _after(awaitable: Any, n: int) -> int:
        await awaitable
        return n


class CallbackReader(Entry):
    """stdin from ``callback(n) -> bytes``, or an awaitable of bytes when
    the data is not there yet (the guest waits for it; needs the async
    driver). ``b""`` is end of file; ``n`` is what the guest asked for, and
    a longer result is kept for its next reads.

    Strategy: one chunk of lookahead. Waiting for readiness (``poll_oneoff``)
    fetches a chunk and keeps it, so readiness never loses data; ``fd_read``
    serves the lookahead first."""

    def __init__(self, callback: Callable[[int], Any], rights: int) -> None:
        super().__init__(rights)
        self._callback = callback
        self._pending = b""
        self._eof = False

    def _take(self, buffers: list[memoryview]) -> int:
        n = _scatter(self._pending, buffers)
        self._pending = self._pending[n:]
        return n

    def _keep(self, chunk: Any) -> None:
        if chunk:
            self._pending = bytes(chunk)
        else:
            self._eof = True

    def readv(self, buffers: list[memoryview]) -> IoResult:
        if self._pending or self._eof or not buffers:
            return self._take(buffers)
        result = self._callback(_capacity(buffers))
        if not inspect.isawaitable(result):
            self._keep(result)
            return self._take(buffers)
        if self.nonblocking:
            getattr(result, "close", lambda: None)()
            raise WasiError(Errno.AGAIN)
        return Later(self._read_later, result, buffers)

    async def _read_later(self, awaitable: Any, buffers: list[memoryview]) -> int:
        self._keep(await awaitable)
        return self._take(buffers)

    def poll_read(self) -> Readiness:
        if self._pending:
            return (len(self._pending), 0)
        if self._eof:
            return (0, int(Eventrwflags.FD_READWRITE_HANGUP))
        return None

    async def wait_readable(self) -> None:
        if self._pending or self._eof:
            await trio.lowlevel.checkpoint()
            return
        result = self._callback(_RECEIVE_SIZE)
        self._keep(await result if inspect.isawaitable(result) else result)


class TrioReader(CallbackReader):
    """stdin from a ``trio.abc.ReceiveStream``: a :class:`CallbackReader`
    of its ``receive_some``."""

    def __init__(self, stream: trio.abc.ReceiveStream, rights: int) -> None:
        super().__init__(stream.receive_some, rights)


class TrioWriter(Entry):
    """stdout/stderr into a ``trio.abc.SendStream``: every write waits for
    ``send_all`` (so it needs the async driver)."""

    def __init__(self, stream: trio.abc.SendStream, rights: int) -> None:
        super().__init__(rights)
        self._stream = stream

    def writev(self, buffers: list[memoryview]) -> IoResult:
        data = b"".join(buffers)
        if not data:
            return 0
        return self.wait_or_again(lambda: self._send(data))

    async def _send(self, data: bytes) -> int:
        await self._stream.send_all(data)
        return len(data)

    def poll_write(self) -> Readiness:
        return (0, 0)

    async def wait_writable(self) -> None:
        await self._stream.wait_send_all_might_not_block()


def _host_fd_entry(fd: int, reading: bool, *, borrow: bool = False) -> OsEntry:
    """An entry for host fd ``fd`` (real kind, rights of its direction): the
    process's own stdio is borrowed (no fd per guest: a server with 10,000
    instances shares fds 0-2), anything else duplicated, since the caller's
    file object may be closed while the guest still runs."""
    if borrow:
        entry = OsEntry(fd, borrowed=True)
    else:
        dup = os.dup(fd)
        try:
            entry = OsEntry(dup)
        except BaseException:
            os.close(dup)
            raise
    own = _READ_RIGHTS if reading else _WRITE_RIGHTS
    if not entry.is_stream:
        own |= _FILE_EXTRA
    entry.rights_base &= own
    return entry


def _file_descriptor(obj: Any) -> Optional[int]:
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        return None
    try:
        return fileno()
    except (io.UnsupportedOperation, OSError, ValueError):
        return None


def make_stdin(spec: Any) -> Entry:
    """The fd 0 entry for a ``WasiConfig.stdin`` value."""
    if spec is None:
        return NullEntry(_READ_RIGHTS)
    if isinstance(spec, str):
        if spec != "inherit":
            raise ValueError(f'stdin string must be "inherit", not {spec!r} (pass bytes for input data)')
        return _host_fd_entry(0, reading=True, borrow=True)
    if isinstance(spec, (bytes, bytearray, memoryview)):
        return BytesSource(bytes(spec), _READ_RIGHTS)
    if callable(spec) and not hasattr(spec, "read"):  # before the (slower) ABC check below
        return CallbackReader(spec, _READ_RIGHTS)
    if isinstance(spec, trio.abc.ReceiveStream):
        return TrioReader(spec, _READ_RIGHTS)
    if isinstance(spec, io.TextIOBase):
        spec = getattr(spec, "buffer", None) or _refuse("stdin", spec)
    if hasattr(spec, "read") or hasattr(spec, "readinto"):
        fd = _file_descriptor(spec)
        if fd is not None:
            return _host_fd_entry(fd, reading=True)
        return PyReader(spec, _READ_RIGHTS)
    return _refuse("stdin", spec)


def make_output(spec: Any, which: str, host_fd: int) -> Entry:
    """The fd 1/2 entry for a ``WasiConfig.stdout``/``stderr`` value."""
    if spec is None:
        return NullEntry(_WRITE_RIGHTS)
    if isinstance(spec, str):
        if spec != "inherit":
            raise ValueError(f'{which} string must be "inherit", not {spec!r}')
        return _host_fd_entry(host_fd, reading=False, borrow=True)
    if isinstance(spec, (bytearray, io.BytesIO)):
        return PyWriter(spec, _WRITE_RIGHTS)
    if callable(spec) and not hasattr(spec, "write"):  # before the (slower) ABC checks below
        return CallbackWriter(spec, _WRITE_RIGHTS)
    if isinstance(spec, trio.abc.SendStream):
        return TrioWriter(spec, _WRITE_RIGHTS)
    if isinstance(spec, io.TextIOBase):
        spec = getattr(spec, "buffer", None) or _refuse(which, spec)
    if hasattr(spec, "write"):
        fd = _file_descriptor(spec)
        if fd is not None:
            flush = getattr(spec, "flush", None)
            if flush is not None:
                flush()  # what Python buffered must come before the guest's output
            return _host_fd_entry(fd, reading=False)
        return PyWriter(spec, _WRITE_RIGHTS)
    if callable(spec):
        return CallbackWriter(spec, _WRITE_RIGHTS)
    return _refuse(which, spec)


def _refuse(which: str, spec: Any) -> Any:
    raise TypeError(
        f"WasiConfig.{which}: unsupported value {type(spec).__name__}; use None, 'inherit', "
        + ("bytes, a binary file object, a callable or a trio ReceiveStream" if which == "stdin"
           else "a bytearray, io.BytesIO, a binary file object, a callable or a trio SendStream")
    )


__all__ = ["make_stdin", "make_output", "NullEntry", "BytesSource", "PyReader", "PyWriter",
           "CallbackWriter", "CallbackReader", "TrioReader", "TrioWriter"]
