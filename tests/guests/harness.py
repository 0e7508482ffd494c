"""Test support for the WASI host (not a test module).

- :func:`load_wasi` imports ``asyncwasm.wasi`` even while the C engine is not
  built (the WASI host is pure Python; only ``asyncwasm/__init__`` needs the
  engine), so the unit tests run before the engine does.
- :class:`FakeMemory`: a bytearray-backed stand-in for ``asyncwasm.Memory``.
- :func:`run_guest`: run a prebuilt guest from this directory with a
  :class:`WasiConfig`, on a named backend: ``"asyncwasm"`` (the real engine,
  through its public API: ``Linker.define_wasi``, ``instantiate_async``,
  ``call_async``) or ``"wasmtime"``
  (a reference engine, so the host is checked against real guests today).
"""

from __future__ import annotations

import ctypes
import importlib
import inspect
import pathlib
import sys
import types
from typing import Any, Optional

import trio

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE_DIR = HERE.parent.parent / "asyncwasm"


def load_wasi() -> types.ModuleType:
    """``asyncwasm.wasi``, importable with or without the built engine."""
    try:
        import asyncwasm  # noqa: F401
    except ImportError:
        # Load the pure-Python subpackage under a temporary package object,
        # then drop that stub so later ``import asyncwasm`` behaves as usual.
        stub = types.ModuleType("asyncwasm")
        stub.__path__ = [str(PACKAGE_DIR)]
        sys.modules["asyncwasm"] = stub
        try:
            importlib.import_module("asyncwasm.wasi")
        finally:
            if sys.modules.get("asyncwasm") is stub:
                del sys.modules["asyncwasm"]
    return importlib.import_module("asyncwasm.wasi")


def engine_unavailable_reason() -> Optional[str]:
    """None when ``asyncwasm.Linker`` can run modules, else why not."""
    try:
        import asyncwasm

        asyncwasm.Linker
        asyncwasm.Module
        from asyncwasm.lowlevel import Fiber  # noqa: F401
    except Exception as exc:  # ImportError, AttributeError: engine not built yet
        return f"asyncwasm engine/Linker unavailable ({type(exc).__name__}: {exc})"
    return None


class FakeMemory:
    """A guest memory backed by a bytearray, with the ``view()`` of asyncwasm.Memory."""

    def __init__(self, size: int = 1 << 16) -> None:
        self.data = bytearray(size)

    def view(self) -> memoryview:
        return memoryview(self.data)


class FakeGuest:
    """A :class:`WasiContext` on a :class:`FakeMemory`, called the way a guest
    calls it: raw ints in, errno out, results read back from memory."""

    def __init__(self, config: Any, memory_size: int = 1 << 20) -> None:
        self.wasi = load_wasi()
        self.ctx = self.wasi.WasiContext(config)
        self.memory = FakeMemory(memory_size)
        self.ctx.bind(self.memory)
        self.functions = {name: func for name, (_, func) in self.ctx.imports().items()}
        self._next = 1024

    def close(self) -> None:
        self.ctx.close()

    def __enter__(self) -> "FakeGuest":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- memory ------------------------------------------------------------
    def alloc(self, size: int, align: int = 8) -> int:
        ptr = (self._next + align - 1) // align * align
        if ptr + size > len(self.memory.data):
            ptr = 1024  # tests never keep old scratch data around
        self._next = ptr + size
        return ptr

    def put(self, data: bytes) -> tuple[int, int]:
        ptr = self.alloc(len(data) + 1)
        self.memory.data[ptr : ptr + len(data)] = data
        return ptr, len(data)

    def read(self, ptr: int, n: int) -> bytes:
        return bytes(self.memory.data[ptr : ptr + n])

    def u32(self, ptr: int) -> int:
        return int.from_bytes(self.memory.data[ptr : ptr + 4], "little")

    def u64(self, ptr: int) -> int:
        return int.from_bytes(self.memory.data[ptr : ptr + 8], "little")

    def iovecs(self, buffers: list) -> tuple[int, int]:
        """Lay out iovecs for ``buffers`` (each (ptr, len)); returns (iovs, count)."""
        table = self.alloc(8 * len(buffers))
        for i, (ptr, length) in enumerate(buffers):
            self.memory.data[table + 8 * i : table + 8 * i + 8] = ptr.to_bytes(4, "little") + length.to_bytes(4, "little")
        return table, len(buffers)

    # -- calls ---------------------------------------------------------------
    def call(self, name: str, *args: int) -> Any:
        return self.functions[name](*args)

    def path(self, name: str, fd: int, path: bytes, *rest: int) -> Any:
        """Call a ``path_*`` function whose arguments start (fd, path, path_len)."""
        ptr, length = self.put(path)
        return self.call(name, fd, ptr, length, *rest)

    def open(self, path: bytes, *, dirfd: int = 3, oflags: int = 0, rights: Optional[int] = None,
             inheriting: Optional[int] = None, fdflags: int = 0, follow: bool = True) -> tuple[int, Optional[int]]:
        """path_open; returns (errno, new fd or None)."""
        all_rights = (1 << 30) - 1
        out = self.alloc(4)
        ptr, length = self.put(path)
        errno = self.call("path_open", dirfd, 1 if follow else 0, ptr, length, oflags,
                          all_rights if rights is None else rights,
                          all_rights if inheriting is None else inheriting, fdflags, out)
        return errno, (self.u32(out) if errno == 0 else None)

    def write(self, fd: int, data: bytes) -> tuple[int, int]:
        ptr, length = self.put(data)
        iovs, count = self.iovecs([(ptr, length)])
        out = self.alloc(4)
        errno = self.call("fd_write", fd, iovs, count, out)
        return errno, self.u32(out)

    def read_fd(self, fd: int, n: int) -> tuple[int, bytes]:
        buf = self.alloc(n)
        iovs, count = self.iovecs([(buf, n)])
        out = self.alloc(4)
        errno = self.call("fd_read", fd, iovs, count, out)
        return errno, self.read(buf, self.u32(out)) if errno == 0 else b""

    def fdstat(self, fd: int) -> tuple[int, tuple]:
        """fd_fdstat_get; returns (errno, (filetype, flags, base, inheriting))."""
        out = self.alloc(24)
        errno = self.call("fd_fdstat_get", fd, out)
        return errno, self.wasi.abi.FDSTAT.unpack(self.read(out, 24))

    def filestat(self, fd: int) -> tuple[int, tuple]:
        out = self.alloc(64)
        errno = self.call("fd_filestat_get", fd, out)
        return errno, self.wasi.abi.FILESTAT.unpack(self.read(out, 64))


