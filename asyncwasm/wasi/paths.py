"""WASI ``path_*`` functions: everything that names a file by path.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md

Rule: every path goes through :class:`~asyncwasm.wasi.sandbox.Beneath`
starting at the directory fd the guest passed, and the final syscall uses the
``*at`` no-follow form on the ``(dir_fd, name)`` it returns. So no path,
``..`` chain, absolute path or symbolic link reaches outside the preopen,
and ``path_link``/``path_rename`` can only name files inside it.

Rule: rights are those of the directory fd: ``PATH_*`` in its base rights
for the operation, and for ``path_open`` the new fd's rights are bounded by
the directory's inheriting rights.

Symlink contents (``path_symlink``) must be relative: an absolute target could
never be followed inside the sandbox and would point host tools outside it,
so it is refused with ``NOTCAPABLE``.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Any, Awaitable, Union

from .abi import (
    FDFLAGS_ALL,
    FILESTAT,
    OFLAGS_ALL,
    Errno,
    Fdflags,
    Filetype,
    Lookupflags,
    Oflags,
    Rights,
    WasiError,
)
from .decl import FD, PTR, U32, U64, host_function
from .fdtable import DirEntry, OsEntry, filestat_of, filetype_of
from .fs import timestamps
from .sandbox import Beneath, split_path

ErrnoResult = Union[int, Awaitable[int]]

#: Requested rights that decide the host access mode; asking for one of these
#: beyond what the directory can hand down fails the open (``NOTCAPABLE``)
#: instead of silently giving a weaker fd. Other requested rights are
#: trimmed to the directory's inheriting rights (Rust's std asks for many).
_ACCESS_RIGHTS = int(
    Rights.FD_READ | Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_DATASYNC
)
_WRITE_ACCESS = int(Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE)
_READ_ACCESS = int(Rights.FD_READ | Rights.FD_READDIR)


def _follow(flags: int) -> bool:
    if flags & ~int(Lookupflags.SYMLINK_FOLLOW):
        raise WasiError(Errno.INVAL)
    return bool(flags & Lookupflags.SYMLINK_FOLLOW)


def _path(ctx: Any, ptr: int, length: int) -> bytes:
    return ctx.memory.read(ptr, length)


def _exists(dir_fd: int, name: bytes) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


@host_function(fd=FD, path=PTR, path_len=U32)
def path_create_directory(ctx: Any, fd: int, path: int, path_len: int) -> ErrnoResult:
    """``mkdirat``. Errnos: BADF, NOTDIR, NOTCAPABLE (no PATH_CREATE_DIRECTORY,
    or the path leaves the sandbox), EXIST, NOENT, LOOP, FAULT, INVAL."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_CREATE_DIRECTORY)
    with Beneath(directory.fd) as walk:
        where = walk.resolve(_path(ctx, path, path_len), follow=False)
        os.mkdir(where.name, 0o777, dir_fd=where.dir_fd)
    return Errno.SUCCESS


@host_function(fd=FD, flags=U32, path=PTR, path_len=U32, buf=PTR)
def path_filestat_get(ctx: Any, fd: int, flags: int, path: int, path_len: int, buf: int) -> ErrnoResult:
    """``fstatat``; writes ``$filestat`` (64 bytes, layout as
    ``fd_filestat_get``) at ``buf``. ``flags`` bit 0 follows a final symlink.
    Errnos: BADF, NOTDIR, NOTCAPABLE (no PATH_FILESTAT_GET, or escape), NOENT,
    LOOP, INVAL, FAULT."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_FILESTAT_GET)
    follow = _follow(flags)
    ctx.memory.check(buf, FILESTAT.size)
    with Beneath(directory.fd) as walk:
        where = walk.resolve(_path(ctx, path, path_len), follow=follow)
        st = os.stat(where.name, dir_fd=where.dir_fd, follow_symlinks=False)
        if where.must_be_dir and not stat.S_ISDIR(st.st_mode):
            raise WasiError(Errno.NOTDIR)
    ctx.memory.pack(FILESTAT, buf, *filestat_of(st, filetype_of(st)))
    return Errno.SUCCESS


@host_function(fd=FD, flags=U32, path=PTR, path_len=U32, atim=U64, mtim=U64, fst_flags=U32)
def path_filestat_set_times(
    ctx: Any, fd: int, flags: int, path: int, path_len: int, atim: int, mtim: int, fst_flags: int
) -> ErrnoResult:
    """``utimensat``. Errnos: BADF, NOTDIR, NOTCAPABLE (no
    PATH_FILESTAT_SET_TIMES, or escape), NOENT, LOOP, INVAL (bad flags)."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_FILESTAT_SET_TIMES)
    follow = _follow(flags)
    a, m = timestamps(ctx, atim, mtim, fst_flags)
    with Beneath(directory.fd) as walk:
        where = walk.resolve(_path(ctx, path, path_len), follow=follow)
        where.require_directory()
        if a is None or m is None:
            st = os.stat(where.name, dir_fd=where.dir_fd, follow_symlinks=False)
            a = st.st_atime_ns if a is None else a
            m = st.st_mtime_ns if m is None else m
        os.utime(where.name, ns=(a, m), dir_fd=where.dir_fd, follow_symlinks=False)
    return Errno.SUCCESS


