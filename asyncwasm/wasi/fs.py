"""WASI ``fd_*`` functions: I/O and metadata on open file descriptors.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md
(each function's anchor is ``#<name>``). Path functions are in
:mod:`asyncwasm.wasi.paths`, the fd table in :mod:`asyncwasm.wasi.fdtable`.

Rules:
- Rights first: every function asks the table for the rights the witx
  names, so a missing right is ``NOTCAPABLE`` before anything happens.
- Output pointers are bounds-checked *before* the operation, so a bad pointer
  (``FAULT``) never loses data that was already read or written.
- Regular file I/O is synchronous. Reads and writes that would wait (pipes,
  terminals, trio streams) return an awaitable; see
  :class:`~asyncwasm.wasi.fdtable.OsEntry`.
"""

from __future__ import annotations

import os
from typing import Any, Awaitable, Optional, Union

from .abi import (
    DIRENT,
    FDFLAGS_ALL,
    FDSTAT,
    FILESTAT,
    MAX_OFFSET,
    PRESTAT,
    Advice,
    Errno,
    Fdflags,
    Filetype,
    Fstflags,
    Preopentype,
    Rights,
    WasiError,
    Whence,
)
from .decl import FD, PTR, S64, U32, U64, host_function
from .fdtable import DirEntry, filetype_of
from .later import Later

ErrnoResult = Union[int, Awaitable[int]]


def _check_offset(value: int, errno: Errno = Errno.INVAL) -> int:
    if value > MAX_OFFSET:
        raise WasiError(errno)
    return value


_SUCCESS = int(Errno.SUCCESS)  # a plain int goes back to the engine as is (see decl.bind)


def _after_io(ctx: Any, result: Any, out_ptr: int) -> ErrnoResult:
    """Store a byte count at ``out_ptr`` now, or once an awaitable finishes."""
    if isinstance(result, int):
        ctx.memory.store_u32(out_ptr, result)
        return _SUCCESS
    return Later(_store_later, ctx, result, out_ptr)


async def _store_later(ctx: Any, awaitable: Awaitable[int], out_ptr: int) -> int:
    n = await awaitable
    ctx.memory.store_u32(out_ptr, n)
    return Errno.SUCCESS


def _positioned(ctx: Any, fd: int, access: int) -> Any:
    """The entry for ``fd_pread``/``fd_pwrite``: ``access`` (FD_READ or
    FD_WRITE) first, then SPIPE for an object that has no position, and only
    then FD_SEEK. A pipe or terminal lacks FD_SEEK because it cannot seek, and
    POSIX calls that ESPIPE: Zig's std writes stdout with ``fd_pwrite`` and
    falls back to ``fd_write`` on SPIPE only (NOTCAPABLE fails the write)."""
    entry = ctx.fds.get(fd, access)
    if not entry.seekable:
        raise WasiError(Errno.SPIPE)
    return ctx.fds.get(fd, access | Rights.FD_SEEK)


def _seek_target(ctx: Any, fd: int, right: int) -> Any:
    """The entry for ``fd_seek``/``fd_tell``: SPIPE for a stream (pipe,
    terminal, socket, in-memory stdio) before any rights check, as POSIX
    ``lseek`` and wasmtime answer; Zig's std maps NOTCAPABLE to AccessDenied."""
    entry = ctx.fds.get(fd)
    if not entry.seekable and not isinstance(entry, DirEntry):
        raise WasiError(Errno.SPIPE)
    return ctx.fds.get(fd, right)


def timestamps(ctx: Any, atim: int, mtim: int, fst_flags: int) -> tuple[Optional[int], Optional[int]]:
    """The (atime, mtime) in ns to set for ``fst_flags``; None = leave as is.

    ``INVAL`` for unknown flags, for both X and X_NOW, or for a time beyond
    the host's range. ``*_NOW`` uses the guest's realtime clock."""
    if fst_flags & ~0xF:
        raise WasiError(Errno.INVAL)
    if (fst_flags & Fstflags.ATIM and fst_flags & Fstflags.ATIM_NOW) or (
        fst_flags & Fstflags.MTIM and fst_flags & Fstflags.MTIM_NOW
    ):
        raise WasiError(Errno.INVAL)
    now = ctx.clocks.realtime_ns() if fst_flags & (Fstflags.ATIM_NOW | Fstflags.MTIM_NOW) else 0
    a = _check_offset(atim) if fst_flags & Fstflags.ATIM else now if fst_flags & Fstflags.ATIM_NOW else None
    m = _check_offset(mtim) if fst_flags & Fstflags.MTIM else now if fst_flags & Fstflags.MTIM_NOW else None
    return a, m


