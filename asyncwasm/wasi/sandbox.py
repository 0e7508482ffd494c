"""Sandboxed path resolution: a guest path never leaves its preopen.

Rule: the host walks every path itself, one component at a time, from the
directory fd the guest named, with ``openat(O_NOFOLLOW | O_DIRECTORY)``.
The kernel is never handed a multi-component path or asked to follow a
symbolic link, so nothing swapped in on the host between two steps can
redirect the walk: each step is relative to an fd we already hold.

Rule: ``..`` pops our own stack of directory fds; popping the starting
directory is ``NOTCAPABLE``. Absolute paths, and symbolic links whose target
is absolute, are ``NOTCAPABLE`` too. Relative link targets are spliced into
the walk (so they are confined the same way); more than :data:`MAX_SYMLINKS`
expansions in one resolution is ``LOOP``.

Rule: the final component is handed to the operation as ``(dir_fd, name)``
with ``name`` a single component, and operations use their no-follow form
(``O_NOFOLLOW``, ``follow_symlinks=False``). When the guest asked to follow
(``lookupflags.symlink_follow``), the *walker* expands the link and retries;
the kernel still never follows. A symlink swapped in after our check is then
acted on as a link, which stays inside the sandbox.

Strategy: a trailing slash means "must be a directory" (and implies
following). It is stripped from the name and enforced by the operation
(``O_DIRECTORY`` for opens, :meth:`Resolved.require_directory` elsewhere),
because ``name/`` handed to the kernel would make it follow a link.
"""

from __future__ import annotations

import errno as host_errno
import os
import stat
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar, Union

from .abi import Errno, WasiError

__all__ = ["MAX_SYMLINKS", "split_path", "Beneath", "Resolved"]

#: Symbolic link expansions allowed in one resolution (Linux uses 40).
MAX_SYMLINKS = 40

_O_SEARCH = getattr(os, "O_PATH", os.O_RDONLY)
_DIR_STEP_FLAGS = _O_SEARCH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

T = TypeVar("T")


def split_path(path: bytes) -> tuple[list[bytes], bool]:
    """Split a guest path into components and a "trailing slash" flag.

    ``NOENT`` for an empty path, ``INVAL`` for a NUL byte, ``NOTCAPABLE`` for
    an absolute path (preview1 paths are relative to a directory fd).

        >>> split_path(b"a//b/./c/")
        ([b'a', b'', b'b', b'.', b'c'], True)
    """
    if not path:
        raise WasiError(Errno.NOENT)
    if b"\0" in path:
        raise WasiError(Errno.INVAL)
    if path.startswith(b"/"):
        raise WasiError(Errno.NOTCAPABLE)
    stripped = path.rstrip(b"/")
    return stripped.split(b"/"), len(stripped) != len(path)


