"""asyncwasm.interop: GuestHeap on guests built by real toolchains (C with
zig cc and malloc/free, Zig with allocate and a sized free and packed
results, Rust with cabi_realloc and Layout-style alloc/dealloc), explicit
allocators, the async twins, zero-copy views with numpy, and the errors."""

from __future__ import annotations

import pytest
import trio

import asyncwasm
from asyncwasm import I32, Caller, FuncType, Linker, Module, WasiConfig
from asyncwasm.interop import GuestBuffer, GuestHeap, HeapError, unpack_ptr_len

from .guests.harness import guest_path
from .wat import wat


def _func(instance: asyncwasm.Instance, name: str) -> asyncwasm.Func:
    func = instance.exports[name]
    assert isinstance(func, asyncwasm.Func)
    return func


def _c_guest(limits: asyncwasm.Limits | None = None) -> asyncwasm.Instance:
    """heap_malloc.c: a WASI reactor built by zig cc, exporting malloc/free."""
    instance = Linker().instantiate(Module.from_file(guest_path("heap_malloc")), limits=limits)
    _func(instance, "_initialize")()
    return instance


def _zig_guest() -> asyncwasm.Instance:
    """zig/zheap.zig, a reactor: allocate(size), free(ptr, size), reverse_words -> (ptr << 32) | len."""
    module = Module.from_file(guest_path("zig/zheap"))
    assert module.kind == "reactor"
    instance = Linker().instantiate(module)
    _func(instance, "_initialize")()
    return instance


def _rust_guest() -> asyncwasm.Instance:
    """rust/rheap.rs: cabi_realloc, alloc(size, align), dealloc(ptr, size, align)."""
    linker = Linker()
    linker.define_wasi(WasiConfig())
    instance = linker.instantiate(Module.from_file(guest_path("rust/rheap")))
    if "_initialize" in instance.exports:
        _func(instance, "_initialize")()
    return instance


# -- C (zig cc, wasi-libc's malloc/free) ----------------------------------------------


def test_c_guest_strings_in_and_out_through_malloc_and_free() -> None:
    instance = _c_guest()
    heap = GuestHeap(instance)
    assert heap.alloc_func is instance.exports["malloc"] and heap.free_func is instance.exports["free"]
    with heap.write("héllo, wörld") as text:
        assert text.len == len("héllo, wörld".encode())
        out = _func(instance, "upper")(text.ptr, text.len)
        assert heap.read_cstr(out) == "HéLLO, WöRLD"  # ASCII upper-cased, the rest intact
        heap.free(out)
    assert text.freed
    with heap.write(b"ada\0") as name:
        greeting = _func(instance, "greet")(name.ptr)
        assert heap.read_cstr(greeting, 64) == "hello, ada!"
        heap.free(greeting)


def test_c_guest_bytes_round_trip_and_checksum() -> None:
    instance = _c_guest()
    heap = GuestHeap(instance)
    data = bytes(range(256)) * 40
    with heap.write(data) as buffer:
        assert buffer.read() == data == heap.read(buffer.ptr, buffer.len)
        expected = 2166136261
        for byte in data:
            expected = ((expected ^ byte) * 16777619) & 0xFFFFFFFF
        assert _func(instance, "fnv1a")(buffer.ptr, buffer.len) & 0xFFFFFFFF == expected


def test_freeing_really_returns_memory_to_the_guest() -> None:
    instance = _c_guest()
    heap = GuestHeap(instance)
    memory = heap.memory
    for _ in range(3):  # warm up the allocator
        heap.write(b"x" * 100_000).free()
    pages = memory.size
    for _ in range(200):  # 20 MB written and freed: no growth
        with heap.write(b"x" * 100_000):
            pass
    assert memory.size == pages


def test_zero_copy_columns_with_numpy() -> None:
    numpy = pytest.importorskip("numpy")
    instance = _c_guest()
    heap = GuestHeap(instance)
    n = 1000
    ptr = _func(instance, "column")(n)
    values = numpy.frombuffer(heap.memory.view(), dtype=numpy.float64, count=n, offset=ptr)
    assert values[10] == 5.0 and values.sum() == sum(i * 0.5 for i in range(n))
    values[:] *= 2  # in place: the guest sees it
    assert _func(instance, "sum")(ptr, n) == sum(float(i) for i in range(n))
    heap.free(ptr)
    with heap.write(numpy.arange(8, dtype=numpy.float64).tobytes(), align=8) as buffer:
        column = numpy.frombuffer(buffer.view(), dtype=numpy.float64)
        column += 1
        assert _func(instance, "sum")(buffer.ptr, 8) == 36.0
        assert buffer.ptr % 8 == 0


