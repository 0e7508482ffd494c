"""Moving bytes and strings in and out of a guest through its own allocator.

    >>> from asyncwasm.interop import GuestHeap, unpack_ptr_len
    >>> heap = GuestHeap(instance)                     # finds malloc/free, cabi_realloc, ...
    >>> with heap.write("héllo") as text:              # UTF-8, in guest memory; freed on exit
    ...     out = instance.exports["upper"](text.ptr, text.len)
    >>> heap.read_cstr(out)                            # a NUL-terminated result
    'HÉLLO'
    >>> heap.free(out)
    >>> packed = instance.exports["reverse"](text.ptr, text.len)     # (ptr << 32) | len
    >>> ptr, length = unpack_ptr_len(packed)
    >>> heap.read_str(ptr, length); heap.free(ptr, length)

In a trio program, where the instance is used through ``call_async`` (its
turn is then shared with other tasks), the calls into the guest have async
twins: ``await heap.write_async(data)``, ``await heap.free_async(ptr)``,
``await buffer.free_async()`` and ``async with buffer:``. Reads never call
the guest, so they have none. Inside a host function called by the guest,
the plain forms re-enter the instance, which is allowed.

**Finding the allocator.** By convention, the first of these that the
instance exports with a usable type:

========================  ==============================================
allocate                  free (told apart by its type)
========================  ==============================================
``cabi_realloc``          ``free``, ``deallocate`` or ``dealloc``, if any
``malloc``                ``free``
``allocate``              ``deallocate``, else ``free``
``alloc``                 ``dealloc``
========================  ==============================================

An allocator takes ``(size)`` or ``(size, align)`` and returns the address
(``cabi_realloc`` is the canonical ABI's ``(old_ptr, old_size, align,
new_size)``); a free takes ``(ptr)``, ``(ptr, size)`` or ``(ptr, size,
align)``, which the heap tells apart by its type and fills in. Or name them:
``GuestHeap(instance, alloc="my_alloc", free="my_free")`` (export names or
:class:`~asyncwasm.Func` objects). The canonical ABI has no free function:
with ``cabi_realloc`` alone, the guest owns what it receives, and
:meth:`GuestHeap.free` says so.

**Zero copy.** Reading copies (``bytes``). To work on guest data in place,
slice the memory's buffer: ``memory.view()`` is a ``memoryview`` of the
whole linear memory, whose address never moves, so a slice of it stays
valid (take a new view after ``memory.grow`` to see the added pages).
Columnar (Arrow-style) buffers go straight to numpy::

    values = numpy.frombuffer(memory.view(), dtype=numpy.float64, count=n, offset=ptr)
    values *= 2                                    # the guest sees the change

``GuestBuffer.view()`` is the same for a buffer the heap allocated.

**Errors** (:class:`HeapError`): no allocator found (the message lists what
was looked for), the allocator returned 0 (the guest is out of memory) or
an address outside its memory, a read outside the memory, a C string
without its NUL, a :class:`GuestBuffer` used after it was freed, a free the
guest cannot do. The guest's own failures (a trap in ``malloc``, running
out of fuel) propagate as they are.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Optional, Union, final

from ._engine import Func, Memory
from ._errors import WasmError
from ._types import I32, FuncType
from .instance import Instance

__all__ = ["GuestHeap", "GuestBuffer", "HeapError", "unpack_ptr_len"]

# (allocator, frees to look for with it), in the order looked for.
_CONVENTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cabi_realloc", ("free", "deallocate", "dealloc")),
    ("malloc", ("free",)),
    ("allocate", ("deallocate", "free")),
    ("alloc", ("dealloc",)),
)
_CABI_REALLOC = FuncType([I32, I32, I32, I32], [I32])
_ALLOC_TYPES = {FuncType([I32], [I32]): 1, FuncType([I32, I32], [I32]): 2}  # -> parameter count
_FREE_TYPES = {FuncType([I32], []): 1, FuncType([I32, I32], []): 2, FuncType([I32, I32, I32], []): 3}
_MASK32 = 0xFFFF_FFFF


class HeapError(WasmError):
    """A guest heap operation failed: no allocator, a bad pointer, a buffer
    used after free, a read outside guest memory."""


def unpack_ptr_len(value: int) -> tuple[int, int]:
    """Split a guest's packed ``(ptr << 32) | len`` result (an i64, which
    Python sees signed) into ``(ptr, len)``.

        >>> unpack_ptr_len((1024 << 32) | 5)
        (1024, 5)
        >>> unpack_ptr_len(-(1 << 63) | 3)             # ptr 0x80000000
        (2147483648, 3)
    """
    value &= 0xFFFF_FFFF_FFFF_FFFF
    return value >> 32, value & _MASK32


def _u32(value: int) -> int:
    return value & _MASK32  # i32 results come signed


@final
class GuestHeap:
    """A guest instance's allocator and memory, for bytes and strings.

    ``GuestHeap(instance, *, alloc=None, free=None)``: ``instance`` is an
    :class:`~asyncwasm.Instance` (``caller.instance`` in a host function);
    ``alloc``/``free`` name the functions when the instance does not follow
    a convention (see the module docstring). The memory is the instance's
    export ``"memory"``, else its memory 0.

        >>> heap = GuestHeap(instance)
        >>> buffer = heap.write(b"\\x00\\x01\\x02")
        >>> instance.exports["checksum"](buffer.ptr, buffer.len)
        >>> buffer.free()
    """

    __slots__ = ("_instance", "_memory", "_alloc", "_alloc_name", "_alloc_kind", "_free", "_free_name",
                 "_free_arity", "_live", "__weakref__")  # fmt: skip

    def __init__(
        self,
        instance: Instance,
        *,
        alloc: Union[str, Func, None] = None,
        free: Union[str, Func, None] = None,
    ) -> None:
        if not isinstance(instance, Instance):
            raise TypeError(f"GuestHeap() needs an asyncwasm.Instance, not {type(instance).__name__}")
        memory = instance._raw.default_memory
        if memory is None:
            raise HeapError("the instance has no memory: a guest heap needs one")
        self._instance = instance
        self._memory: Memory = memory
        self._live: dict[int, tuple[int, int]] = {}  # ptr -> (size, align) of buffers allocated here
        self._free: Optional[Func] = None
        self._free_name = ""
        self._free_arity = 0
        if alloc is None:
            if free is not None:
                raise TypeError("GuestHeap(free=...) needs alloc=... too")
            self._find_by_convention()
            return
        self._alloc_name = _name(alloc)
        self._alloc, self._alloc_kind = self._checked_alloc(self._func(alloc, "alloc"), alloc)
        if free is not None:
            func = self._func(free, "free")
            arity = _FREE_TYPES.get(func.type)
            if arity is None:
                raise TypeError(f"the free function {_name(free)} has type {func.type}: expected "
                                f"{_expected(_FREE_TYPES)}")  # fmt: skip
            self._free, self._free_name, self._free_arity = func, _name(free), arity

    # -- finding the functions -------------------------------------------------------

    def _func(self, given: Union[str, Func], role: str) -> Func:
        if isinstance(given, Func):
            return given
        if not isinstance(given, str):
            raise TypeError(f"GuestHeap({role}=...) takes an export name or a Func, not {type(given).__name__}")
        found = self._instance.exports.get(given)
        if not isinstance(found, Func):
            raise HeapError(f"the instance exports no function named {given!r} (GuestHeap({role}={given!r}))")
        return found

    @staticmethod
    def _checked_alloc(func: Func, given: Union[str, Func]) -> tuple[Func, str]:
        if func.type == _CABI_REALLOC:  # (old_ptr, old_size, align, new_size), whatever its name
            return func, "cabi_realloc"
        arity = _ALLOC_TYPES.get(func.type)
        if arity is None:
            raise TypeError(f"the allocator {_name(given)} has type {func.type}: expected "
                            f"{_expected(_ALLOC_TYPES)} or cabi_realloc's {_CABI_REALLOC}")  # fmt: skip
        return func, "sized" if arity == 1 else "aligned"

    def _find_by_convention(self) -> None:
        exports = self._instance.exports
        mismatched = []
        for alloc_name, free_names in _CONVENTIONS:
            alloc = exports.get(alloc_name)
            if not isinstance(alloc, Func):
                continue
            try:
                alloc, kind = self._checked_alloc(alloc, alloc_name)
            except TypeError:
                mismatched.append(f"{alloc_name} has type {alloc.type}")
                continue
            self._alloc, self._alloc_name, self._alloc_kind = alloc, alloc_name, kind
            for free_name in free_names:
                free = exports.get(free_name)
                if isinstance(free, Func) and free.type in _FREE_TYPES:
                    self._free, self._free_name, self._free_arity = free, free_name, _FREE_TYPES[free.type]
                    return
            return
        looked_for = ", ".join(f"{a}/{'|'.join(f)}" if a != "cabi_realloc" else a for a, f in _CONVENTIONS)
        detail = f" ({'; '.join(mismatched)}: not an allocator type)" if mismatched else ""
        functions = sorted(name for name, extern in exports.items() if isinstance(extern, Func))
        raise HeapError(
            f"no allocator found: looked for {looked_for} among the instance's exports{detail}; it exports "
            f"{', '.join(functions) or 'no functions'}. Name them: GuestHeap(instance, alloc=..., free=...)"
        )

    # -- the memory ----------------------------------------------------------------------

    @property
    def instance(self) -> Instance:
        """The instance whose heap this is."""
        return self._instance

    @property
    def memory(self) -> Memory:
        """The guest memory the heap reads and writes."""
        return self._memory

    @property
    def alloc_func(self) -> Func:
        """The allocator in use."""
        return self._alloc

    @property
    def free_func(self) -> Optional[Func]:
        """The free function in use, or None (see :meth:`free`)."""
        return self._free

    def _check_range(self, ptr: int, length: int, what: str) -> None:
        size = self._memory.data_len
        if ptr < 0 or length < 0 or ptr + length > size:
            raise HeapError(f"{what} of {length} bytes at {ptr:#x} is outside the guest memory ({size} bytes)")

    def read(self, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes of guest memory at ``ptr``."""
        self._check_range(ptr, length, "read")
        return self._memory.read(ptr, length)

    def read_str(self, ptr: int, length: int, errors: str = "strict") -> str:
        """``length`` bytes at ``ptr`` decoded as UTF-8 (``errors`` as for
        :meth:`bytes.decode`)."""
        return self.read(ptr, length).decode("utf-8", errors)

    def read_cstr(self, ptr: int, max: int = 1 << 16, errors: str = "strict") -> str:
        """The NUL-terminated UTF-8 string at ``ptr``, of at most ``max``
        bytes before its NUL (a guard against a guest that forgot it)."""
        size = self._memory.data_len
        if ptr < 0 or ptr >= size:
            raise HeapError(f"C string at {ptr:#x} is outside the guest memory ({size} bytes)")
        window = self._memory.view()[ptr : min(size, ptr + max + 1)]
        end = bytes(window).find(b"\0")
        if end < 0:
            raise HeapError(f"no NUL within {min(max, size - ptr)} bytes of the C string at {ptr:#x}")
        return bytes(window[:end]).decode("utf-8", errors)

    # -- allocating ------------------------------------------------------------------------

    def _alloc_args(self, size: int, align: int) -> tuple[int, ...]:
        if self._alloc_kind == "cabi_realloc":
            return (0, 0, align, size)
        return (size,) if self._alloc_kind == "sized" else (size, align)

    def _check_alloc(self, ptr: int, size: int, align: int) -> int:
        ptr = _u32(ptr)
        name = self._alloc_name
        if ptr == 0:
            raise HeapError(f"{name} returned 0 for {size} bytes: the guest is out of memory")
        if ptr + size > self._memory.data_len:
            raise HeapError(f"{name} returned {ptr:#x} for {size} bytes, outside the guest memory "
                            f"({self._memory.data_len} bytes)")  # fmt: skip
        if ptr % align:
            raise HeapError(f"{name} returned {ptr:#x}, not aligned to {align} bytes")
        self._live[ptr] = (size, align)
        return ptr

    @staticmethod
    def _check_request(size: int, align: int) -> None:
        if size < 0 or size > _MASK32:
            raise ValueError(f"cannot allocate {size} bytes in a 32-bit guest")
        if align < 1 or align & (align - 1):
            raise ValueError(f"align must be a power of two, not {align}")

    def alloc(self, size: int, align: int = 1) -> int:
        """Allocate ``size`` bytes (at least 1) in the guest; the address.
        Free it with :meth:`free`."""
        self._check_request(size, align)
        size = max(size, 1)
        return self._check_alloc(self._alloc(*self._alloc_args(size, align)), size, align)

    async def alloc_async(self, size: int, align: int = 1) -> int:
        """:meth:`alloc` through ``call_async`` (waits for the instance's turn)."""
        self._check_request(size, align)
        size = max(size, 1)
        return self._check_alloc(await self._alloc.call_async(*self._alloc_args(size, align)), size, align)

    def _encoded(self, data: Union[bytes, bytearray, memoryview, str]) -> bytes:
        if isinstance(data, str):
            return data.encode("utf-8")
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes(data)
        raise TypeError(f"GuestHeap.write() takes bytes or str, not {type(data).__name__}")

    def _filled(self, ptr: int, data: bytes) -> "GuestBuffer":
        self._memory.write(ptr, data)
        return GuestBuffer(self, ptr, len(data))

    def write(self, data: Union[bytes, bytearray, memoryview, str], align: int = 1) -> "GuestBuffer":
        """Copy ``data`` (bytes, or str as UTF-8) into a new guest allocation.

            >>> with heap.write("text") as buffer:
            ...     instance.exports["parse"](buffer.ptr, buffer.len)
        """
        encoded = self._encoded(data)
        return self._filled(self.alloc(len(encoded), align), encoded)

    async def write_async(self, data: Union[bytes, bytearray, memoryview, str], align: int = 1) -> "GuestBuffer":
        """:meth:`write` through ``call_async``.

            >>> async with await heap.write_async(b"...") as buffer:
            ...     await instance.exports["parse"].call_async(buffer.ptr, buffer.len)
        """
        encoded = self._encoded(data)
        return self._filled(await self.alloc_async(len(encoded), align), encoded)

    # -- freeing -----------------------------------------------------------------------------

    def _free_call(self, ptr: int, length: Optional[int]) -> tuple[Func, tuple[int, ...]]:
        """The free function and its arguments for the block at ``ptr``."""
        if self._free is None:
            raise HeapError(
                f"cannot free {ptr:#x}: the guest exports {self._alloc_name} but no free function (with the "
                "canonical ABI the guest frees what it receives); name one: GuestHeap(instance, free=...)"
            )
        size, align = self._live.get(ptr, (length, 1))
        if self._free_arity > 1 and size is None:
            raise HeapError(f"{self._free_name} needs the size of the block at {ptr:#x}: heap.free(ptr, len)")
        self._live.pop(ptr, None)
        if self._free_arity == 1:
            return self._free, (ptr,)
        assert size is not None
        return self._free, ((ptr, size) if self._free_arity == 2 else (ptr, size, align))

    def free(self, ptr: int, len: Optional[int] = None) -> None:
        """Free a block of the guest heap: one this heap allocated (its
        size is known), or one the guest returned, of ``len`` bytes (needed
        when the guest's free takes a size)."""
        func, args = self._free_call(ptr, len)
        func(*args)

    async def free_async(self, ptr: int, len: Optional[int] = None) -> None:
        """:meth:`free` through ``call_async``."""
        func, args = self._free_call(ptr, len)
        await func.call_async(*args)

    def __repr__(self) -> str:
        free = self._free_name if self._free is not None else "no free"
        return f"<GuestHeap {self._alloc_name}/{free}, {len(self._live)} live buffers>"