def _readlink_or_none(name: bytes, dir_fd: int) -> Optional[bytes]:
    """The target of ``name`` if it is a symbolic link, else None."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (host_errno.EINVAL, host_errno.ENOENT, host_errno.ENOTDIR):
            return None
        raise


@dataclass(frozen=True)
class _Link:
    """Returned by a final step: ``name`` is a symlink the guest wants followed."""

    target: bytes


@dataclass
class Resolved:
    """A resolved path: act on ``name`` relative to ``dir_fd``. Valid only
    inside the :class:`Beneath` block that produced it."""

    dir_fd: int
    name: bytes
    must_be_dir: bool

    def require_directory(self) -> None:
        """For a path with a trailing slash: ``NOTDIR`` unless ``name`` is a
        directory (``NOENT`` if it does not exist)."""
        if self.must_be_dir and not stat.S_ISDIR(os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False).st_mode):
            raise WasiError(Errno.NOTDIR)


class Beneath:
    """Resolves paths beneath one directory fd. Use as a context manager; the
    intermediate directory fds it opens are closed on exit.

        >>> with Beneath(preopen_fd) as walk:
        ...     where = walk.resolve(b"docs/../notes.txt", follow=False)
        ...     os.unlink(where.name, dir_fd=where.dir_fd)
    """

    def __init__(self, root_fd: int) -> None:
        self._stack = [root_fd]
        self._links = 0

    def __enter__(self) -> "Beneath":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        while len(self._stack) > 1:
            os.close(self._stack.pop())

    @property
    def _top(self) -> int:
        return self._stack[-1]

    # -- public operations -------------------------------------------------

    def resolve(self, path: bytes, *, follow: bool) -> Resolved:
        """Walk ``path``; the final component is expanded only if ``follow``."""
        components, trailing = split_path(path)

        def final(dir_fd: int, name: bytes, follow_final: bool) -> Union[Resolved, _Link]:
            if follow_final and name != b".":
                target = _readlink_or_none(name, dir_fd)
                if target is not None:
                    return _Link(target)
            return Resolved(dir_fd, name, trailing)

        return self._walk(components, follow or trailing, final)

    def open(self, path: bytes, flags: int, mode: int = 0o666, *, follow: bool) -> int:
        """``openat`` ``path`` confined to the sandbox; returns a new host fd.

        ``flags`` must not ask the kernel to follow (``O_NOFOLLOW`` is added);
        a final symlink is expanded by the walker when ``follow`` is set."""
        components, trailing = split_path(path)
        if trailing:
            flags |= os.O_DIRECTORY
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC

        def final(dir_fd: int, name: bytes, follow_final: bool) -> Union[int, _Link]:
            try:
                return os.open(name, flags, mode, dir_fd=dir_fd)
            except OSError as exc:
                # O_NOFOLLOW on a symlink fails with ELOOP (ENOTDIR with O_DIRECTORY on some kernels).
                if follow_final and exc.errno in (host_errno.ELOOP, host_errno.ENOTDIR, host_errno.EMLINK):
                    target = _readlink_or_none(name, dir_fd)
                    if target is not None:
                        return _Link(target)
                raise

        return self._walk(components, follow or trailing, final)

    # -- the walk ------------------------------------------------------------

    def _walk(self, components: list[bytes], follow: bool, final: Callable[[int, bytes, bool], Union[T, _Link]]) -> T:
        pending = deque(components)
        while True:
            if not pending:
                outcome = final(self._top, b".", follow)
            else:
                name = pending.popleft()
                last = not pending
                if name in (b"", b"."):
                    if not last:
                        continue
                    outcome = final(self._top, b".", follow)
                elif name == b"..":
                    self._up()
                    if not last:
                        continue
                    outcome = final(self._top, b".", follow)
                elif not last:
                    target = self._down(name)
                    if target is not None:
                        self._expand(target, pending)
                    continue
                else:
                    outcome = final(self._top, name, follow)
            if not isinstance(outcome, _Link):
                return outcome
            self._expand(outcome.target, pending)

    def _up(self) -> None:
        if len(self._stack) == 1:
            raise WasiError(Errno.NOTCAPABLE)
        os.close(self._stack.pop())

    def _down(self, name: bytes) -> Optional[bytes]:
        """Enter directory ``name``; if it is a symlink return its target instead."""
        try:
            fd = os.open(name, _DIR_STEP_FLAGS, dir_fd=self._top)
        except OSError as exc:
            if exc.errno in (host_errno.ELOOP, host_errno.ENOTDIR, host_errno.EMLINK):
                target = _readlink_or_none(name, self._top)
                if target is not None:
                    return target
            raise
        self._stack.append(fd)
        return None

    def _expand(self, target: bytes, pending: deque) -> None:
        self._links += 1
        if self._links > MAX_SYMLINKS:
            raise WasiError(Errno.LOOP)
        if not target:
            raise WasiError(Errno.NOENT)
        if target.startswith(b"/"):
            raise WasiError(Errno.NOTCAPABLE)
        stripped = target.rstrip(b"/")
        parts = stripped.split(b"/")
        if len(stripped) != len(target):
            parts.append(b".")  # "dir/" must stay a directory: resolve into it
        pending.extendleft(reversed(parts))
