"""WasiConfig: what a WASI guest may see, as a plain reusable object.

    >>> from asyncwasm.wasi import WasiConfig
    >>> out = bytearray()
    >>> config = WasiConfig(argv=["app", "--fast"], env={"LANG": "C"}, stdout=out)
    >>> config.preopen_dir("/srv/data", "/data", readonly=True)

A config is only read: every :class:`~asyncwasm.wasi.WasiContext` built from
it opens its own file descriptors and copies its own stdin bytes, so one
config can start many instances. Capture buffers and callbacks are shared by
those instances (they are the caller's objects).

Stdio values:

- ``None`` (default): a null device. Reads see end of file, writes are
  accepted and dropped.
- ``"inherit"``: the host process's own fd 0/1/2 (shared by every guest, not duplicated).
- stdin ``bytes``: the guest reads these bytes, then end of file.
- stdout/stderr ``bytearray`` or ``io.BytesIO``: output is appended to it.
- an open file object: its ``fileno()`` is duplicated when it has one (so the
  guest sees the real kind of file), else its ``readinto``/``read`` or
  ``write`` methods are used. Text files are used through ``.buffer``.
- stdout/stderr callable: called with each written ``bytes``; if it returns
  an awaitable, the guest waits for it (needs the async driver).
- stdin callable: called as ``callback(n)`` when the guest reads ``n``
  bytes, returns bytes (``b""``: end of file; more than ``n`` are kept for
  the next reads), or an awaitable of them while the data is not there yet
  (the guest waits; needs the async driver).
- a trio stream: ``trio.abc.ReceiveStream`` for stdin, ``trio.abc.SendStream``
  for stdout/stderr. The guest task suspends while data is not there yet.

Networking (see :mod:`asyncwasm.wasi.sockets` and :mod:`asyncwasm.wasi.netpolicy`):

    >>> listener = trio.socket.socket()              # or socket.socket
    >>> await listener.bind(("127.0.0.1", 8080)); listener.listen()
    >>> config = WasiConfig(listeners=[listener, ("::1", 0)],
    ...                     net_policy=NetPolicy(connect=["127.0.0.1:5432"]))

- ``listeners`` become pre-opened listening sockets at the fds after the
  preopened directories (wasmtime's former ``--tcplisten``): a socket object
  is duplicated for each context (many instances can share one listener),
  a ``(host, port)`` pair is bound and listened on by each context.
- ``net_policy`` (default: deny everything) says what the guest may do on
  its own with WasmEdge's socket calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from .fdbudget import FdBudget
from .netpolicy import NetPolicy
from .sockets import check_listener_spec

__all__ = ["WasiConfig", "Preopen"]

StrOrBytes = Union[str, bytes]


@dataclass(frozen=True)
class Preopen:
    """A host directory the guest sees at ``guest_path``."""

    host_path: str
    guest_path: str
    readonly: bool = False


def _to_bytes(value: StrOrBytes, what: str) -> bytes:
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    if b"\0" in data:
        raise ValueError(f"{what} contains a NUL byte: {value!r}")
    return data


@dataclass
class WasiConfig:
    """Configuration of a WASI guest (see the module docstring for stdio).

    - ``argv``: the argument list, program name first.
    - ``env``: environment variables (a mapping, or ``(key, value)`` pairs).
      Nothing is inherited from the host unless ``inherit_env`` is true, in
      which case ``env`` entries override the host's.
    - ``preopens``: :class:`Preopen` entries or ``(host_path, guest_path,
      readonly)`` tuples; they become fds 3, 4, ... in order.
    - ``listeners``: pre-opened listening sockets, numbered after the
      directories: listening ``socket.socket`` / ``trio.socket`` objects
      (duplicated per context; their file description is set non-blocking)
      or ``(host, port)`` pairs each context binds and listens on itself
      (port 0: a free port, see ``WasiContext.listener_addresses()``).
    - ``net_policy``: a :class:`~asyncwasm.wasi.netpolicy.NetPolicy`; what
      the guest may bind, listen on, connect to and resolve by itself.
      Default: nothing (the pre-opened listeners still work).
    - ``monotonic_ns`` / ``realtime_ns``: clock sources in nanoseconds
      (default ``time.monotonic_ns`` / ``time.time_ns``).
    - ``random_bytes``: ``n -> bytes`` source for ``random_get`` (default
      ``os.urandom``); override it for deterministic tests.
    - ``trace``: called as ``trace(name, args, errno)`` after every WASI
      call (``errno`` is None when the call raised, e.g. ``proc_exit``);
      :func:`asyncwasm.wasi.format_call` renders one line.
    - ``max_fds``: most guest fds open at once (then ``MFILE``).
    - ``fd_budget``: the :class:`~asyncwasm.wasi.fdbudget.FdBudget` that
      the guest's own opens (files, sockets) count against, shared with
      other contexts (then ``NFILE``); default: the process's
      (:func:`~asyncwasm.wasi.fdbudget.process_fd_budget`).
    - ``max_output_rate``: bytes a second the guest may write to stdout and
      stderr together (:class:`~asyncwasm.wasi.stdio.OutputLimit`: past it
      its writes wait; nothing is buffered); None: no limit.
    """

    argv: Sequence[StrOrBytes] = ()
    env: Union[Mapping[StrOrBytes, StrOrBytes], Sequence[tuple[StrOrBytes, StrOrBytes]]] = field(default_factory=dict)
    inherit_env: bool = False
    preopens: list = field(default_factory=list)
    stdin: Any = None
    stdout: Any = None
    stderr: Any = None
    listeners: list = field(default_factory=list)
    net_policy: NetPolicy = field(default_factory=NetPolicy)
    monotonic_ns: Optional[Callable[[], int]] = None
    realtime_ns: Optional[Callable[[], int]] = None
    random_bytes: Optional[Callable[[int], bytes]] = None
    trace: Optional[Callable[[str, dict, Optional[int]], None]] = None
    max_fds: int = 1024
    fd_budget: Optional[FdBudget] = None
    max_output_rate: Optional[int] = None

    # -- conveniences (wasmtime-py vocabulary) ------------------------------

    def preopen_dir(self, host_path: Union[str, os.PathLike], guest_path: str, *, readonly: bool = False) -> None:
        """Let the guest see ``host_path`` as ``guest_path``."""
        self.preopens.append(Preopen(os.fspath(host_path), guest_path, readonly))

    def preopen_listener(self, listener: Any) -> None:
        """Give the guest a pre-opened listening socket (a listening socket
        object, or a ``(host, port)`` pair to bind); see ``listeners``."""
        check_listener_spec(listener)
        self.listeners.append(listener)

    def inherit_stdio(self) -> None:
        """Use the host's stdin, stdout and stderr."""
        self.stdin = self.stdout = self.stderr = "inherit"

    # -- normalized views, used by WasiContext --------------------------------

    def argv_bytes(self) -> list[bytes]:
        """``argv`` as bytes (UTF-8); raises on NUL bytes."""
        if isinstance(self.argv, (str, bytes)):
            raise TypeError("argv must be a sequence of strings, not a single string")
        return [_to_bytes(arg, "argv item") for arg in self.argv]

    def env_bytes(self) -> list[bytes]:
        """The environment as ``KEY=VALUE`` byte strings."""
        merged: dict[bytes, bytes] = {}
        if self.inherit_env:
            merged.update(os.environb)
        pairs = self.env.items() if isinstance(self.env, Mapping) else self.env
        for key, value in pairs:
            k = _to_bytes(key, "env key")
            if not k or b"=" in k:
                raise ValueError(f"env key must be non-empty and contain no '=': {key!r}")
            merged[k] = _to_bytes(value, "env value")
        return [k + b"=" + v for k, v in merged.items()]

    def preopen_list(self) -> list[Preopen]:
        """``preopens`` as :class:`Preopen` values, checked."""
        result = []
        for item in self.preopens:
            if isinstance(item, Preopen):
                preopen = item
            else:
                host, guest, *rest = item
                if len(rest) > 1:
                    raise ValueError(f"preopen must be (host_path, guest_path[, readonly]), not {item!r}")
                preopen = Preopen(os.fspath(host), guest, bool(rest[0]) if rest else False)
            _to_bytes(preopen.guest_path, "preopen guest path")
            result.append(preopen)
        return result

    def check(self) -> None:
        """Raise TypeError/ValueError for a bad config."""
        self.argv_bytes()
        self.env_bytes()
        self.preopen_list()
        if isinstance(self.listeners, (str, bytes, tuple)):
            raise TypeError("listeners must be a list of sockets or (host, port) pairs")
        for listener in self.listeners:
            check_listener_spec(listener)
        if not isinstance(self.net_policy, NetPolicy):
            raise TypeError(f"net_policy must be a NetPolicy, not {type(self.net_policy).__name__}")
        if isinstance(self.max_fds, bool) or not isinstance(self.max_fds, int) or self.max_fds < 3:
            raise ValueError(f"max_fds must be an int >= 3, not {self.max_fds!r}")
        rate = self.max_output_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
            raise ValueError(f"max_output_rate must be an int >= 1 (bytes per second) or None, not {rate!r}")
        if self.fd_budget is not None and not isinstance(self.fd_budget, FdBudget):
            raise TypeError(f"fd_budget must be an FdBudget, not {type(self.fd_budget).__name__}")
