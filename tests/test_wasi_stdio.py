"""stdio entries, WasiConfig, and the small families: args, environ, clocks,
random, proc, sock."""

from __future__ import annotations

import io
import os
import pty

import pytest
import trio
import trio.testing

from .guests.harness import FakeGuest, load_wasi

wasi = load_wasi()
abi = wasi.abi
Errno = wasi.Errno
FT = wasi.Filetype
R = wasi.Rights


# -- stdio --------------------------------------------------------------------------


def test_default_stdio_is_a_null_device():
    with FakeGuest(wasi.WasiConfig()) as guest:
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"")
        assert guest.write(1, b"dropped") == (Errno.SUCCESS, 7)
        assert guest.write(2, b"dropped") == (Errno.SUCCESS, 7)


def test_bytes_stdin_and_captured_output():
    out, err = bytearray(), io.BytesIO()
    with FakeGuest(wasi.WasiConfig(stdin=b"line one\nline two", stdout=out, stderr=err)) as guest:
        assert guest.read_fd(0, 9) == (Errno.SUCCESS, b"line one\n")
        assert guest.read_fd(0, 100) == (Errno.SUCCESS, b"line two")
        assert guest.read_fd(0, 100) == (Errno.SUCCESS, b"")
        guest.write(1, b"out")
        guest.write(2, b"err")
    assert out == b"out" and err.getvalue() == b"err"


def test_one_config_many_contexts_each_read_stdin_from_the_start():
    out = bytearray()
    config = wasi.WasiConfig(stdin=b"same", stdout=out)
    for _ in range(2):
        with FakeGuest(config) as guest:
            _, data = guest.read_fd(0, 10)
            guest.write(1, data)
    assert out == b"samesame"


def test_stdio_directions_are_rights():
    with FakeGuest(wasi.WasiConfig(stdin=b"x", stdout=bytearray())) as guest:
        assert guest.write(0, b"x")[0] == Errno.NOTCAPABLE
        assert guest.read_fd(1, 1)[0] == Errno.NOTCAPABLE
        _, (kind, _, base, _) = guest.fdstat(0)
        assert kind == FT.UNKNOWN and base & R.FD_READ and not base & (R.FD_SEEK | R.FD_WRITE)
        pos = guest.alloc(8)
        assert guest.call("fd_seek", 0, 0, 0, pos) == Errno.SPIPE  # a stream: no position at all
        assert guest.call("fd_tell", 1, pos) == Errno.SPIPE


def test_callback_output():
    chunks = []
    with FakeGuest(wasi.WasiConfig(stdout=chunks.append)) as guest:
        assert guest.write(1, b"one") == (Errno.SUCCESS, 3)
        guest.write(1, b"two")
    assert chunks == [b"one", b"two"]


def test_async_callback_output_suspends():
    chunks = []

    async def sink(data):
        await trio.sleep(0)
        chunks.append(data)

    async def main():
        with FakeGuest(wasi.WasiConfig(stdout=sink)) as guest:
            ptr, n = guest.put(b"async")
            iovs, count = guest.iovecs([(ptr, n)])
            out = guest.alloc(4)
            result = guest.call("fd_write", 1, iovs, count, out)
            assert not isinstance(result, int)
            assert await result == Errno.SUCCESS and guest.u32(out) == 5

    trio.run(main)
    assert chunks == [b"async"]


@pytest.mark.trio
async def test_trio_streams():
    to_guest, guest_stdin = trio.testing.memory_stream_one_way_pair()
    guest_stdout, from_guest = trio.testing.memory_stream_one_way_pair()
    with FakeGuest(wasi.WasiConfig(stdin=guest_stdin, stdout=guest_stdout)) as guest:
        buf = guest.alloc(16)
        iovs, count = guest.iovecs([(buf, 16)])
        out = guest.alloc(4)
        pending = guest.call("fd_read", 0, iovs, count, out)
        assert not isinstance(pending, int)  # nothing there yet: the guest waits
        await to_guest.send_all(b"data")
        assert await pending == Errno.SUCCESS and guest.read(buf, guest.u32(out)) == b"data"
        ptr, n = guest.put(b"reply")
        iovs, count = guest.iovecs([(ptr, n)])
        result = guest.call("fd_write", 1, iovs, count, out)
        assert await result == Errno.SUCCESS
        assert await from_guest.receive_some(100) == b"reply"


