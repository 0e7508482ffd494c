"""The guest's file descriptor table and the host objects behind each fd.

Rule: a guest fd is an index into this per-instance table, never a host fd.
Each entry carries the WASI rights of that fd; every host function asks the
table for an entry *with* the rights it needs (``NOTCAPABLE`` otherwise), so
rights are enforced in one place.

Rule: no entry blocks the thread. Operations that would wait (reading a pipe
or terminal with no data, writing a full pipe) return an awaitable instead;
the engine suspends the guest's fiber on it (DESIGN.md contract 2). With the
guest's ``NONBLOCK`` fd flag set they return ``AGAIN`` instead of waiting.

Entries:

- :class:`Entry`: the interface, with the errno each operation gives on an
  object that does not support it.
- :class:`OsEntry`: a host fd (files, terminals, pipes, inherited stdio).
- :class:`DirEntry`: a host directory fd (preopens and opened directories).
- In-memory and trio stdio entries live in :mod:`asyncwasm.wasi.stdio`.
"""

from __future__ import annotations

import array
import errno as host_errno
import fcntl
import os
import select
import socket
import stat
import termios
from typing import Awaitable, Callable, Optional, Protocol, Sequence, Union

import trio

from .abi import (
    RIGHTS_DIRECTORY,
    RIGHTS_DIRECTORY_INHERITING,
    RIGHTS_REGULAR_FILE,
    RIGHTS_SOCKET,
    RIGHTS_STREAM,
    Errno,
    Eventrwflags,
    Fdflags,
    Filetype,
    WasiError,
)
from .fdbudget import FdBudget
from .later import Later

IoResult = Union[int, Awaitable[int]]
#: (dev, ino, filetype, nlink, size, atim, mtim, ctim), the ``$filestat`` fields.
Filestat = tuple[int, int, int, int, int, int, int, int]
#: Readiness for poll_oneoff: (nbytes, eventrwflags), or None when not ready.
Readiness = Optional[tuple[int, int]]

# Bytes one write to a pipe or socket may carry without blocking once poll()
# said "writable" (POSIX PIPE_BUF; Linux guarantees a free page).
_PIPE_BUF = select.PIPE_BUF