@host_function(fd=FD, offset=U64, length=U64, advice=U32)
def fd_advise(ctx: Any, fd: int, offset: int, length: int, advice: int) -> ErrnoResult:
    """Advise the host about an access pattern (``posix_fadvise``).

    Errnos: BADF, NOTCAPABLE (no FD_ADVISE), INVAL (advice > NOREUSE or a
    range beyond the host's), SPIPE (not a file). Writes nothing."""
    entry = ctx.fds.get(fd, Rights.FD_ADVISE)
    if advice > max(Advice):
        raise WasiError(Errno.INVAL)
    entry.advise(_check_offset(offset), _check_offset(length), advice)
    return Errno.SUCCESS


@host_function(fd=FD, offset=U64, length=U64)
def fd_allocate(ctx: Any, fd: int, offset: int, length: int) -> ErrnoResult:
    """Reserve file space (``posix_fallocate``).

    Errnos: BADF, NOTCAPABLE (no FD_ALLOCATE), FBIG (offset + len too large),
    INVAL (len 0), NOTSUP (file system cannot), SPIPE. Writes nothing."""
    entry = ctx.fds.get(fd, Rights.FD_ALLOCATE)
    if offset + length > MAX_OFFSET:
        raise WasiError(Errno.FBIG)
    entry.allocate(offset, length)
    return Errno.SUCCESS


@host_function(fd=FD)
def fd_close(ctx: Any, fd: int) -> ErrnoResult:
    """Close ``fd`` (preopens and stdio too). Errnos: BADF. Writes nothing."""
    ctx.fds.close(fd)
    return Errno.SUCCESS


@host_function(fd=FD)
def fd_datasync(ctx: Any, fd: int) -> ErrnoResult:
    """``fdatasync``. Errnos: BADF, NOTCAPABLE (no FD_DATASYNC), INVAL, IO."""
    ctx.fds.get(fd, Rights.FD_DATASYNC).datasync()
    return Errno.SUCCESS


@host_function(fd=FD, stat=PTR)
def fd_fdstat_get(ctx: Any, fd: int, stat: int) -> ErrnoResult:
    """Describe ``fd``; needs no right.

    Writes ``$fdstat`` (24 bytes) at ``stat``: fs_filetype u8 @0,
    fs_flags u16 @2, fs_rights_base u64 @8, fs_rights_inheriting u64 @16.
    Errnos: BADF, FAULT."""
    entry = ctx.fds.get(fd)
    ctx.memory.pack(FDSTAT, stat, entry.filetype, entry.fdflags, entry.rights_base, entry.rights_inheriting)
    return Errno.SUCCESS


@host_function(fd=FD, flags=U32)
def fd_fdstat_set_flags(ctx: Any, fd: int, flags: int) -> ErrnoResult:
    """Change APPEND and NONBLOCK (``fcntl(F_SETFL)``).

    NONBLOCK is a guest-level flag: reads and writes that would wait return
    AGAIN instead of suspending the guest. Errnos: BADF, NOTCAPABLE (no
    FD_FDSTAT_SET_FLAGS), INVAL (unknown bits), NOTSUP (changing DSYNC, RSYNC
    or SYNC after open)."""
    entry = ctx.fds.get(fd, Rights.FD_FDSTAT_SET_FLAGS)
    if flags & ~FDFLAGS_ALL:
        raise WasiError(Errno.INVAL)
    fixed = Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC
    if (flags ^ entry.fdflags) & fixed:
        raise WasiError(Errno.NOTSUP)
    entry.set_fdflags(flags)
    return Errno.SUCCESS


