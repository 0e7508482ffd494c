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
import time
from typing import Any, Callable, Optional

import trio

from .abi import Errno, Eventrwflags, Rights, WasiError
from .fdtable import Entry, IoResult, OsEntry, Readiness, trim
from .later import Later

_READ_RIGHTS = int(Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE)
_WRITE_RIGHTS = int(
    Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE
    | Rights.FD_SYNC | Rights.FD_DATASYNC
)
# Seekable host files behind stdio keep their file rights (seek, tell, ...).
_FILE_EXTRA = int(Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_ADVISE | Rights.FD_FILESTAT_SET_TIMES)
_RECEIVE_SIZE = 65536


def _closed(*args: Any) -> Any:
    raise WasiError(Errno.BADF)


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

    def renew(self, spec: Any, rights: int) -> bool:
        if spec is not None:
            return False
        self.rights_base, self.rights_inheriting, self.fdflags = rights, 0, 0
        return True

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

    def renew(self, spec: Any, rights: int) -> bool:
        if spec.__class__ is not bytes:
            return False
        self.rights_base, self.rights_inheriting, self.fdflags = rights, 0, 0
        self._data, self._pos = spec, 0
        return True

    def close(self) -> None:
        self._data = b""

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

    def renew(self, spec: Any, rights: int) -> bool:
        if not callable(spec) or hasattr(spec, "write"):
            return False
        self.rights_base, self.rights_inheriting, self.fdflags = rights, 0, 0
        self._callback = spec
        return True

    def close(self) -> None:
        self._callback = _closed  # a closed context keeps no callback (nor what it holds) alive

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

    def renew(self, spec: Any, rights: int) -> bool:
        if self.__class__ is not CallbackReader or not callable(spec) or hasattr(spec, "read"):
            return False
        self.rights_base, self.rights_inheriting, self.fdflags = rights, 0, 0
        self._callback, self._pending, self._eof = spec, b"", False
        return True

    def close(self) -> None:
        self._callback, self._pending = _closed, b""

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


def renew_stdio(entry: Entry, spec: Any, fd: int) -> bool:
    """Make ``entry``, the in-memory entry of fd ``fd`` (0-2) of a
    context's last run, the entry ``spec`` would give, in place (rights,
    flags, data, position, callback); False when ``spec`` is of another
    kind (make a new entry). Only the in-memory kinds renew: they hold no
    host resource, and ``renew`` resets all a guest can change about them,
    so the next guest sees nothing of the last one's.

    Why: handler mode renews a context per request; three entries it need
    not make, put into the table and take out again per request."""
    return entry.renew(spec, _READ_RIGHTS if fd == 0 else _WRITE_RIGHTS)  # type: ignore[attr-defined]


def make_stdio(spec: Any, fd: int) -> Entry:
    """The entry of fd ``fd`` (0-2) for a WasiConfig stdin/stdout/stderr value."""
    return make_stdin(spec) if fd == 0 else make_output(spec, ("stdout", "stderr")[fd - 1], fd)


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


class OutputLimit:
    """At most ``rate`` bytes a second through the entries it :meth:`wrap`s
    (a context's fds 1 and 2 together), in bursts of up to one second's
    worth. A write past it is cut short to what is left, or, when less than
    50 ms worth is left, waits (an awaitable: only its own guest waits)
    until that much fits; a NONBLOCK fd gets ``AGAIN``. Nothing is buffered, so a guest that writes without end
    costs the host neither memory nor the other guests' time.

        >>> limit = OutputLimit(1 << 20)
        >>> limit.wrap(entry)                 # its writes now pass the limit
        >>> limit.written, limit.waits        # bytes let through; writes that had to wait

    ``waited`` is the seconds writes were held back in all (what a host
    logs to say a guest was throttled)."""

    __slots__ = ("rate", "_clock", "_tokens", "_stamp", "written", "waits", "waited")

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise ValueError(f"output rate must be an int >= 1 (bytes per second), not {rate!r}")
        self.rate = rate
        self._clock = clock
        self._tokens = float(rate)
        self._stamp: Optional[float] = None
        self.written = 0
        self.waits = 0
        self.waited = 0.0

    def _allowed(self) -> int:
        """Bytes that may go now (the bucket refilled first)."""
        now = self._clock()
        if self._stamp is not None:
            self._tokens = min(float(self.rate), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return int(self._tokens)

    def _spend(self, n: int) -> None:
        self._tokens -= n
        self.written += n

    def wrap(self, entry: Entry) -> None:
        """Make ``entry``'s writes (``writev``, and ``pwrite`` where it has
        a position) pass the limit; everything else about it (kind, rights,
        readiness) stays."""
        entry.writev = _Limited(self, entry, entry.writev)  # type: ignore[method-assign]
        if entry.seekable:
            entry.pwrite = _Limited(self, entry, entry.pwrite)  # type: ignore[method-assign]

    def _step(self, wanted: int) -> int:
        """The least a write may take: all of it, or 50 ms worth (so a guest
        past the limit sleeps in steps instead of spinning on tiny writes)."""
        return min(wanted, max(1, self.rate // 20))

    def write(self, entry: Entry, write: Callable[..., IoResult], buffers: list[memoryview], *rest: Any) -> IoResult:
        """``write(buffers, *rest)`` as far as the limit lets it now, or an
        awaitable that waits until a step of it fits."""
        wanted = _capacity(buffers)
        allowed = self._allowed() if wanted else 0
        if allowed < self._step(wanted):
            return entry.wait_or_again(lambda: self._write_later(write, buffers, rest))
        n = min(wanted, allowed)
        self._spend(n)
        return write(trim(buffers, n), *rest)

    async def _write_later(self, write: Callable[..., IoResult], buffers: list[memoryview], rest: tuple) -> int:
        wanted = _capacity(buffers)
        self.waits += 1
        while (allowed := self._allowed()) < self._step(wanted):
            pause = (self._step(wanted) - self._tokens) / self.rate
            self.waited += pause
            await trio.sleep(pause)
        n = min(wanted, allowed)
        self._spend(n)
        result = write(trim(buffers, n), *rest)
        return await result if not isinstance(result, int) else result


class _Limited:
    """An entry's write method behind an :class:`OutputLimit`."""

    __slots__ = ("limit", "entry", "write")

    def __init__(self, limit: OutputLimit, entry: Entry, write: Callable[..., IoResult]) -> None:
        self.limit, self.entry, self.write = limit, entry, write

    def __call__(self, buffers: list[memoryview], *rest: Any) -> IoResult:
        return self.limit.write(self.entry, self.write, buffers, *rest)


def _refuse(which: str, spec: Any) -> Any:
    raise TypeError(
        f"WasiConfig.{which}: unsupported value {type(spec).__name__}; use None, 'inherit', "
        + ("bytes, a binary file object, a callable or a trio ReceiveStream" if which == "stdin"
           else "a bytearray, io.BytesIO, a binary file object, a callable or a trio SendStream")
    )


__all__ = ["make_stdin", "make_output", "make_stdio", "renew_stdio", "OutputLimit", "NullEntry", "BytesSource", "PyReader", "PyWriter",
           "CallbackWriter", "CallbackReader", "TrioReader", "TrioWriter"]