def filetype_of(st: os.stat_result, fd: Optional[int] = None) -> Filetype:
    """The WASI filetype of a host ``stat`` result. FIFOs are ``UNKNOWN``
    (preview1 has no pipe type); sockets are looked at through ``fd``."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Filetype.REGULAR_FILE
    if stat.S_ISDIR(mode):
        return Filetype.DIRECTORY
    if stat.S_ISCHR(mode):
        return Filetype.CHARACTER_DEVICE
    if stat.S_ISBLK(mode):
        return Filetype.BLOCK_DEVICE
    if stat.S_ISLNK(mode):
        return Filetype.SYMBOLIC_LINK
    if stat.S_ISSOCK(mode):
        if fd is not None:
            try:
                kind = _socket_type(fd)
            except OSError:
                kind = socket.SOCK_STREAM
            if kind == socket.SOCK_DGRAM:
                return Filetype.SOCKET_DGRAM
        return Filetype.SOCKET_STREAM
    return Filetype.UNKNOWN


def _socket_type(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    try:
        return sock.type
    finally:
        sock.detach()


def rights_for(filetype: Filetype) -> tuple[int, int]:
    """The full (base, inheriting) rights an fd of ``filetype`` can have."""
    if filetype == Filetype.DIRECTORY:
        return RIGHTS_DIRECTORY, RIGHTS_DIRECTORY_INHERITING
    if filetype in (Filetype.REGULAR_FILE, Filetype.BLOCK_DEVICE):
        return RIGHTS_REGULAR_FILE, 0
    if filetype in (Filetype.SOCKET_STREAM, Filetype.SOCKET_DGRAM):
        return RIGHTS_SOCKET, 0
    return RIGHTS_STREAM, 0


def filestat_of(st: os.stat_result, filetype: Filetype) -> Filestat:
    """A host ``stat`` result as ``$filestat`` field values."""
    return (
        st.st_dev,
        st.st_ino,
        int(filetype),
        st.st_nlink,
        st.st_size,
        st.st_atime_ns,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )


def trim(buffers: list[memoryview], limit: int) -> list[memoryview]:
    """The prefix of ``buffers`` holding at most ``limit`` bytes."""
    out = []
    for buf in buffers:
        if limit <= 0:
            break
        out.append(buf[:limit])
        limit -= len(buf)
    return out


class Entry:
    """One open guest file descriptor. Subclasses override what they support;
    the defaults give the errno POSIX would for an object that cannot."""

    filetype: Filetype = Filetype.UNKNOWN
    is_directory = False
    is_socket = False
    #: False for objects without a file position (pipes, terminals, sockets,
    #: in-memory stdio): positioned I/O on them is SPIPE, whatever the rights.
    seekable = False
    #: Bytes readable now although ``host_fd`` may not poll readable: data
    #: the entry holds itself (a TLS connection's decrypted plaintext).
    buffered = 0
    #: Guest-visible name when this fd is a preopen (``fd_prestat_*``).
    preopen_name: Optional[bytes] = None

    def __init__(self, rights_base: int, rights_inheriting: int = 0, fdflags: int = 0) -> None:
        # Plain ints: IntFlag's "~" would only invert the defined bits.
        self.rights_base = int(rights_base)
        self.rights_inheriting = int(rights_inheriting)
        self.fdflags = int(fdflags)

    @property
    def nonblocking(self) -> bool:
        return bool(self.fdflags & Fdflags.NONBLOCK)

    @property
    def host_fd(self) -> Optional[int]:
        """A host fd whose readiness the kernel can watch (``epoll_oneoff``
        registers it), or None for entries without one (in-memory stdio,
        regular files)."""
        return None

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` when the table closes this entry, just before its
        host resources go (``epoll_oneoff`` unregisters the host fd there:
        an epoll registration outlives an fd whose file is shared)."""
        if "close_hooks" not in self.__dict__:
            self.close_hooks: list[Callable[[], None]] = []
        self.close_hooks.append(hook)

    def release(self) -> None:
        """Run the close hooks, then :meth:`close` (what the table calls)."""
        hooks = self.__dict__.pop("close_hooks", ())
        try:
            for hook in hooks:
                hook()
        finally:
            self.close()

    def wait_or_again(self, waiter: Callable[[], Awaitable[int]]) -> IoResult:
        """``AGAIN`` for a NONBLOCK fd, else the awaitable that waits."""
        if self.nonblocking:
            raise WasiError(Errno.AGAIN)
        return Later(waiter)

    # -- I/O -------------------------------------------------------------
    def readv(self, buffers: list[memoryview]) -> IoResult:
        raise WasiError(Errno.BADF)

    def writev(self, buffers: list[memoryview]) -> IoResult:
        raise WasiError(Errno.BADF)

    def pread(self, buffers: list[memoryview], offset: int) -> int:
        raise WasiError(Errno.SPIPE)

    def pwrite(self, buffers: list[memoryview], offset: int) -> int:
        raise WasiError(Errno.SPIPE)

    def seek(self, offset: int, whence: int) -> int:
        raise WasiError(Errno.SPIPE)

    # -- metadata ----------------------------------------------------------
    def filestat(self) -> Filestat:
        return (0, 0, int(self.filetype), 1, 0, 0, 0, 0)

    def set_size(self, size: int) -> None:
        raise WasiError(Errno.INVAL)

    def set_times(self, atim: Optional[int], mtim: Optional[int]) -> None:
        raise WasiError(Errno.INVAL)

    def set_fdflags(self, fdflags: int) -> None:
        self.fdflags = fdflags

    def sync(self) -> None:
        pass

    def datasync(self) -> None:
        pass

    def allocate(self, offset: int, length: int) -> None:
        raise WasiError(Errno.SPIPE)

    def advise(self, offset: int, length: int, advice: int) -> None:
        raise WasiError(Errno.SPIPE)

    # -- readiness (poll_oneoff) --------------------------------------------
    def poll_read(self) -> Readiness:
        return (0, 0)

    def poll_write(self) -> Readiness:
        return (0, 0)

    async def wait_readable(self) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        pass