@host_function(fd=FD, fs_rights_base=U64, fs_rights_inheriting=U64)
def fd_fdstat_set_rights(ctx: Any, fd: int, fs_rights_base: int, fs_rights_inheriting: int) -> ErrnoResult:
    """Drop rights. Errnos: BADF, NOTCAPABLE (trying to add a right)."""
    entry = ctx.fds.get(fd)
    if fs_rights_base & ~entry.rights_base or fs_rights_inheriting & ~entry.rights_inheriting:
        raise WasiError(Errno.NOTCAPABLE)
    entry.rights_base = fs_rights_base
    entry.rights_inheriting = fs_rights_inheriting
    return Errno.SUCCESS


@host_function(fd=FD, buf=PTR)
def fd_filestat_get(ctx: Any, fd: int, buf: int) -> ErrnoResult:
    """``fstat``. Writes ``$filestat`` (64 bytes) at ``buf``: dev u64 @0,
    ino u64 @8, filetype u8 @16, nlink u64 @24, size u64 @32, atim u64 @40,
    mtim u64 @48, ctim u64 @56. In-memory stdio reports zeros.
    Errnos: BADF, NOTCAPABLE (no FD_FILESTAT_GET), FAULT, IO."""
    entry = ctx.fds.get(fd, Rights.FD_FILESTAT_GET)
    ctx.memory.check(buf, FILESTAT.size)
    ctx.memory.pack(FILESTAT, buf, *entry.filestat())
    return Errno.SUCCESS


@host_function(fd=FD, size=U64)
def fd_filestat_set_size(ctx: Any, fd: int, size: int) -> ErrnoResult:
    """``ftruncate``. Errnos: BADF, NOTCAPABLE (no FD_FILESTAT_SET_SIZE),
    INVAL (size beyond the host's range, or not a file), ISDIR, FBIG."""
    entry = ctx.fds.get(fd, Rights.FD_FILESTAT_SET_SIZE)
    entry.set_size(_check_offset(size))
    return Errno.SUCCESS


@host_function(fd=FD, atim=U64, mtim=U64, fst_flags=U32)
def fd_filestat_set_times(ctx: Any, fd: int, atim: int, mtim: int, fst_flags: int) -> ErrnoResult:
    """``futimens``. Errnos: BADF, NOTCAPABLE (no FD_FILESTAT_SET_TIMES),
    INVAL (bad flags, see :func:`timestamps`)."""
    entry = ctx.fds.get(fd, Rights.FD_FILESTAT_SET_TIMES)
    a, m = timestamps(ctx, atim, mtim, fst_flags)
    if a is not None or m is not None:
        entry.set_times(a, m)
    return Errno.SUCCESS


@host_function(fd=FD, iovs=PTR, iovs_len=U32, offset=U64, nread=PTR)
def fd_pread(ctx: Any, fd: int, iovs: int, iovs_len: int, offset: int, nread: int) -> ErrnoResult:
    """``preadv`` at ``offset`` without moving the fd's position.

    Writes the byte count (u32) at ``nread``. Errnos: BADF, NOTCAPABLE (needs
    FD_READ, then FD_SEEK), FAULT, INVAL (iovs_len > 1024 or offset too
    large), SPIPE (not seekable, before the FD_SEEK check), ISDIR."""
    entry = _positioned(ctx, fd, Rights.FD_READ)
    buffers = ctx.memory.iovecs(iovs, iovs_len)
    ctx.memory.check(nread, 4)
    return _after_io(ctx, entry.pread(buffers, _check_offset(offset)), nread)


@host_function(fd=FD, prestat=PTR)
def fd_prestat_get(ctx: Any, fd: int, prestat: int) -> ErrnoResult:
    """Describe a preopen. Writes ``$prestat`` (8 bytes) at ``prestat``:
    tag u8 @0 (0 = dir), pr_name_len u32 @4 (no NUL counted).
    Errnos: BADF (no such fd, or not a preopen: what wasi-libc's preopen scan
    stops on), FAULT."""
    name = ctx.fds.get(fd).preopen_name
    if name is None:
        raise WasiError(Errno.BADF)
    ctx.memory.pack(PRESTAT, prestat, Preopentype.DIR, len(name))
    return Errno.SUCCESS


