"""asyncwasm.wasi.abi and .decl: values, layouts and signatures against the witx.

The expected values below were read from the preview1 witx
(WebAssembly/WASI legacy/preview1/witx/typenames.witx and
wasi_snapshot_preview1.witx), docs.md (offsets) and the import declarations
wasi-libc generates from them.
"""

from __future__ import annotations

import errno as host_errno
import struct

import pytest
import trio

from .guests.harness import FakeGuest, load_wasi

wasi = load_wasi()
abi = wasi.abi
decl = wasi.decl

WITX_ERRNOS = """success 2big acces addrinuse addrnotavail afnosupport again already badf badmsg busy
canceled child connaborted connrefused connreset deadlk destaddrreq dom dquot exist fault fbig
hostunreach idrm ilseq inprogress intr inval io isconn isdir loop mfile mlink msgsize multihop
nametoolong netdown netreset netunreach nfile nobufs nodev noent noexec nolck nolink nomem nomsg
noprotoopt nospc nosys notconn notdir notempty notrecoverable notsock notsup notty nxio overflow
ownerdead perm pipe proto protonosupport prototype range rofs spipe srch stale timedout txtbsy xdev
notcapable""".split()

WITX_RIGHTS = """fd_datasync fd_read fd_seek fd_fdstat_set_flags fd_sync fd_tell fd_write fd_advise
fd_allocate path_create_directory path_create_file path_link_source path_link_target path_open
fd_readdir path_readlink path_rename_source path_rename_target path_filestat_get
path_filestat_set_size path_filestat_set_times fd_filestat_get fd_filestat_set_size
fd_filestat_set_times path_symlink path_remove_directory path_unlink_file poll_fd_readwrite
sock_shutdown sock_accept""".split()

# (params, results) of every import, as wasi-libc declares them for wasm32.
WASI_LIBC_IMPORTS = {
    "args_get": ("ii", "i"), "args_sizes_get": ("ii", "i"), "environ_get": ("ii", "i"),
    "environ_sizes_get": ("ii", "i"), "clock_res_get": ("ii", "i"), "clock_time_get": ("iIi", "i"),
    "fd_advise": ("iIIi", "i"), "fd_allocate": ("iII", "i"), "fd_close": ("i", "i"), "fd_datasync": ("i", "i"),
    "fd_fdstat_get": ("ii", "i"), "fd_fdstat_set_flags": ("ii", "i"), "fd_fdstat_set_rights": ("iII", "i"),
    "fd_filestat_get": ("ii", "i"), "fd_filestat_set_size": ("iI", "i"), "fd_filestat_set_times": ("iIIi", "i"),
    "fd_pread": ("iiiIi", "i"), "fd_prestat_get": ("ii", "i"), "fd_prestat_dir_name": ("iii", "i"),
    "fd_pwrite": ("iiiIi", "i"), "fd_read": ("iiii", "i"), "fd_readdir": ("iiiIi", "i"), "fd_renumber": ("ii", "i"),
    "fd_seek": ("iIii", "i"), "fd_sync": ("i", "i"), "fd_tell": ("ii", "i"), "fd_write": ("iiii", "i"),
    "path_create_directory": ("iii", "i"), "path_filestat_get": ("iiiii", "i"),
    "path_filestat_set_times": ("iiiiIIi", "i"), "path_link": ("iiiiiii", "i"), "path_open": ("iiiiiIIii", "i"),
    "path_readlink": ("iiiiii", "i"), "path_remove_directory": ("iii", "i"), "path_rename": ("iiiiii", "i"),
    "path_symlink": ("iiiii", "i"), "path_unlink_file": ("iii", "i"), "poll_oneoff": ("iiii", "i"),
    "proc_exit": ("i", ""), "proc_raise": ("i", "i"), "sched_yield": ("", "i"), "random_get": ("ii", "i"),
    "sock_accept": ("iii", "i"), "sock_recv": ("iiiiii", "i"), "sock_send": ("iiiii", "i"),
    "sock_shutdown": ("ii", "i"),
}


def test_errno_values_follow_witx_order():
    assert len(abi.Errno) == len(WITX_ERRNOS) == 77
    for value, name in enumerate(WITX_ERRNOS):
        expected = "TOOBIG" if name == "2big" else name.upper()
        assert abi.Errno(value).name == expected