@host_function(
    old_fd=FD, old_flags=U32, old_path=PTR, old_path_len=U32, new_fd=FD, new_path=PTR, new_path_len=U32
)
def path_link(
    ctx: Any, old_fd: int, old_flags: int, old_path: int, old_path_len: int, new_fd: int, new_path: int,
    new_path_len: int,
) -> ErrnoResult:
    """``linkat``: a hard link, both ends resolved inside their sandboxes (so
    no link to a file outside can be made). Errnos: BADF, NOTDIR, NOTCAPABLE
    (PATH_LINK_SOURCE on ``old_fd``, PATH_LINK_TARGET on ``new_fd``, escape),
    NOENT, EXIST, PERM (directories), XDEV, LOOP, INVAL, FAULT."""
    source_dir = ctx.fds.get_dir(old_fd, Rights.PATH_LINK_SOURCE)
    target_dir = ctx.fds.get_dir(new_fd, Rights.PATH_LINK_TARGET)
    follow = _follow(old_flags)
    old = _path(ctx, old_path, old_path_len)
    new = _path(ctx, new_path, new_path_len)
    with Beneath(source_dir.fd) as source_walk, Beneath(target_dir.fd) as target_walk:
        source = source_walk.resolve(old, follow=follow)
        source.require_directory()
        target = target_walk.resolve(new, follow=False)
        if target.must_be_dir:
            raise WasiError(Errno.EXIST if _exists(target.dir_fd, target.name) else Errno.NOENT)
        os.link(source.name, target.name, src_dir_fd=source.dir_fd, dst_dir_fd=target.dir_fd, follow_symlinks=False)
    return Errno.SUCCESS


def _open_flags(oflags: int, fdflags: int, rights: int) -> int:
    """Host ``open`` flags for a path_open call (without the no-follow bits)."""
    writing = bool(rights & _WRITE_ACCESS) or bool(fdflags & Fdflags.APPEND)
    reading = bool(rights & _READ_ACCESS)
    flags = os.O_RDWR if reading and writing else os.O_WRONLY if writing else os.O_RDONLY
    # O_NONBLOCK: opening a FIFO must not wait for its other end; the
    # description is ours, so streams keep it and suspend the guest instead.
    flags |= os.O_NONBLOCK | os.O_NOCTTY
    if oflags & Oflags.CREAT:
        flags |= os.O_CREAT
    if oflags & Oflags.EXCL:
        flags |= os.O_EXCL
    if oflags & Oflags.TRUNC:
        flags |= os.O_TRUNC
    if oflags & Oflags.DIRECTORY:
        flags |= os.O_DIRECTORY
    if fdflags & Fdflags.APPEND:
        flags |= os.O_APPEND
    if fdflags & Fdflags.DSYNC:
        flags |= os.O_DSYNC
    if fdflags & Fdflags.SYNC:
        flags |= os.O_SYNC
    if fdflags & Fdflags.RSYNC:
        flags |= getattr(os, "O_RSYNC", os.O_SYNC)
    return flags


def _required_dir_rights(oflags: int) -> int:
    needed = int(Rights.PATH_OPEN)
    if oflags & Oflags.CREAT:
        needed |= Rights.PATH_CREATE_FILE
    if oflags & Oflags.TRUNC:
        needed |= Rights.PATH_FILESTAT_SET_SIZE
    return int(needed)


def _required_fd_rights(fdflags: int) -> int:
    needed = 0
    if fdflags & Fdflags.DSYNC:
        needed |= Rights.FD_DATASYNC
    if fdflags & (Fdflags.RSYNC | Fdflags.SYNC):
        needed |= Rights.FD_SYNC
    return int(needed)