def test_nonblocking_stdin_returns_again():
    _, receive = trio.testing.memory_stream_one_way_pair()
    with FakeGuest(wasi.WasiConfig(stdin=receive)) as guest:
        assert guest.call("fd_fdstat_set_flags", 0, int(abi.Fdflags.NONBLOCK)) == Errno.SUCCESS
        assert guest.read_fd(0, 10)[0] == Errno.AGAIN
        assert guest.fdstat(0)[1][1] == abi.Fdflags.NONBLOCK


def test_redirected_file_is_a_regular_file(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"from a file")
    with open(path, "rb") as stdin, open(tmp_path / "out.txt", "wb") as stdout:
        with FakeGuest(wasi.WasiConfig(stdin=stdin, stdout=stdout)) as guest:
            _, (kind, _, base, _) = guest.fdstat(0)
            assert kind == FT.REGULAR_FILE and base & R.FD_SEEK
            assert guest.fdstat(1)[1][0] == FT.REGULAR_FILE
            assert guest.read_fd(0, 4) == (Errno.SUCCESS, b"from")
            guest.write(1, b"written")
            errno, st = guest.filestat(0)
            assert errno == Errno.SUCCESS and st[2] == FT.REGULAR_FILE and st[4] == len(b"from a file")
    assert (tmp_path / "out.txt").read_bytes() == b"written"


def test_terminal_is_a_character_device():
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "wb", buffering=0, closefd=False) as tty:
            with FakeGuest(wasi.WasiConfig(stdout=tty)) as guest:
                _, (kind, _, base, _) = guest.fdstat(1)
                assert kind == FT.CHARACTER_DEVICE
                assert not base & (R.FD_SEEK | R.FD_TELL)  # what wasi-libc's isatty() checks
                assert guest.write(1, b"hi")[0] == Errno.SUCCESS
        assert os.read(leader, 100).replace(b"\r", b"") == b"hi"
    finally:
        os.close(leader)
        os.close(follower)


def test_empty_pipe_suspends_instead_of_blocking():
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end, "rb", buffering=0, closefd=False) as reader:
            with FakeGuest(wasi.WasiConfig(stdin=reader)) as guest:
                assert guest.fdstat(0)[1][0] == FT.UNKNOWN  # a pipe
                buf = guest.alloc(8)
                iovs, count = guest.iovecs([(buf, 8)])
                out = guest.alloc(4)
                pending = guest.call("fd_read", 0, iovs, count, out)
                assert not isinstance(pending, int)

                async def main():
                    os.write(write_end, b"late")
                    with trio.fail_after(5):
                        return await pending

                assert trio.run(main) == Errno.SUCCESS
                assert guest.read(buf, guest.u32(out)) == b"late"
                os.write(write_end, b"now")
                assert guest.read_fd(0, 8) == (Errno.SUCCESS, b"now")  # data there: no suspension
    finally:
        os.close(read_end)
        os.close(write_end)


def test_inherit_duplicates_host_stdio():
    with FakeGuest(wasi.WasiConfig(stdin="inherit", stdout="inherit", stderr="inherit")) as guest:
        for fd in range(3):
            assert guest.fdstat(fd)[0] == Errno.SUCCESS


def test_text_file_objects_use_their_buffer():
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding="utf-8")
    with FakeGuest(wasi.WasiConfig(stdout=text)) as guest:
        guest.write(1, "héllo".encode())
    assert raw.getvalue() == "héllo".encode()


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("stdin", 42, TypeError),
        ("stdout", b"bytes are for stdin", TypeError),
        ("stdin", "a string", ValueError),
        ("argv", "not-a-list", TypeError),
        ("argv", ["a\0b"], ValueError),
        ("env", {"A=B": "c"}, ValueError),
        ("env", {"A": "c\0"}, ValueError),
        ("listeners", [object()], TypeError),
        ("max_fds", 2, ValueError),
    ],
)
def test_bad_config_values_are_refused(field, value, error):
    config = wasi.WasiConfig(**{field: value})
    with pytest.raises(error):
        wasi.WasiContext(config)


# -- args and environ ---------------------------------------------------------------


def _strings(guest, sizes_fn, get_fn):
    count, size = guest.alloc(4), guest.alloc(4)
    assert guest.call(sizes_fn, count, size) == Errno.SUCCESS
    n, total = guest.u32(count), guest.u32(size)
    pointers, buf = guest.alloc(4 * n), guest.alloc(total)
    assert guest.call(get_fn, pointers, buf) == Errno.SUCCESS
    strings = []
    for i in range(n):
        ptr = guest.u32(pointers + 4 * i)
        end = guest.memory.data.index(b"\0", ptr)
        strings.append(bytes(guest.memory.data[ptr:end]))
    assert guest.read(buf, total).count(b"\0") == n
    return strings