def test_rights_bits_follow_witx_order():
    assert [r.name.lower() for r in abi.Rights] == WITX_RIGHTS
    for bit, name in enumerate(WITX_RIGHTS):
        assert abi.Rights[name.upper()] == 1 << bit
    assert abi.RIGHTS_ALL == (1 << 30) - 1


@pytest.mark.parametrize(
    "enum, names",
    [
        ("Filetype", "unknown block_device character_device directory regular_file socket_dgram socket_stream symbolic_link"),
        ("Whence", "set cur end"),
        ("Advice", "normal sequential random willneed dontneed noreuse"),
        ("Clockid", "realtime monotonic process_cputime_id thread_cputime_id"),
        ("Eventtype", "clock fd_read fd_write"),
        ("Preopentype", "dir"),
    ],
)
def test_enums_follow_witx_order(enum, names):
    assert [m.name.lower() for m in getattr(abi, enum)] == names.split()


@pytest.mark.parametrize(
    "flags, names",
    [
        ("Fdflags", "append dsync nonblock rsync sync"),
        ("Oflags", "creat directory excl trunc"),
        ("Fstflags", "atim atim_now mtim mtim_now"),
        ("Lookupflags", "symlink_follow"),
        ("Riflags", "recv_peek recv_waitall"),
        ("Sdflags", "rd wr"),
    ],
)
def test_flag_bits_follow_witx_order(flags, names):
    members = list(getattr(abi, flags))
    assert [m.name.lower() for m in members] == names.split()
    assert [int(m) for m in members] == [1 << i for i in range(len(members))]


def test_signal_numbers():
    assert abi.Signal.NONE == 0 and abi.Signal.ABRT == 6 and abi.Signal.KILL == 9 and abi.Signal.SYS == 30
    assert len(abi.Signal) == 31


def _field_bytes(layout: struct.Struct, values: tuple) -> bytes:
    return layout.pack(*values)


def test_struct_sizes_match_witx():
    assert abi.IOVEC.size == 8
    assert abi.FDSTAT.size == 24
    assert abi.FILESTAT.size == 64
    assert abi.DIRENT.size == 24
    assert abi.PRESTAT.size == 8
    assert abi.EVENT.size == 32
    assert abi.SUBSCRIPTION_SIZE == 48
    assert abi.SUBSCRIPTION_PAYLOAD_OFFSET + abi.SUBSCRIPTION_CLOCK.size <= 48


def _le(value: int, width: int) -> bytes:
    return value.to_bytes(width, "little")


def test_fdstat_offsets():
    data = abi.FDSTAT.pack(4, 0x1234, 0x0102030405060708, 0x1112131415161718)
    assert data[0] == 4
    assert data[2:4] == _le(0x1234, 2)
    assert data[8:16] == _le(0x0102030405060708, 8)
    assert data[16:24] == _le(0x1112131415161718, 8)


def test_filestat_offsets():
    values = (0xD1, 0xA2, 7, 0xC3, 0xB4, 0xE5, 0xF6, 0x97)
    data = abi.FILESTAT.pack(*values)
    for (offset, width), value in zip([(0, 8), (8, 8), (16, 1), (24, 8), (32, 8), (40, 8), (48, 8), (56, 8)], values):
        assert data[offset : offset + width] == _le(value, width)


def test_dirent_prestat_iovec_offsets():
    data = abi.DIRENT.pack(0x11, 0x22, 0x33, 4)
    assert (data[0:8], data[8:16], data[16:20], data[20]) == (_le(0x11, 8), _le(0x22, 8), _le(0x33, 4), 4)
    assert abi.PRESTAT.pack(0, 9) == b"\0\0\0\0" + _le(9, 4)
    assert abi.IOVEC.pack(0x100, 0x20) == _le(0x100, 4) + _le(0x20, 4)


def test_event_offsets():
    data = abi.EVENT.pack(0xAABB, 28, 2, 0x1234, 1)
    assert data[0:8] == _le(0xAABB, 8)
    assert data[8:10] == _le(28, 2)
    assert data[10] == 2
    assert data[16:24] == _le(0x1234, 8)
    assert data[24:26] == _le(1, 2)


def test_subscription_clock_offsets():
    sub = bytearray(48)
    sub[0:8] = _le(7, 8)
    sub[8] = 0
    sub[16:20] = _le(1, 4)
    sub[24:32] = _le(5_000, 8)
    sub[32:40] = _le(10, 8)
    sub[40:42] = _le(1, 2)
    assert abi.SUBSCRIPTION_HEAD.unpack_from(sub, 0) == (7, 0)
    assert abi.SUBSCRIPTION_CLOCK.unpack_from(sub, 16) == (1, 5_000, 10, 1)