def test_memoryview_slices_are_live_and_stay_valid_across_growth() -> None:
    instance = _c_guest()
    heap = GuestHeap(instance)
    buffer = heap.write(b"abcdef")
    view = buffer.view()
    heap.memory.grow(1)  # the address never moves: the old slice is still the buffer
    view[0:1] = b"X"
    assert heap.read(buffer.ptr, 6) == b"Xbcdef" and bytes(view) == b"Xbcdef"
    buffer.free()


# -- Zig (allocate + sized free, packed results) -----------------------------------------


def test_zig_guest_sized_free_and_packed_result() -> None:
    instance = _zig_guest()
    heap = GuestHeap(instance)
    assert heap.alloc_func is instance.exports["allocate"] and heap.free_func is instance.exports["free"]
    live = _func(instance, "live")
    with heap.write("one two three") as text:
        assert live() == 13
        ptr, length = unpack_ptr_len(_func(instance, "reverse_words")(text.ptr, text.len))
        assert heap.read_str(ptr, length) == "three two one"
        with pytest.raises(HeapError, match="needs the size of the block"):
            heap.free(ptr)  # the guest's free takes a size, which the heap cannot know here
        heap.free(ptr, length)
    assert live() == 0  # both freed with the right sizes


def test_unpack_ptr_len_takes_the_i64_as_python_sees_it() -> None:
    assert unpack_ptr_len((1024 << 32) | 5) == (1024, 5)
    assert unpack_ptr_len(-(1 << 63) | 3) == (0x8000_0000, 3)
    assert unpack_ptr_len(-1) == (0xFFFF_FFFF, 0xFFFF_FFFF)


# -- Rust (cabi_realloc; Layout-style alloc/dealloc) ----------------------------------


def test_rust_guest_through_cabi_realloc_and_its_dealloc() -> None:
    instance = _rust_guest()
    heap = GuestHeap(instance)
    assert heap.alloc_func is instance.exports["cabi_realloc"] and heap.free_func is instance.exports["dealloc"]
    live = _func(instance, "live")
    base = live()
    with heap.write("añb→c") as text:
        assert _func(instance, "count_chars")(text.ptr, text.len) == 5
        ptr, length = unpack_ptr_len(_func(instance, "reverse")(text.ptr, text.len))
        assert heap.read_str(ptr, length) == "c→bña"
        heap.free(ptr, length)
    assert live() == base
    with heap.write(b"\xff\xfe") as bad:
        assert _func(instance, "count_chars")(bad.ptr, bad.len) == -1


def test_rust_guest_with_explicit_aligned_alloc_and_dealloc() -> None:
    instance = _rust_guest()
    heap = GuestHeap(instance, alloc="alloc", free="dealloc")
    live = _func(instance, "live")
    base = live()
    buffers = [heap.write(bytes(size), align=align) for size, align in ((3, 1), (16, 8), (40, 16))]
    assert [b.ptr % a for b, a in zip(buffers, (1, 8, 16))] == [0, 0, 0]
    assert live() - base == 3 + 16 + 40
    for buffer in buffers:
        buffer.free()
    assert live() == base


# -- a reactor written in WAT: the alloc/dealloc convention, errors ----------------------

BUMP = """
(module
  (memory (export "memory") 1 2)
  (global $next (mut i32) (i32.const 1024))
  (global $freed (export "freed") (mut i32) (i32.const 0))
  (func (export "{alloc}") (param $n i32) (result i32)
    (local $p i32)
    (if (i32.gt_u (i32.add (global.get $next) (local.get $n)) (i32.const {limit})) (then (return (i32.const {fail}))))
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  (func (export "{free}") (param i32 i32) (global.set $freed (i32.add (global.get $freed) (local.get 1))))
  (func (export "noop") (param i32)))
"""


def _bump(alloc: str = "alloc", free: str = "dealloc", limit: int = 65536, fail: int = 0) -> asyncwasm.Instance:
    return Linker().instantiate(Module(wat(BUMP.format(alloc=alloc, free=free, limit=limit, fail=fail))))