def _poll_now(fd: int, events: int) -> int:
    poller = select.poll()
    poller.register(fd, events)
    ready = poller.poll(0)
    return ready[0][1] if ready else 0


class OsEntry(Entry):
    """A host file descriptor, owned by this entry (closed with it) unless
    ``borrowed``: then the fd belongs to the host for the life of the
    process (its own stdio), and closing the entry only forgets it, so any
    number of guests can share it without an fd of their own each.

    Regular files, directories and block devices are read and written
    synchronously: the kernel never makes those wait for a peer. Anything
    else (terminal, pipe, socket, character device) is a *stream*: before a
    read or write that could wait, we ask ``poll()`` with a zero timeout, or,
    when the description is ours and set ``O_NONBLOCK``, just try; if it
    would block, we return an awaitable that waits in trio.
    """

    def __init__(
        self,
        fd: int,
        *,
        filetype: Optional[Filetype] = None,
        rights_base: Optional[int] = None,
        rights_inheriting: Optional[int] = None,
        fdflags: int = 0,
        os_nonblocking: bool = False,
        borrowed: bool = False,
    ) -> None:
        self.fd = -1  # set last: a constructor that fails must not own (and later close) fd
        self.borrowed = borrowed
        if filetype is None:
            filetype = filetype_of(os.fstat(fd), fd)
        self.filetype = filetype
        base, inheriting = rights_for(filetype)
        super().__init__(
            base if rights_base is None else rights_base & base,
            inheriting if rights_inheriting is None else rights_inheriting & inheriting,
            fdflags,
        )
        self.is_stream = filetype not in (Filetype.REGULAR_FILE, Filetype.DIRECTORY, Filetype.BLOCK_DEVICE)
        self.seekable = not self.is_stream
        self.os_nonblocking = os_nonblocking
        # A write that poll() allowed may still block if larger than the
        # pipe's free space; terminals drain on their own.
        self._write_cap = _PIPE_BUF if self.is_stream and filetype != Filetype.CHARACTER_DEVICE else None
        self.fd = fd

    @property
    def host_fd(self) -> Optional[int]:
        return self.fd if self.is_stream and self.fd >= 0 else None

    # -- reads -----------------------------------------------------------
    def _try_read(self, buffers: list[memoryview]) -> Optional[int]:
        """Read now, or None when that would block."""
        if self.is_stream and not self.os_nonblocking and not _poll_now(self.fd, select.POLLIN | select.POLLHUP):
            return None
        try:
            return os.readv(self.fd, buffers)
        except BlockingIOError:
            return None

    def readv(self, buffers: list[memoryview]) -> IoResult:
        if not buffers:
            return 0
        n = self._try_read(buffers)
        if n is not None:
            return n
        return self.wait_or_again(lambda: self._read_later(buffers))

    async def _read_later(self, buffers: list[memoryview]) -> int:
        while True:
            await trio.lowlevel.wait_readable(self.fd)
            n = self._try_read(buffers)
            if n is not None:
                return n

    # -- writes ----------------------------------------------------------
    def _try_write(self, buffers: list[memoryview]) -> Optional[int]:
        if self.is_stream and not self.os_nonblocking:
            if not _poll_now(self.fd, select.POLLOUT):
                return None
            if self._write_cap is not None:
                buffers = trim(buffers, self._write_cap)
        try:
            return os.writev(self.fd, buffers)
        except BlockingIOError:
            return None

    def writev(self, buffers: list[memoryview]) -> IoResult:
        if not buffers:
            return 0
        n = self._try_write(buffers)
        if n is not None:
            return n
        return self.wait_or_again(lambda: self._write_later(buffers))

    async def _write_later(self, buffers: list[memoryview]) -> int:
        while True:
            await trio.lowlevel.wait_writable(self.fd)
            n = self._try_write(buffers)
            if n is not None:
                return n

    def pread(self, buffers: list[memoryview], offset: int) -> int:
        if self.is_stream:
            raise WasiError(Errno.SPIPE)
        return os.preadv(self.fd, buffers, offset) if buffers else 0

    def pwrite(self, buffers: list[memoryview], offset: int) -> int:
        if self.is_stream:
            raise WasiError(Errno.SPIPE)
        return os.pwritev(self.fd, buffers, offset) if buffers else 0

    def seek(self, offset: int, whence: int) -> int:
        if self.is_stream:
            raise WasiError(Errno.SPIPE)
        return os.lseek(self.fd, offset, whence)

    # -- metadata ----------------------------------------------------------
    def filestat(self) -> Filestat:
        return filestat_of(os.fstat(self.fd), self.filetype)

    def set_size(self, size: int) -> None:
        if self.filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.ISDIR)
        os.ftruncate(self.fd, size)

    def set_times(self, atim: Optional[int], mtim: Optional[int]) -> None:
        if atim is None or mtim is None:
            st = os.fstat(self.fd)
            atim = st.st_atime_ns if atim is None else atim
            mtim = st.st_mtime_ns if mtim is None else mtim
        os.utime(self.fd, ns=(atim, mtim))

    def set_fdflags(self, fdflags: int) -> None:
        # APPEND is the host's business (O_APPEND on our own description);
        # NONBLOCK stays a guest-level flag: the host fd never blocks anyway.
        want_append = bool(fdflags & Fdflags.APPEND)
        if want_append != bool(self.fdflags & Fdflags.APPEND):
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            flags = flags | os.O_APPEND if want_append else flags & ~os.O_APPEND
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags)
        self.fdflags = fdflags

    def sync(self) -> None:
        os.fsync(self.fd)

    def datasync(self) -> None:
        os.fdatasync(self.fd)

    def allocate(self, offset: int, length: int) -> None:
        if self.filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.BADF)
        if self.is_stream:
            raise WasiError(Errno.SPIPE)
        try:
            os.posix_fallocate(self.fd, offset, length)
        except OSError as exc:
            if exc.errno in (host_errno.EOPNOTSUPP, host_errno.ENOSYS):
                raise WasiError(Errno.NOTSUP) from None
            raise

    def advise(self, offset: int, length: int, advice: int) -> None:
        if self.is_stream:
            raise WasiError(Errno.SPIPE)
        if self.filetype == Filetype.DIRECTORY:
            return  # advice is only a hint; directories have nothing to advise
        os.posix_fadvise(self.fd, offset, length, advice)

    # -- readiness -----------------------------------------------------------
    def poll_read(self) -> Readiness:
        if not self.is_stream:
            try:
                st = os.fstat(self.fd)
                here = os.lseek(self.fd, 0, os.SEEK_CUR)
                return (max(0, st.st_size - here), 0)
            except OSError:
                return (0, 0)
        revents = _poll_now(self.fd, select.POLLIN | select.POLLHUP)
        if not revents:
            return None
        flags = Eventrwflags.FD_READWRITE_HANGUP if revents & (select.POLLHUP | select.POLLERR) else 0
        return (_bytes_readable(self.fd), int(flags))

    def poll_write(self) -> Readiness:
        if not self.is_stream:
            return (0, 0)
        revents = _poll_now(self.fd, select.POLLOUT)
        if not revents:
            return None
        flags = Eventrwflags.FD_READWRITE_HANGUP if revents & (select.POLLHUP | select.POLLERR) else 0
        return (0, int(flags))

    async def wait_readable(self) -> None:
        if self.is_stream:
            await trio.lowlevel.wait_readable(self.fd)
        else:
            await trio.lowlevel.checkpoint()

    async def wait_writable(self) -> None:
        if self.is_stream:
            await trio.lowlevel.wait_writable(self.fd)
        else:
            await trio.lowlevel.checkpoint()

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            if not self.borrowed:
                os.close(fd)

    def __del__(self) -> None:  # a context that was never closed must not leak host fds
        fd = getattr(self, "fd", -1)
        if fd >= 0 and not self.borrowed:
            try:
                os.close(fd)
            except OSError:
                pass