def test_errno_from_oserror():
    assert abi.errno_from_oserror(OSError(host_errno.ENOENT, "x")) == abi.Errno.NOENT
    assert abi.errno_from_oserror(OSError(host_errno.EWOULDBLOCK, "x")) == abi.Errno.AGAIN
    assert abi.errno_from_oserror(OSError(host_errno.E2BIG, "x")) == abi.Errno.TOOBIG
    assert abi.errno_from_oserror(OSError(host_errno.ENOTSUP, "x")) == abi.Errno.NOTSUP
    assert abi.errno_from_oserror(OSError(host_errno.ELOOP, "x")) == abi.Errno.LOOP
    assert abi.errno_from_oserror(OSError(0xBEEF, "x")) == abi.Errno.IO


# -- decl: functions as data ---------------------------------------------------------


def test_every_preview1_function_is_declared_with_the_wasi_libc_signature():
    letters = {0x7F: "i", 0x7E: "I"}
    assert set(wasi.FUNCTIONS) == set(WASI_LIBC_IMPORTS)
    for name, function in wasi.FUNCTIONS.items():
        params = "".join(letters[t] for t in function.functype.params)
        results = "".join(letters[t] for t in function.functype.results)
        assert (params, results) == WASI_LIBC_IMPORTS[name], name
        assert function.impl.__doc__, f"{name} has no docstring"


def test_imports_table_has_types_and_callables():
    with FakeGuest(wasi.WasiConfig()) as guest:
        imports = guest.ctx.imports()
    assert set(imports) == set(WASI_LIBC_IMPORTS)
    functype, func = imports["fd_write"]
    assert functype == wasi.FUNCTIONS["fd_write"].functype
    assert callable(func) and func.__name__ == "fd_write"


def test_declaration_must_match_signature():
    with pytest.raises(TypeError, match="declared parameters"):

        @decl.host_function(fd=decl.FD)
        def not_a_wasi_function(ctx, other):  # pragma: no cover - rejected at declaration
            return 0


def test_signed_arguments_become_unsigned():
    seen = {}
    with FakeGuest(wasi.WasiConfig(trace=lambda name, args, result: seen.update({name: (args, result)}))) as guest:
        # fd -1 (as the engine passes an i32) is fd 0xFFFFFFFF: not open.
        assert guest.call("fd_close", -1) == abi.Errno.BADF
        assert seen["fd_close"] == ({"fd": 0xFFFFFFFF}, abi.Errno.BADF)
        # a negative i64 size is a huge u64: beyond off_t -> INVAL, not a Python error
        assert guest.call("fd_filestat_set_size", 1, -1) in (abi.Errno.NOTCAPABLE, abi.Errno.INVAL)


def test_trace_sees_every_call_and_formats_it():
    calls = []
    config = wasi.WasiConfig(stdout=bytearray(), trace=lambda *call: calls.append(call))
    with FakeGuest(config) as guest:
        guest.write(1, b"hi")
        guest.call("fd_close", 99)
    names = [c[0] for c in calls]
    assert names == ["fd_write", "fd_close"]
    assert wasi.format_call(*calls[1]) == "fd_close(fd=99) -> BADF"
    assert wasi.format_call(*calls[0]).startswith("fd_write(fd=1, iovs=0x")
    assert wasi.format_call(*calls[0]).endswith("-> SUCCESS")


def test_trace_reports_exit_as_no_result():
    calls = []
    with FakeGuest(wasi.WasiConfig(trace=lambda *call: calls.append(call))) as guest:
        with pytest.raises(Exception) as info:
            guest.call("proc_exit", 3)
    assert type(info.value).__name__ == "Exit" and info.value.code == 3
    assert calls == [("proc_exit", {"rval": 3}, None)]


def test_awaitable_results_are_translated_to_errno():
    async def failing():
        raise abi.WasiError(abi.Errno.PIPE)

    async def main():
        return await decl._finish(failing(), None)

    assert trio.run(main) == abi.Errno.PIPE


def test_an_unbound_context_traps_clearly():
    ctx = wasi.WasiContext(wasi.WasiConfig())
    try:
        write = dict((n, f) for n, (_, f) in ctx.imports().items())["fd_write"]
        with pytest.raises(Exception, match="memory was bound"):
            write(1, 0, 0, 0)
    finally:
        ctx.close()