def test_alloc_dealloc_convention_with_a_sized_free() -> None:
    instance = _bump()
    heap = GuestHeap(instance)
    freed = instance.exports["freed"]
    assert isinstance(freed, asyncwasm.Global)
    heap.write(b"12345").free()
    heap.write(b"").free()  # an empty write still gets a real block (1 byte)
    assert freed.value == 6


def test_no_allocator_found_says_what_was_looked_for() -> None:
    instance = Linker().instantiate(Module(wat('(module (memory (export "memory") 1) (func (export "f")))')))
    with pytest.raises(HeapError) as caught:
        GuestHeap(instance)
    message = str(caught.value)
    for name in ("cabi_realloc", "malloc/free", "allocate/deallocate|free", "alloc/dealloc", "it exports f",
                 "GuestHeap(instance, alloc=..., free=...)"):  # fmt: skip
        assert name in message, message


def test_an_export_with_an_allocator_name_but_another_type_is_named() -> None:
    instance = Linker().instantiate(Module(wat('(module (memory (export "memory") 1) (func (export "malloc")))')))
    with pytest.raises(HeapError, match=r"malloc has type func \[\] -> \[\]: not an allocator type"):
        GuestHeap(instance)


def test_no_memory_is_a_clear_error() -> None:
    instance = Linker().instantiate(Module(wat('(module (func (export "malloc") (param i32) (result i32) i32.const 0))')))
    with pytest.raises(HeapError, match="has no memory"):
        GuestHeap(instance)


def test_allocator_returning_0_or_out_of_bounds() -> None:
    full = GuestHeap(_bump(limit=1100))
    full.write(b"x" * 50)
    with pytest.raises(HeapError, match=r"alloc returned 0 for 100 bytes: the guest is out of memory"):
        full.write(b"x" * 100)
    liar = GuestHeap(_bump(limit=0, fail=70000))  # "allocates" past the end of its memory
    with pytest.raises(HeapError, match=r"alloc returned 0x11170 for 4 bytes, outside the guest memory \(65536 bytes\)"):
        liar.write(b"abcd")


def test_a_buffer_used_after_free_is_an_error() -> None:
    heap = GuestHeap(_bump())
    buffer = heap.write(b"data")
    buffer.free()
    for use in (lambda: buffer.ptr, lambda: buffer.len, buffer.read, buffer.view, buffer.free):
        with pytest.raises(HeapError, match="was freed: it cannot be used any more"):
            use()
    assert "freed" in repr(buffer)


def test_reads_outside_memory_and_unterminated_c_strings() -> None:
    heap = GuestHeap(_bump())
    with pytest.raises(HeapError, match=r"read of 16 bytes at 0xfff8 is outside the guest memory \(65536 bytes\)"):
        heap.read(65528, 16)
    heap.memory.write(65530, b"abcdef")  # no NUL before the end
    with pytest.raises(HeapError, match="no NUL within 6 bytes"):
        heap.read_cstr(65530)
    heap.memory.write(100, b"x" * 20 + b"\0")
    with pytest.raises(HeapError, match="no NUL within 10 bytes"):
        heap.read_cstr(100, 10)
    assert heap.read_cstr(100, 20) == "x" * 20
    with pytest.raises(HeapError, match="outside the guest memory"):
        heap.read_cstr(70000)


def test_explicit_functions_are_checked() -> None:
    instance = _bump(alloc="get_block", free="put_block")
    heap = GuestHeap(instance, alloc="get_block", free=instance.exports["put_block"])  # a name and a Func
    heap.write(b"abc").free()
    with pytest.raises(HeapError, match="no function named 'nope'"):
        GuestHeap(instance, alloc="nope")
    with pytest.raises(HeapError, match="no function named 'memory'"):
        GuestHeap(instance, alloc="get_block", free="memory")  # a memory, not a function
    with pytest.raises(TypeError, match=r"the free function get_block has type func \[i32\] -> \[i32\]"):
        GuestHeap(instance, alloc="get_block", free="get_block")
    with pytest.raises(TypeError, match="needs alloc=... too"):
        GuestHeap(instance, free="put_block")
    with pytest.raises(TypeError, match=r"the allocator noop has type func \[i32\] -> \[\]"):
        GuestHeap(instance, alloc="noop")


