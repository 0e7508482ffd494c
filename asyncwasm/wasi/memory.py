"""Bounds-checked access to the guest's linear memory.

Rule: every guest pointer is checked against the memory's current size
before it is read or written; an out-of-bounds range is ``Errno.FAULT``,
never an exception that escapes to the engine and never a partial write.

Strategy: keep one memoryview of the whole memory (``memory.view()``, which
stays valid across ``memory.grow`` because linear memory never moves,
DESIGN.md contract 6) and fetch a fresh one only when a range ends beyond the
cached view's length, i.e. after the guest grew its memory. Slices handed to
``os.readv``/``os.writev`` are zero-copy windows on guest memory.

Pointers arrive already converted to unsigned 32-bit ints (see
:mod:`asyncwasm.wasi.decl`), so ``ptr + length`` never wraps here.
"""

from __future__ import annotations

import struct
from typing import Any, Iterable

from .abi import IOV_MAX, IOVEC, U32, U64, Errno, WasiError


_IOVEC_UNPACK = IOVEC.unpack_from
_IOVEC_SIZE = IOVEC.size
#: count -> the Struct of a table of ``count`` iovecs (u32 pairs), made on first use.
_IOVEC_TABLES: dict[int, struct.Struct] = {}


def _byte_view(memory: Any) -> memoryview:
    view = memory.view()
    if not isinstance(view, memoryview):
        view = memoryview(view)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class GuestMemory:
    """Typed, bounds-checked reads and writes on a Wasm memory.

    ``memory`` is anything with a ``view()`` method returning a writable
    buffer over the whole memory: an ``asyncwasm.Memory`` or, in tests, a
    bytearray-backed fake.

        >>> mem = GuestMemory(instance_memory)
        >>> mem.store_u32(0x1000, 42)
        >>> mem.read(0x1000, 4)
        b'*\\x00\\x00\\x00'
    """

    __slots__ = ("_memory", "_view")

    def __init__(self, memory: Any) -> None:
        self._memory = memory
        self._view = _byte_view(memory)

    def _covering(self, end: int) -> memoryview:
        view = self._view
        if end > len(view):
            view = self._view = _byte_view(self._memory)
            if end > len(view):
                raise WasiError(Errno.FAULT)
        return view

    def check(self, ptr: int, length: int) -> None:
        """Raise ``FAULT`` unless ``[ptr, ptr + length)`` is inside memory."""
        self._covering(ptr + length)

    def view_to(self, end: int) -> memoryview:
        """A view of the whole memory, at least ``end`` bytes long (``FAULT``
        past the memory's size). It stays valid: memory never moves or
        shrinks, so a call that checked its output pointers this way can
        write through the view later without checking again."""
        view = self._view
        return view if end <= len(view) else self._covering(end)

    def slice(self, ptr: int, length: int) -> memoryview:
        """A writable window ``[ptr, ptr + length)`` on guest memory."""
        return self._covering(ptr + length)[ptr : ptr + length]

    def read(self, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``ptr``."""
        return bytes(self._covering(ptr + length)[ptr : ptr + length])

    def write(self, ptr: int, data: bytes) -> None:
        """Copy ``data`` to ``ptr`` (all or nothing)."""
        end = ptr + len(data)
        self._covering(end)[ptr:end] = data

    def pack(self, layout: struct.Struct, ptr: int, *values: int) -> None:
        """Write ``values`` laid out by ``layout`` at ``ptr``."""
        layout.pack_into(self._covering(ptr + layout.size), ptr, *values)

    def unpack(self, layout: struct.Struct, ptr: int) -> tuple:
        """Read one ``layout`` at ``ptr``."""
        return layout.unpack_from(self._covering(ptr + layout.size), ptr)

    def load_u32(self, ptr: int) -> int:
        return U32.unpack_from(self._covering(ptr + 4), ptr)[0]

    def store_u32(self, ptr: int, value: int) -> None:
        U32.pack_into(self._covering(ptr + 4), ptr, value)

    def store_u64(self, ptr: int, value: int) -> None:
        U64.pack_into(self._covering(ptr + 8), ptr, value)

    def iovecs(self, ptr: int, count: int) -> list[memoryview]:
        """The guest buffers named by ``count`` iovecs at ``ptr``.

        Each ``{buf u32, buf_len u32}`` is bounds-checked; empty ones are
        dropped. More than :data:`IOV_MAX` iovecs is ``INVAL`` (as
        ``readv``/``writev``)."""
        # Bounds are checked against the cached view inline (_covering only
        # when a range ends beyond it): this runs on every read and write.
        view = self._view
        if count == 1:  # the common case: no table copy, no loop
            end = ptr + _IOVEC_SIZE
            if end > len(view):
                view = self._covering(end)
            buf, buf_len = _IOVEC_UNPACK(view, ptr)
            if not buf_len:
                return []
            end = buf + buf_len
            if end > len(view):
                view = self._covering(end)
            return [view[buf:end]]
        if count > IOV_MAX:
            raise WasiError(Errno.INVAL)
        end = ptr + count * _IOVEC_SIZE
        if end > len(view):
            view = self._covering(end)
        table = _IOVEC_TABLES.get(count)
        if table is None:  # at most IOV_MAX of them, each a few hundred bytes
            table = _IOVEC_TABLES[count] = struct.Struct(f"<{2 * count}I")
        words = table.unpack_from(view, ptr)
        buffers = []
        for i in range(0, 2 * count, 2):
            buf_len = words[i + 1]
            if buf_len:
                buf = words[i]
                end = buf + buf_len
                if end > len(view):
                    view = self._covering(end)
                buffers.append(view[buf:end])
        return buffers

    def store_strings(self, pointers_ptr: int, buffer_ptr: int, items: Iterable[bytes]) -> None:
        """Write NUL-terminated ``items`` back to back at ``buffer_ptr`` and
        their addresses as a u32 array at ``pointers_ptr`` (``args_get``,
        ``environ_get``)."""
        offset = buffer_ptr
        index = pointers_ptr
        for item in items:
            self.store_u32(index, offset)
            self.write(offset, item + b"\0")
            offset += len(item) + 1
            index += 4
