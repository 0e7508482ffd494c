"""WasiContext: one instance's WASI state and its import functions.

    >>> ctx = WasiContext(config)
    >>> for name, (functype, func) in ctx.imports().items():
    ...     linker.define_func("wasi_snapshot_preview1", name, functype, func)
    >>> instance = linker.instantiate(module)
    >>> ctx.bind(instance.exports["memory"])
    >>> ...run _start...
    >>> ctx.close()

Rule: one context per instance. It owns the guest's fd table (host fds it
opened or duplicated, sockets included) and must be closed when the
instance is done; it is also a context manager.

Linking by signature. ``imports()`` is the preview1 set by name. A guest
built for WasmEdge's socket extension imports more names, and one name can
mean two functions of different types (``sock_accept(fd, *fd)`` of WasmEdge
V1 vs. preview1's ``sock_accept(fd, flags, *fd)``; V1 vs. V2
``sock_recv_from``, ``sock_getlocaladdr``, ...). A linker should therefore
resolve each ``wasi_snapshot_preview1`` import of the module with
:meth:`WasiContext.import_for`, passing the import's declared type:

    >>> for imp in module.imports:
    ...     if imp.module == WASI_MODULE:
    ...         found = ctx.import_for(imp.name, imp.type)
    ...         if found is None:
    ...             raise LinkError(f"unknown WASI import {imp.name}: {imp.type}")
    ...         linker.define_func(WASI_MODULE, imp.name, *found)
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from .._errors import Trap
from .._types import FuncType
# Importing the family modules declares their functions.
from . import args, clock, environ, fs, paths, poll, proc, random, sched, sock, wasmedge_sock  # noqa: F401
from .abi import RIGHTS_WRITING
from .clock import Clocks
from .config import WasiConfig
from . import fastpath
from .decl import REGISTRY, HostFunction, bind
from .fastpath import SockMirror
from .fdbudget import process_fd_budget
from .fdtable import DirEntry, FdTable
from .memory import GuestMemory
from .sock import candidates
from .sockets import NetState, listener_entry
from .stdio import OutputLimit, make_stdio, renew_stdio

__all__ = ["WasiContext", "WASI_MODULE"]

#: The import module name every preview1 function lives under.
WASI_MODULE = "wasi_snapshot_preview1"


class _Unbound:
    """Stands in for guest memory until :meth:`WasiContext.bind` is called."""

    def __getattr__(self, name: str) -> Any:
        raise Trap("WASI call before the instance memory was bound (the module has no memory, "
                   "or WasiContext.bind(memory) was not called)")


_UNBOUND = _Unbound()


class WasiContext:
    """The WASI state of one instance, built from a :class:`WasiConfig`.

    Opening a context opens the preopened directories (fds 3, 4, ... in
    ``config.preopens`` order), then the pre-opened listeners (the next fds,
    in ``config.listeners`` order), and the stdio entries (fds 0-2); a
    missing preopen directory, or a listener that cannot be bound, raises
    :class:`OSError` here, before any guest runs.
    """

    def __init__(self, config: Optional[WasiConfig] = None) -> None:
        config = WasiConfig() if config is None else config
        config.check()
        self.config = config
        self.argv: list[bytes] = config.argv_bytes()
        self.env: list[bytes] = config.env_bytes()
        self.clocks = Clocks(config.monotonic_ns, config.realtime_ns)
        self.random_bytes: Callable[[int], bytes] = config.random_bytes or os.urandom
        self._preopens = config.preopen_list()
        # The engine's C path for the hot socket calls (see .fastpath); not
        # with a trace, which must see every call.
        self._mirror: Optional[SockMirror] = None
        if fastpath.AVAILABLE and config.trace is None:
            native_clocks = config.monotonic_ns is None and config.realtime_ns is None
            self._mirror = SockMirror(self, native_clocks)
        self.fds = FdTable(config.max_fds, config.fd_budget or process_fd_budget())
        self.fds.mirror = self._mirror
        self.net = NetState(config.net_policy)
        # The in-memory fds 0-2 a run may leave for the next (renew_stdio),
        # and those the last close kept in the table.
        self._renewable: list[Any] = []
        self._kept: list[Any] = []
        self._open(config.stdin, config.stdout, config.stderr)

    def _open(self, stdin: Any, stdout: Any, stderr: Any) -> None:
        """Fill the fd table (empty, but for stdio entries the last close
        kept); forget the memory binding."""
        self.memory: Any = _UNBOUND
        kept, self._kept = self._kept, []
        fds = self.fds
        try:
            renewable = []
            for fd, spec in enumerate((stdin, stdout, stderr)):
                entry = kept[fd] if kept else None
                if entry is not None:
                    if renew_stdio(entry, spec, fd):
                        renewable.append(entry)
                        continue
                    fds.close(fd)
                entry = make_stdio(spec, fd)
                fds.put(fd, entry)
                renewable.append(entry if hasattr(entry, "renew") else None)
            self.output_limit = None if self.config.max_output_rate is None else OutputLimit(self.config.max_output_rate)
            if self.output_limit is not None:
                renewable = []  # (its wrapper stays on an entry)
                for fd in (1, 2):
                    self.output_limit.wrap(self.fds.get(fd))
            self._renewable = renewable
            for number, preopen in enumerate(self._preopens, start=3):
                self.fds.put(number, _open_preopen(preopen.host_path, preopen.guest_path, preopen.readonly))
            for number, listener in enumerate(self.config.listeners, start=3 + len(self._preopens)):
                self.fds.put(number, listener_entry(listener))
        except BaseException:
            self.fds.close_all()
            raise
        self._closed = False

    def renew(self, *, env: Optional[list[bytes]] = None, stdin: Any = None, stdout: Any = None,
              stderr: Any = None) -> None:
        """Close everything and start over as a fresh context of the same
        config, with ``env`` (``KEY=VALUE`` bytes, default the config's) and
        these stdio values (WasiConfig's kinds; default: null devices).

        Why: the import functions from :meth:`imports`/:meth:`import_for`
        stay bound to this object, so a host that runs one short-lived
        instance after another (HTTP handler mode: an instance per request)
        binds them once instead of once per instance. Nothing of the previous
        instance survives: fds, sockets, pollers and the memory binding are
        new (in-memory stdio entries still at fds 0-2 are reset in place,
        every field a guest can change). Only call it once the previous
        instance is done.

            >>> ctx.renew(env=[b"REQUEST_METHOD=GET"], stdin=b"", stdout=out)
            >>> instance = linker.instantiate(module)     # linker holds ctx's imports
            >>> ctx.bind(instance.exports["memory"])
        """
        self.close()
        self.env = self.config.env_bytes() if env is None else list(env)
        self._open(stdin, stdout, stderr)

    def imports(self) -> dict[str, tuple[FuncType, Callable[..., Any]]]:
        """Every ``wasi_snapshot_preview1`` function: name -> (type, callable).

        The callables take and return Python ints (signed, as the engine
        passes them) and return the errno; one that would block returns an
        awaitable of the errno instead. ``proc_exit`` raises
        :class:`asyncwasm.Exit`."""
        return {name: (function.functype, self._bound(function)) for name, function in REGISTRY.items()}

    def _bound(self, function: HostFunction) -> Callable[..., Any]:
        call = bind(function, self, self.config.trace)
        return call if self._mirror is None else self._mirror.wrap(function.name, call)

    def import_for(self, name: str, functype: FuncType) -> Optional[tuple[FuncType, Callable[..., Any]]]:
        """The ``wasi_snapshot_preview1`` function to link to an import
        ``name`` of type ``functype``: (type, callable), or None when no
        function of that name has that type.

        Covers preview1 and WasmEdge's socket extension (``sock_open``,
        ``sock_bind``, ..., ``epoll_oneoff``, and the ``*_v2`` names), and
        picks by signature as WasmEdge does: the preview1 function, else
        WasmEdge's V1 of that name, else its ``_v2``. So a 2-argument
        ``sock_accept`` import gets WasmEdge V1 and a 3-argument one the
        preview1 call; an 8-argument ``sock_recv_from`` gets V2."""
        for function in candidates(name):
            if function.functype == functype:
                return function.functype, self._bound(function)
        return None

    def listener_addresses(self) -> dict[int, Any]:
        """Guest fd -> local address (as ``socket.getsockname()``) of every
        open pre-opened listener; useful after binding ``(host, 0)``."""
        out = {}
        for fd, entry in self.fds.items():
            if getattr(entry, "preopened", False) and entry.sock is not None:
                out[fd] = entry.sock.getsockname()
        return out

    def bind(self, memory: Any) -> None:
        """Give the context the instance's memory (an ``asyncwasm.Memory`` or
        anything with a ``view()`` returning a writable buffer)."""
        self.memory = GuestMemory(memory)
        if self._mirror is not None:
            self._mirror.bind_memory(memory)

    def close(self) -> None:
        """Close every fd the guest still has open (sockets too: a guest task
        still waiting on one wakes with BADF) and the networking state.
        Idempotent. (In-memory stdio entries the guest left at fds 0-2 stay
        in the table, closed, for :meth:`renew` to make new in place.)"""
        if not self._closed:
            self._closed = True
            try:
                self._kept = self.fds.close_all(self._renewable)
            finally:
                self.net.close()
                if self._mirror is not None:
                    self._mirror.close()

    def __enter__(self) -> "WasiContext":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WasiContext: {len(self.fds)} open fds{' (closed)' if self._closed else ''}>"


def _open_preopen(host_path: str, guest_path: str, readonly: bool) -> DirEntry:
    fd = os.open(host_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        entry = DirEntry(fd, preopen_name=guest_path.encode("utf-8", "surrogateescape"))
    except BaseException:
        os.close(fd)
        raise
    if readonly:
        entry.rights_base &= ~RIGHTS_WRITING
        entry.rights_inheriting &= ~RIGHTS_WRITING
    return entry