@host_function(
    fd=FD, dirflags=U32, path=PTR, path_len=U32, oflags=U32, fs_rights_base=U64, fs_rights_inheriting=U64,
    fdflags=U32, opened_fd=PTR,
)
def path_open(
    ctx: Any, fd: int, dirflags: int, path: int, path_len: int, oflags: int, fs_rights_base: int,
    fs_rights_inheriting: int, fdflags: int, opened_fd: int,
) -> ErrnoResult:
    """``openat``; writes the new fd (u32) at ``opened_fd``.

    The new fd's rights are the requested ones within the directory's
    inheriting rights, trimmed to what its file type supports (a new
    directory's own inheriting rights: see :func:`_inheriting`). Requesting an
    access right (read, write, allocate, truncate, datasync) the directory
    cannot hand down is NOTCAPABLE. CREAT needs PATH_CREATE_FILE and TRUNC
    PATH_FILESTAT_SET_SIZE on the directory. Opening a directory for writing
    is ISDIR. Errnos: BADF, NOTDIR, NOTCAPABLE, INVAL (unknown flag bits),
    NOENT, EXIST, ISDIR, LOOP, MFILE, NFILE (the process's fd budget:
    :mod:`.fdbudget`), NXIO (FIFO without reader), FAULT."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_OPEN)
    follow = _follow(dirflags)
    if oflags & ~OFLAGS_ALL or fdflags & ~FDFLAGS_ALL:
        raise WasiError(Errno.INVAL)
    if _required_dir_rights(oflags) & ~directory.rights_base:
        raise WasiError(Errno.NOTCAPABLE)
    wanted = fs_rights_base | _required_fd_rights(fdflags)
    if wanted & _ACCESS_RIGHTS & ~directory.rights_inheriting:
        raise WasiError(Errno.NOTCAPABLE)
    base = wanted & directory.rights_inheriting
    inheriting = _inheriting(fs_rights_inheriting, directory)
    name = _path(ctx, path, path_len)
    split_path(name)  # NOENT/INVAL/NOTCAPABLE before touching the host
    ctx.memory.check(opened_fd, 4)
    ctx.fds.check_room()  # MFILE/NFILE before anything is opened
    with Beneath(directory.fd) as walk:
        host_fd = walk.open(name, _open_flags(oflags, fdflags, base), 0o666, follow=follow)
    try:
        entry = _entry_for(host_fd, base, inheriting, fdflags)
    except BaseException:
        os.close(host_fd)
        raise
    ctx.memory.store_u32(opened_fd, ctx.fds.add(entry))
    return Errno.SUCCESS


def _inheriting(requested: int, directory: DirEntry) -> int:
    """The rights an fd opened from ``directory`` may hand down (they only
    matter when it is a directory): what was asked, within ``directory``'s.

    Except a request with no access right at all (no FD_READ, FD_WRITE, ...):
    under it no file below could ever be read or written, so it is not a
    meaningful attenuation, and it is what Zig's std asks for every directory
    it opens (inheriting = its own directory rights; wasmtime does not enforce
    inheriting rights). Such a request gets ``directory``'s inheriting rights.
    The host's limits still hold: a read-only preopen's inheriting rights have
    no write rights, and every directory below inherits at most those."""
    if not requested & _ACCESS_RIGHTS:
        return directory.rights_inheriting
    return requested & directory.rights_inheriting


def _entry_for(host_fd: int, base: int, inheriting: int, fdflags: int) -> OsEntry:
    """Wrap a freshly opened host fd. Everything that can fail happens before
    the entry takes ownership of ``host_fd`` (the caller closes it on error)."""
    kind = filetype_of(os.fstat(host_fd), host_fd)
    stream = kind not in (Filetype.DIRECTORY, Filetype.REGULAR_FILE, Filetype.BLOCK_DEVICE)
    if not stream:
        _clear_nonblock(host_fd)
    if kind == Filetype.DIRECTORY:
        return DirEntry(host_fd, rights_base=base, rights_inheriting=inheriting, fdflags=fdflags)
    return OsEntry(host_fd, filetype=kind, rights_base=base, rights_inheriting=0, fdflags=fdflags,
                   os_nonblocking=stream)


def _clear_nonblock(host_fd: int) -> None:
    flags = fcntl.fcntl(host_fd, fcntl.F_GETFL)
    fcntl.fcntl(host_fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)


@host_function(fd=FD, path=PTR, path_len=U32, buf=PTR, buf_len=U32, bufused=PTR)
def path_readlink(ctx: Any, fd: int, path: int, path_len: int, buf: int, buf_len: int, bufused: int) -> ErrnoResult:
    """``readlinkat``: copies the link's contents (no NUL, truncated to
    ``buf_len``) to ``buf`` and the byte count (u32) to ``bufused``.
    Errnos: BADF, NOTDIR, NOTCAPABLE (no PATH_READLINK, or escape), NOENT,
    INVAL (not a symlink), FAULT."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_READLINK)
    ctx.memory.check(buf, buf_len)
    ctx.memory.check(bufused, 4)
    with Beneath(directory.fd) as walk:
        where = walk.resolve(_path(ctx, path, path_len), follow=False)
        target = os.readlink(where.name, dir_fd=where.dir_fd)
    used = min(len(target), buf_len)
    ctx.memory.write(buf, target[:used])
    ctx.memory.store_u32(bufused, used)
    return Errno.SUCCESS