def test_an_explicit_allocator_with_cabi_reallocs_type_is_called_like_it() -> None:
    instance = Linker().instantiate(Module(wat("""
    (module (memory (export "memory") 1)
      (global $last (export "last") (mut i32) (i32.const 0))
      (func (export "grow_block") (param i32 i32 i32 i32) (result i32)
        (global.set $last (local.get 3)) i32.const 64))
    """)))
    heap = GuestHeap(instance, alloc="grow_block")
    heap.write(b"12345")
    last = instance.exports["last"]
    assert isinstance(last, asyncwasm.Global) and last.value == 5  # new_size, the fourth argument


def test_cabi_realloc_alone_cannot_free_and_says_why() -> None:
    instance = Linker().instantiate(Module(wat("""
    (module (memory (export "memory") 1)
      (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 64))
    """)))
    heap = GuestHeap(instance)
    buffer = heap.write(b"hi")
    assert heap.free_func is None
    with pytest.raises(HeapError, match="exports cabi_realloc but no free function .with the canonical ABI"):
        buffer.free()
    assert not buffer.freed  # still usable: nothing was freed


# -- from a host function (Caller) and through call_async --------------------------------


FETCHER = """
    (module
      (import "env" "fetch" (func $fetch (param i32) (result i64)))
      (memory (export "memory") 1)
      (global $next (mut i32) (i32.const 1024))
      (func (export "malloc") (param $n i32) (result i32) (local $p i32)
        (local.set $p (global.get $next))
        (global.set $next (i32.add (global.get $next) (local.get $n))) (local.get $p))
      (func (export "free") (param i32))
      (func (export "run") (param i32) (result i64) (call $fetch (local.get 0))))
"""


async def test_an_async_host_function_writes_into_its_caller_with_write_async() -> None:
    async def fetch(caller: Caller, key: int) -> int:
        await trio.sleep(0)
        buffer = await GuestHeap(caller.instance).write_async(f"async {key}")
        return (buffer.ptr << 32) | buffer.len

    linker = Linker()
    linker.define_func("env", "fetch", FuncType([I32], [asyncwasm.I64]), fetch, access_caller=True)
    module = Module(wat(FETCHER))
    instances = [linker.instantiate(module) for _ in range(3)]
    got = {}

    async def run(number: int) -> None:
        packed = await _func(instances[number], "run").call_async(number)
        got[number] = GuestHeap(instances[number]).read_str(*unpack_ptr_len(packed))

    async with trio.open_nursery() as nursery:
        for number in range(3):
            nursery.start_soon(run, number)
    assert got == {0: "async 0", 1: "async 1", 2: "async 2"}


def test_a_host_function_writes_into_its_caller_through_the_heap() -> None:
    """The guest asks the host for a string: the host allocates it in the
    caller's heap (re-entering the instance) and returns (ptr << 32) | len."""
    module = Module(wat(FETCHER))

    def fetch(caller: Caller, key: int) -> int:
        heap = GuestHeap(caller.instance)
        buffer = heap.write(f"value of {key}")
        return (buffer.ptr << 32) | buffer.len

    linker = Linker()
    linker.define_func("env", "fetch", FuncType([I32], [asyncwasm.I64]), fetch, access_caller=True)
    for instance in (linker.instantiate(module), linker.instantiate(module)):
        heap = GuestHeap(instance)
        assert heap.read_str(*unpack_ptr_len(_func(instance, "run")(7))) == "value of 7"


async def test_async_twins_take_the_instance_turn() -> None:
    instance = _zig_guest()
    heap = GuestHeap(instance)
    live = _func(instance, "live")
    reverse = _func(instance, "reverse_words")

    async def worker(number: int) -> None:
        for round_ in range(5):
            async with await heap.write_async(f"w{number} r{round_} end") as text:
                packed = await reverse.call_async(text.ptr, text.len)
                ptr, length = unpack_ptr_len(packed)
                assert heap.read_str(ptr, length) == f"end r{round_} w{number}"
                await heap.free_async(ptr, length)
                await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        for number in range(4):
            nursery.start_soon(worker, number)
    assert live() == 0
    buffer: GuestBuffer = await heap.write_async(b"xyz")
    await buffer.free_async()
    ptr = await heap.alloc_async(10)
    await heap.free_async(ptr)
    assert live() == 0


def test_write_takes_bytes_or_str_only() -> None:
    heap = GuestHeap(_bump())
    with pytest.raises(TypeError, match="takes bytes or str, not int"):
        heap.write(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="power of two"):
        heap.write(b"x", align=3)
    with pytest.raises(TypeError, match="needs an asyncwasm.Instance"):
        GuestHeap(object())  # type: ignore[arg-type]