@host_function(fd=FD, path=PTR, path_len=U32)
def fd_prestat_dir_name(ctx: Any, fd: int, path: int, path_len: int) -> ErrnoResult:
    """Copy a preopen's guest path (no NUL) to ``path``.
    Errnos: BADF, NAMETOOLONG (``path_len`` smaller than the name), FAULT."""
    name = ctx.fds.get(fd).preopen_name
    if name is None:
        raise WasiError(Errno.BADF)
    if path_len < len(name):
        raise WasiError(Errno.NAMETOOLONG)
    ctx.memory.write(path, name)
    return Errno.SUCCESS


@host_function(fd=FD, iovs=PTR, iovs_len=U32, offset=U64, nwritten=PTR)
def fd_pwrite(ctx: Any, fd: int, iovs: int, iovs_len: int, offset: int, nwritten: int) -> ErrnoResult:
    """``pwritev`` at ``offset``. Writes the byte count (u32) at ``nwritten``.
    Errnos: BADF, NOTCAPABLE (needs FD_WRITE, then FD_SEEK), FAULT, INVAL,
    SPIPE (not seekable, before the FD_SEEK check), FBIG, NOSPC."""
    entry = _positioned(ctx, fd, Rights.FD_WRITE)
    buffers = ctx.memory.iovecs(iovs, iovs_len)
    ctx.memory.check(nwritten, 4)
    return _after_io(ctx, entry.pwrite(buffers, _check_offset(offset)), nwritten)


@host_function(fd=FD, iovs=PTR, iovs_len=U32, nread=PTR)
def fd_read(ctx: Any, fd: int, iovs: int, iovs_len: int, nread: int) -> ErrnoResult:
    """``readv``. Writes the byte count (u32; 0 = end of file) at ``nread``.

    On a pipe, terminal or stream with no data yet, returns an awaitable (the
    guest waits) or AGAIN when the fd is NONBLOCK. Errnos: BADF, NOTCAPABLE
    (no FD_READ), FAULT, INVAL, ISDIR, AGAIN, IO."""
    entry = ctx.fds.get(fd, Rights.FD_READ)
    buffers = ctx.memory.iovecs(iovs, iovs_len)
    ctx.memory.check(nread, 4)
    return _after_io(ctx, entry.readv(buffers), nread)


@host_function(fd=FD, iovs=PTR, iovs_len=U32, nwritten=PTR)
def fd_write(ctx: Any, fd: int, iovs: int, iovs_len: int, nwritten: int) -> ErrnoResult:
    """``writev``. Writes the byte count (u32) at ``nwritten``; may be short
    on a pipe. May return an awaitable (full pipe, trio stream, async
    callback). Errnos: BADF, NOTCAPABLE (no FD_WRITE), FAULT, INVAL, AGAIN,
    PIPE, NOSPC, FBIG, IO."""
    entry = ctx.fds.get(fd, Rights.FD_WRITE)
    buffers = ctx.memory.iovecs(iovs, iovs_len)
    ctx.memory.check(nwritten, 4)
    return _after_io(ctx, entry.writev(buffers), nwritten)


def _listing(entry: DirEntry) -> list[tuple[bytes, int, int]]:
    """A snapshot of a directory: (name, inode, filetype), with . and .. first."""
    here = os.fstat(entry.fd)
    try:
        parent_ino = os.stat(b"..", dir_fd=entry.fd, follow_symlinks=False).st_ino
    except OSError:
        parent_ino = here.st_ino
    items = [(b".", here.st_ino, int(Filetype.DIRECTORY)), (b"..", parent_ino, int(Filetype.DIRECTORY))]
    with os.scandir(entry.fd) as scan:
        for item in scan:
            try:
                if item.is_symlink():
                    kind = Filetype.SYMBOLIC_LINK
                elif item.is_dir(follow_symlinks=False):
                    kind = Filetype.DIRECTORY
                elif item.is_file(follow_symlinks=False):
                    kind = Filetype.REGULAR_FILE
                else:
                    kind = filetype_of(item.stat(follow_symlinks=False))
                inode = item.inode()
            except OSError:  # vanished while listing
                continue
            items.append((os.fsencode(item.name), inode, int(kind)))
    return items