# -- running guests -------------------------------------------------------------


def guest_path(name: str) -> pathlib.Path:
    return HERE / f"{name}.wasm"


def run_guest(backend: str, name: str, config: Any) -> int:
    """Run guest ``name`` to completion; returns its exit code (0 when
    ``_start`` returns)."""
    if backend == "wasmtime":
        return _run_wasmtime(guest_path(name), config)
    if backend == "asyncwasm":
        return trio.run(_run_asyncwasm, guest_path(name), config)
    raise ValueError(backend)


async def _drive(func: Any) -> Any:
    """Call ``func`` through the real trio driver (kept for the tests that
    link WASI by hand)."""
    return await func.call_async()


async def _run_asyncwasm(path: pathlib.Path, config: Any) -> int:
    """The documented way to run a WASI command (see the README)."""
    import asyncwasm

    module = asyncwasm.Module.from_file(str(path))
    linker = asyncwasm.Linker()
    linker.define_wasi(config)
    with await linker.instantiate_async(module) as instance:
        try:
            await instance.exports["_start"].call_async()
        except asyncwasm.Exit as exc:
            return exc.code
    return 0


class _WasmtimeMemory:
    """asyncwasm.Memory's ``view()`` over a wasmtime memory (which does not
    move: wasmtime reserves its whole range up front on 64-bit hosts)."""

    def __init__(self, store: Any, memory: Any) -> None:
        self._store = store
        self._memory = memory

    def view(self) -> memoryview:
        size = self._memory.data_len(self._store)
        base = ctypes.addressof(self._memory.data_ptr(self._store).contents)
        return memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")


def _run_wasmtime(path: pathlib.Path, config: Any) -> int:
    import wasmtime

    from asyncwasm._errors import Exit

    wasi = load_wasi()
    valtypes = {0x7F: wasmtime.ValType.i32(), 0x7E: wasmtime.ValType.i64()}
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, str(path))
    linker = wasmtime.Linker(engine)
    with wasi.WasiContext(config) as ctx:
        for name, (functype, func) in ctx.imports().items():
            wt = wasmtime.FuncType([valtypes[p] for p in functype.params], [valtypes[r] for r in functype.results])
            linker.define_func(wasi.WASI_MODULE, name, wt, _sync_adapter(func))
        instance = linker.instantiate(store, module)
        exports = instance.exports(store)
        ctx.bind(_WasmtimeMemory(store, exports["memory"]))
        try:
            exports["_start"](store)
        except Exit as exc:
            return exc.code
    return 0


def _sync_adapter(func: Any) -> Any:
    """wasmtime cannot suspend: run an awaitable result in its own trio run."""

    async def wait(awaitable: Any) -> Any:
        return await awaitable

    def call(*args: int) -> Any:
        result = func(*args)
        if inspect.isawaitable(result):
            result = trio.run(wait, result)
        return result

    return call