@final
class GuestBuffer:
    """Bytes the heap copied into guest memory: ``ptr`` and ``len`` to pass
    to the guest; a context manager (sync or async) that frees it on exit.

    After it is freed, ``ptr``, ``len``, :meth:`read` and :meth:`view`
    raise :class:`HeapError` (as does freeing it again)."""

    __slots__ = ("_heap", "_ptr", "_len")

    def __init__(self, heap: GuestHeap, ptr: int, length: int) -> None:
        self._heap = heap
        self._ptr: Optional[int] = ptr
        self._len = length

    def _alive(self) -> int:
        if self._ptr is None:
            raise HeapError(f"the guest buffer of {self._len} bytes was freed: it cannot be used any more")
        return self._ptr

    @property
    def ptr(self) -> int:
        """The guest address of the first byte."""
        return self._alive()

    @property
    def len(self) -> int:
        """The number of bytes written."""
        self._alive()
        return self._len

    @property
    def freed(self) -> bool:
        return self._ptr is None

    def read(self) -> bytes:
        """The buffer's current bytes (the guest may have changed them)."""
        return self._heap.read(self._alive(), self._len)

    def view(self) -> memoryview:
        """A zero-copy view of the buffer in guest memory
        (``numpy.frombuffer(buffer.view(), dtype=...)`` works on it)."""
        ptr = self._alive()
        return self._heap.memory.view()[ptr : ptr + self._len]

    def free(self) -> None:
        """Give the memory back to the guest's allocator."""
        func, args = self._heap._free_call(self._alive(), self._len)
        self._ptr = None  # freed even if the guest's free traps: never twice
        func(*args)

    async def free_async(self) -> None:
        """:meth:`free` through ``call_async``."""
        func, args = self._heap._free_call(self._alive(), self._len)
        self._ptr = None
        await func.call_async(*args)

    def __enter__(self) -> "GuestBuffer":
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:  # fmt: skip
        if self._ptr is not None:
            self.free()

    async def __aenter__(self) -> "GuestBuffer":
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:  # fmt: skip
        if self._ptr is not None:
            await self.free_async()

    def __repr__(self) -> str:
        where = "freed" if self._ptr is None else f"at {self._ptr:#x}"
        return f"<GuestBuffer {self._len} bytes {where}>"


def _name(func: Any) -> str:
    """A function's name for messages: the export name given, or its repr."""
    return func if isinstance(func, str) else repr(func)


def _expected(types: dict[FuncType, int]) -> str:
    return " or ".join(str(t) for t in types)