@host_function(fd=FD, buf=PTR, buf_len=U32, cookie=U64, bufused=PTR)
def fd_readdir(ctx: Any, fd: int, buf: int, buf_len: int, cookie: int, bufused: int) -> ErrnoResult:
    """List a directory from position ``cookie`` (0 = start, then each
    entry's ``d_next``).

    Writes at ``buf`` a sequence of ``$dirent`` headers (24 bytes: d_next u64
    @0, d_ino u64 @8, d_namlen u32 @16, d_type u8 @20) each followed by the
    name, truncated at ``buf_len``; then the bytes used (u32) at ``bufused``.
    Fewer than ``buf_len`` bytes means the end was reached. Cookie 0 takes a
    fresh snapshot; other cookies index the current one.
    Errnos: BADF, NOTDIR, NOTCAPABLE (no FD_READDIR), FAULT."""
    entry = ctx.fds.get(fd)
    if not isinstance(entry, DirEntry):
        raise WasiError(Errno.NOTDIR)
    ctx.fds.get(fd, Rights.FD_READDIR)
    ctx.memory.check(buf, buf_len)
    ctx.memory.check(bufused, 4)
    if cookie == 0 or entry.listing is None:
        entry.listing = _listing(entry)
    out = bytearray()
    index = cookie
    while index < len(entry.listing) and len(out) < buf_len:
        name, inode, kind = entry.listing[index]
        out += DIRENT.pack(index + 1, inode, len(name), kind)
        out += name
        index += 1
    used = min(len(out), buf_len)
    ctx.memory.write(buf, bytes(out[:used]))
    ctx.memory.store_u32(bufused, used)
    return Errno.SUCCESS


@host_function(fd=FD, to=FD)
def fd_renumber(ctx: Any, fd: int, to: int) -> ErrnoResult:
    """Move ``fd`` to number ``to``, closing what was there.
    Errnos: BADF (either fd not open)."""
    ctx.fds.renumber(fd, to)
    return Errno.SUCCESS


@host_function(fd=FD, offset=S64, whence=U32, newoffset=PTR)
def fd_seek(ctx: Any, fd: int, offset: int, whence: int, newoffset: int) -> ErrnoResult:
    """``lseek``; writes the new position (u64) at ``newoffset``.

    ``seek(0, CUR)`` needs only FD_TELL, anything else FD_SEEK. Errnos: BADF,
    SPIPE (a stream), NOTCAPABLE, INVAL (bad whence or a negative result), FAULT."""
    if whence > max(Whence):
        raise WasiError(Errno.INVAL)
    telling = offset == 0 and whence == Whence.CUR
    entry = _seek_target(ctx, fd, Rights.FD_TELL if telling else Rights.FD_SEEK)
    ctx.memory.check(newoffset, 8)
    ctx.memory.store_u64(newoffset, entry.seek(offset, whence))
    return Errno.SUCCESS


@host_function(fd=FD)
def fd_sync(ctx: Any, fd: int) -> ErrnoResult:
    """``fsync``. Errnos: BADF, NOTCAPABLE (no FD_SYNC), INVAL, IO."""
    ctx.fds.get(fd, Rights.FD_SYNC).sync()
    return Errno.SUCCESS


@host_function(fd=FD, offset=PTR)
def fd_tell(ctx: Any, fd: int, offset: int) -> ErrnoResult:
    """Current position (u64) written at ``offset``.
    Errnos: BADF, SPIPE (a stream), NOTCAPABLE (no FD_TELL), FAULT."""
    entry = _seek_target(ctx, fd, Rights.FD_TELL)
    ctx.memory.check(offset, 8)
    ctx.memory.store_u64(offset, entry.seek(0, Whence.CUR))
    return Errno.SUCCESS