def test_args():
    with FakeGuest(wasi.WasiConfig(argv=["prog", "ä b", b"\xff"])) as guest:
        assert _strings(guest, "args_sizes_get", "args_get") == [b"prog", "ä b".encode(), b"\xff"]
        assert guest.call("args_get", len(guest.memory.data) - 2, 1024) == Errno.FAULT


def test_environ_is_explicit(monkeypatch):
    monkeypatch.setenv("ASYNCWASM_HOST_ONLY", "1")
    with FakeGuest(wasi.WasiConfig(env={"A": "1", "B": "x=y"})) as guest:
        assert _strings(guest, "environ_sizes_get", "environ_get") == [b"A=1", b"B=x=y"]
    with FakeGuest(wasi.WasiConfig(env=[("A", "2")], inherit_env=True)) as guest:
        env = _strings(guest, "environ_sizes_get", "environ_get")
        assert b"ASYNCWASM_HOST_ONLY=1" in env and b"A=2" in env


# -- clocks, random, proc, sockets ------------------------------------------------------


def test_clocks():
    config = wasi.WasiConfig(monotonic_ns=lambda: 123, realtime_ns=lambda: 1_700_000_000_000_000_000)
    with FakeGuest(config) as guest:
        out = guest.alloc(8)
        assert guest.call("clock_time_get", 0, 0, out) == Errno.SUCCESS and guest.u64(out) == 1_700_000_000_000_000_000
        assert guest.call("clock_time_get", 1, 1, out) == Errno.SUCCESS and guest.u64(out) == 123
        assert guest.call("clock_time_get", 2, 0, out) == Errno.SUCCESS
        assert guest.call("clock_time_get", 4, 0, out) == Errno.INVAL
        for clock in range(4):
            assert guest.call("clock_res_get", clock, out) == Errno.SUCCESS and guest.u64(out) >= 1
        assert guest.call("clock_res_get", 9, out) == Errno.INVAL
    with FakeGuest(wasi.WasiConfig()) as guest:
        out = guest.alloc(8)
        guest.call("clock_time_get", 1, 0, out)
        first = guest.u64(out)
        guest.call("clock_time_get", 1, 0, out)
        assert guest.u64(out) >= first > 0


def test_random():
    with FakeGuest(wasi.WasiConfig(random_bytes=lambda n: bytes(range(n)))) as guest:
        buf = guest.alloc(5)
        assert guest.call("random_get", buf, 5) == Errno.SUCCESS and guest.read(buf, 5) == b"\0\1\2\3\4"
        assert guest.call("random_get", len(guest.memory.data) - 1, 5) == Errno.FAULT
    with FakeGuest(wasi.WasiConfig()) as guest:
        buf = guest.alloc(64)
        assert guest.call("random_get", buf, 64) == Errno.SUCCESS and guest.read(buf, 64) != bytes(64)
    with FakeGuest(wasi.WasiConfig(random_bytes=lambda n: b"short")) as guest:
        assert guest.call("random_get", guest.alloc(64), 64) == Errno.IO


def test_proc_exit_and_raise():
    from asyncwasm._errors import Exit

    with FakeGuest(wasi.WasiConfig()) as guest:
        with pytest.raises(Exit) as info:
            guest.call("proc_exit", 3)
        assert info.value.code == 3
        with pytest.raises(Exit) as info:
            guest.call("proc_exit", -1)  # exitcode is a u32
        assert info.value.code == 0xFFFFFFFF
        assert guest.call("proc_raise", int(abi.Signal.TERM)) == Errno.NOSYS
        assert guest.call("proc_raise", 31) == Errno.INVAL


@pytest.mark.parametrize(
    "name, args",
    [("sock_accept", (0, 0)), ("sock_recv", (0, 0, 0, 0, 0)), ("sock_send", (0, 0, 0, 0)), ("sock_shutdown", (3,))],
)
def test_socket_calls_on_non_sockets(tmp_path, name, args):
    with FakeGuest(wasi.WasiConfig(preopens=[(str(tmp_path), "/", False)])) as guest:
        for fd in (0, 1, 2, 3):
            assert guest.call(name, fd, *args) == Errno.NOTSOCK
        assert guest.call(name, 42, *args) == Errno.BADF