def _bytes_readable(fd: int) -> int:
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
        return max(0, buf[0])
    except OSError:
        return 0


class DirEntry(OsEntry):
    """A host directory: a preopen, or a directory the guest opened.

    ``listing`` caches one snapshot of the entries for ``fd_readdir`` so that
    cookies (indexes into it) stay meaningful across calls; cookie 0 takes a
    fresh snapshot."""

    is_directory = True

    def __init__(
        self,
        fd: int,
        *,
        rights_base: Optional[int] = None,
        rights_inheriting: Optional[int] = None,
        preopen_name: Optional[bytes] = None,
        fdflags: int = 0,
    ) -> None:
        super().__init__(
            fd,
            filetype=Filetype.DIRECTORY,
            rights_base=rights_base,
            rights_inheriting=rights_inheriting,
            fdflags=fdflags,
        )
        self.preopen_name = preopen_name
        self.listing: Optional[list[tuple[bytes, int, int]]] = None


class Mirror(Protocol):
    """What an :class:`FdTable` tells about its entries (:class:`~.fastpath.SockMirror`)."""

    def install(self, fd: int, entry: Entry) -> None: ...

    def remove(self, fd: int, entry: Entry) -> None: ...


class FdTable:
    """Guest fd number -> :class:`Entry`, with rights checks on lookup.

    ``mirror`` (set by the context when the engine's C path is available,
    :mod:`.fastpath`) hears of every entry opened (``install(fd, entry)``)
    and of every entry leaving, before it is closed (``remove(fd, entry)``).

    Two limits (:mod:`.fdbudget`): ``max_fds`` entries (``MFILE``), and
    ``budget``'s slots for what the guest opens by itself (``NFILE``);
    :attr:`refused` counts the refusals of each."""

    mirror: Optional["Mirror"] = None
    # Refusals so far; class-level zeros until the first one (tables are many and mostly idle).
    refused_mfile = 0
    refused_nfile = 0

    def __init__(self, max_fds: int = 1024, budget: Optional[FdBudget] = None) -> None:
        self.max_fds = max_fds
        self.budget = budget
        self._entries: dict[int, Entry] = {}

    @property
    def refused(self) -> dict[str, int]:
        """Opens refused so far, by errno name: ``{"MFILE": n, "NFILE": m}``."""
        return {"MFILE": self.refused_mfile, "NFILE": self.refused_nfile}

    def __contains__(self, fd: int) -> bool:
        return fd in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[int, Entry]]:
        return sorted(self._entries.items())

    def get(self, fd: int, rights: int = 0) -> Entry:
        """The entry for ``fd``: ``BADF`` if none, ``NOTCAPABLE`` if it lacks ``rights``."""
        entry = self._entries.get(fd)
        if entry is None:
            raise WasiError(Errno.BADF)
        if int(rights) & ~entry.rights_base:
            raise WasiError(Errno.NOTCAPABLE)
        return entry

    def get_dir(self, fd: int, rights: int) -> DirEntry:
        """A directory entry: ``NOTDIR`` for other kinds, then rights."""
        entry = self._entries.get(fd)
        if entry is None:
            raise WasiError(Errno.BADF)
        if not isinstance(entry, DirEntry):
            raise WasiError(Errno.NOTDIR)
        if int(rights) & ~entry.rights_base:
            raise WasiError(Errno.NOTCAPABLE)
        return entry

    def put(self, fd: int, entry: Entry) -> None:
        """Install ``entry`` at a chosen number (stdio and preopens)."""
        if fd in self._entries:
            raise ValueError(f"fd {fd} is already open")
        self._entries[fd] = entry
        if self.mirror is not None:
            self.mirror.install(fd, entry)

    def check_room(self, budgeted: bool = True) -> None:
        """Raise (and count) ``MFILE`` when the table is full, ``NFILE`` when
        a ``budgeted`` entry would find no slot in the budget: what opening
        calls ask before they open anything."""
        if len(self._entries) >= self.max_fds:
            self.refused_mfile += 1
            raise WasiError(Errno.MFILE)
        if budgeted and self.budget is not None:
            try:
                self.budget.check()
            except WasiError:
                self.refused_nfile += 1
                raise

    def add(self, entry: Entry, budgeted: bool = True) -> int:
        """Install ``entry`` at the lowest free number; ``budgeted``: it
        takes a slot of the budget until closed (a connection from a
        pre-opened listener does not). ``MFILE``/``NFILE`` as
        :meth:`check_room` says, the entry then closed."""
        try:
            self.check_room(budgeted)
        except WasiError:
            entry.release()
            raise
        fd = 0
        while fd in self._entries:
            fd += 1
        self._entries[fd] = entry
        if budgeted and self.budget is not None:
            self.budget.take()
            entry.budget_slot = self.budget  # given back when the entry leaves the table
        if self.mirror is not None:
            self.mirror.install(fd, entry)
        return fd

    @staticmethod
    def _unbudget(entry: Entry) -> None:
        budget = entry.__dict__.pop("budget_slot", None)
        if budget is not None:
            budget.give()

    def close(self, fd: int) -> None:
        entry = self._entries.pop(fd, None)
        if entry is None:
            raise WasiError(Errno.BADF)
        self._unbudget(entry)
        if self.mirror is not None:
            self.mirror.remove(fd, entry)
        entry.release()

    def renumber(self, fd: int, to: int) -> None:
        """Move ``fd`` to ``to``, closing what was at ``to`` (both must be open)."""
        if fd not in self._entries or to not in self._entries:
            raise WasiError(Errno.BADF)
        if fd == to:
            return
        old = self._entries[to]
        moved = self._entries[to] = self._entries.pop(fd)
        self._unbudget(old)
        if self.mirror is not None:
            self.mirror.remove(to, old)
            self.mirror.remove(fd, moved)
            self.mirror.install(to, moved)
        old.release()

    def close_all(self, keep: Sequence[Optional[Entry]] = ()) -> list[Optional[Entry]]:
        """Close every entry. ``keep[fd]``, if it is still the entry at
        ``fd``, is released (close hooks, ``close``) but stays in the table,
        to be renewed in place: only for entries with no host resource and
        never budgeted or mirrored (a context's in-memory stdio). Returns
        what stayed (None where nothing did)."""
        table = self._entries
        kept = [entry if entry is not None and table.get(fd) is entry else None for fd, entry in enumerate(keep)]
        closing = [entry for entry in kept if entry is not None]
        if len(table) > len(closing):  # more than the kept ones were open
            entries = [(fd, entry) for fd, entry in table.items() if fd >= len(kept) or kept[fd] is not entry]
            table.clear()
            for fd, entry in enumerate(kept):
                if entry is not None:
                    table[fd] = entry
            for _, entry in entries:
                self._unbudget(entry)
            if self.mirror is not None:
                for fd, entry in entries:
                    self.mirror.remove(fd, entry)
            closing += [entry for _, entry in entries]
        failure: Optional[BaseException] = None
        for entry in closing:
            try:
                entry.release()
            except BaseException as exc:  # close the others anyway, then report the first failure
                failure = failure or exc
        if failure is not None:
            raise failure
        return kept