@host_function(fd=FD, path=PTR, path_len=U32)
def path_remove_directory(ctx: Any, fd: int, path: int, path_len: int) -> ErrnoResult:
    """``unlinkat(AT_REMOVEDIR)``. Errnos: BADF, NOTDIR, NOTCAPABLE (no
    PATH_REMOVE_DIRECTORY, or escape), NOENT, NOTEMPTY, INVAL (``.``), BUSY."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_REMOVE_DIRECTORY)
    with Beneath(directory.fd) as walk:
        where = walk.resolve(_path(ctx, path, path_len), follow=False)
        os.rmdir(where.name, dir_fd=where.dir_fd)
    return Errno.SUCCESS


@host_function(fd=FD, old_path=PTR, old_path_len=U32, new_fd=FD, new_path=PTR, new_path_len=U32)
def path_rename(
    ctx: Any, fd: int, old_path: int, old_path_len: int, new_fd: int, new_path: int, new_path_len: int
) -> ErrnoResult:
    """``renameat``, both names resolved inside their sandboxes.
    Errnos: BADF, NOTDIR, NOTCAPABLE (PATH_RENAME_SOURCE on ``fd``,
    PATH_RENAME_TARGET on ``new_fd``, escape), NOENT, EXIST/NOTEMPTY, ISDIR,
    INVAL (moving a directory into itself), XDEV, FAULT."""
    source_dir = ctx.fds.get_dir(fd, Rights.PATH_RENAME_SOURCE)
    target_dir = ctx.fds.get_dir(new_fd, Rights.PATH_RENAME_TARGET)
    old = _path(ctx, old_path, old_path_len)
    new = _path(ctx, new_path, new_path_len)
    with Beneath(source_dir.fd) as source_walk, Beneath(target_dir.fd) as target_walk:
        source = source_walk.resolve(old, follow=False)
        target = target_walk.resolve(new, follow=False)
        if source.must_be_dir or target.must_be_dir:
            source.must_be_dir = True
            source.require_directory()
        os.rename(source.name, target.name, src_dir_fd=source.dir_fd, dst_dir_fd=target.dir_fd)
    return Errno.SUCCESS


@host_function(old_path=PTR, old_path_len=U32, fd=FD, new_path=PTR, new_path_len=U32)
def path_symlink(ctx: Any, old_path: int, old_path_len: int, fd: int, new_path: int, new_path_len: int) -> ErrnoResult:
    """``symlinkat``: create ``new_path`` containing ``old_path``.
    Errnos: BADF, NOTDIR, NOTCAPABLE (no PATH_SYMLINK, an absolute target, or
    escape), NOENT (empty target), EXIST, INVAL (NUL byte), FAULT."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_SYMLINK)
    contents = _path(ctx, old_path, old_path_len)
    if not contents:
        raise WasiError(Errno.NOENT)
    if b"\0" in contents:
        raise WasiError(Errno.INVAL)
    if contents.startswith(b"/"):
        raise WasiError(Errno.NOTCAPABLE)
    with Beneath(directory.fd) as walk:
        where = walk.resolve(_path(ctx, new_path, new_path_len), follow=False)
        if where.must_be_dir:
            raise WasiError(Errno.EXIST if _exists(where.dir_fd, where.name) else Errno.NOENT)
        os.symlink(contents, where.name, dir_fd=where.dir_fd)
    return Errno.SUCCESS


@host_function(fd=FD, path=PTR, path_len=U32)
def path_unlink_file(ctx: Any, fd: int, path: int, path_len: int) -> ErrnoResult:
    """``unlinkat``. Errnos: BADF, NOTDIR, NOTCAPABLE (no PATH_UNLINK_FILE,
    or escape), NOENT, ISDIR (a directory), FAULT."""
    directory = ctx.fds.get_dir(fd, Rights.PATH_UNLINK_FILE)
    with Beneath(directory.fd) as walk:
        where = walk.resolve(_path(ctx, path, path_len), follow=False)
        if where.must_be_dir:
            st = os.stat(where.name, dir_fd=where.dir_fd, follow_symlinks=False)
            raise WasiError(Errno.ISDIR if stat.S_ISDIR(st.st_mode) else Errno.NOTDIR)
        os.unlink(where.name, dir_fd=where.dir_fd)
    return Errno.SUCCESS
