"""Real WASI guests (C, built with zig's wasm32-wasi; sources and prebuilt
.wasm in tests/guests/) run against the asyncwasm WASI host.

Each test runs on two backends:
- ``asyncwasm``: the real engine through its public API (Module, Linker,
  lowlevel.Fiber). Skipped, with the reason, while the engine or
  ``asyncwasm.Linker`` is unavailable.
- ``wasmtime``: wasmtime-py as a reference engine driving the same host
  functions, so the host is checked against real wasi-libc guests even
  before our engine runs.
"""

from __future__ import annotations

import os
import pty
import select

import pytest

from .guests.harness import engine_unavailable_reason, guest_path, load_wasi, run_guest

wasi = load_wasi()
Errno = wasi.Errno


def _backends():
    reason = engine_unavailable_reason()
    asyncwasm_param = pytest.param("asyncwasm", marks=pytest.mark.skipif(reason is not None, reason=reason or ""))
    try:
        import wasmtime  # noqa: F401

        wasmtime_param = pytest.param("wasmtime")
    except ImportError:
        wasmtime_param = pytest.param("wasmtime", marks=pytest.mark.skip(reason="wasmtime-py not installed"))
    return [asyncwasm_param, wasmtime_param]


@pytest.fixture(params=_backends())
def backend(request):
    return request.param


def test_guests_are_prebuilt():
    for name in ("args_env", "stdio", "files", "clocks_random", "exit_code", "sleep_poll"):
        path = guest_path(name)
        assert path.exists(), f"{path} missing: run python tests/guests/build.py"
        assert path.read_bytes()[:4] == b"\0asm"


def test_args_and_env(backend):
    out = bytearray()
    config = wasi.WasiConfig(argv=["prog", "two words", "ünï"], env={"GREETING": "hello", "EMPTY": ""}, stdout=out)
    assert run_guest(backend, "args_env", config) == 0
    assert out.decode() == (
        "argc=3\nargv[0]=prog\nargv[1]=two words\nargv[2]=ünï\n"
        "env:GREETING=hello\nenv:EMPTY=\nGREETING=hello\n"
    )


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_codes(backend, code):
    out = bytearray()
    assert run_guest(backend, "exit_code", wasi.WasiConfig(argv=["exit", str(code)], stdout=out)) == code
    assert out == b"exiting\n"


def test_stdin_to_stdout(backend):
    out, err = bytearray(), bytearray()
    config = wasi.WasiConfig(argv=["stdio", "upper"], stdin=b"hello, wasm\n" * 100, stdout=out, stderr=err)
    assert run_guest(backend, "stdio", config) == 0
    assert out == b"HELLO, WASM\n" * 100
    assert err == b"read 1200 bytes\n"


def _read_lines(fd: int, count: int) -> bytes:
    """Read ``count`` lines from a pty (a line-buffered guest writes them one by one)."""
    data = b""
    while data.count(b"\n") < count:
        ready, _, _ = select.select([fd], [], [], 5)
        if not ready:
            break
        data += os.read(fd, 4096)
    return data.replace(b"\r", b"")


def test_stdio_kinds(backend, tmp_path):
    (tmp_path / "in.txt").write_bytes(b"x")
    out = bytearray()
    leader, follower = pty.openpty()
    try:
        with open(tmp_path / "in.txt", "rb") as stdin, os.fdopen(follower, "wb", buffering=0, closefd=False) as tty:
            config = wasi.WasiConfig(argv=["stdio", "kinds"], stdin=stdin, stdout=tty, stderr=out)
            assert run_guest(backend, "stdio", config) == 0
        printed = _read_lines(leader, 3)
    finally:
        os.close(leader)
        os.close(follower)
    # fd0 a regular file, fd1 a terminal, fd2 an in-memory capture (like a pipe)
    assert printed == b"fd0 err=0 type=4 tty=0\nfd1 err=0 type=2 tty=1\nfd2 err=0 type=0 tty=0\n"


FILES_TRANSCRIPT = """\
mkdir dir: ok
create f.txt: ok
write: ok
close: ok
open rdwr: ok
seek=6
read=world
tell=11
pread=hello
pwrite: ok
ftruncate: ok
fstat: ok
size=5 regular=1
content=Jello
close: ok
utimensat: ok
stat: ok
mtime=1234567890.000000500 atime=1000000000
rename: ok
link: ok
stat g: ok
nlink=2
symlink: ok
readlink=g.txt
open via symlink: ok
via symlink=Jello
lstat s: ok
s is link=1
list /sandbox/dir: . .. g.txt h.txt s
rmdir non-empty: errno=55
open dir for write: errno=31
open missing: errno=44
escape dotdot: errno=76
escape symlink: errno=76
escape abs symlink: errno=76
read only create: errno=76
read only read: ok
readme=read me
unlink s: ok
unlink h: ok
unlink g: ok
unlink dir: errno=31
rmdir: ok
list /sandbox: . .. abs outside
"""


def test_files(backend, tmp_path):
    box, outside, ro = tmp_path / "sandbox", tmp_path / "outside", tmp_path / "ro"
    for d in (box, outside, ro):
        d.mkdir()
    (outside / "secret.txt").write_bytes(b"TOPSECRET")
    (tmp_path / "secret.txt").write_bytes(b"ROOTSECRET")
    (ro / "readme.txt").write_bytes(b"read me")
    os.symlink("../outside", box / "outside")
    os.symlink(str(outside / "secret.txt"), box / "abs")
    out = bytearray()
    config = wasi.WasiConfig(stdout=out, stderr=out)
    config.preopen_dir(box, "/sandbox")
    config.preopen_dir(ro, "/ro", readonly=True)
    assert run_guest(backend, "files", config) == 0
    assert out.decode() == FILES_TRANSCRIPT
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"TOPSECRET"
    assert (tmp_path / "secret.txt").read_bytes() == b"ROOTSECRET"
    assert sorted(os.listdir(ro)) == ["readme.txt"]
    assert sorted(os.listdir(tmp_path)) == ["outside", "ro", "sandbox", "secret.txt"]


def test_clocks_and_random_are_configurable(backend):
    out = bytearray()
    config = wasi.WasiConfig(
        stdout=out,
        realtime_ns=lambda: 1_700_000_000_123_456_789,
        monotonic_ns=lambda: 5_000_000_001,
        random_bytes=lambda n: bytes(range(0xA0, 0xA0 + n)),
    )
    assert run_guest(backend, "clocks_random", config) == 0
    assert out.decode() == (
        "res_ok=1\nrealtime=1700000000.123456789\nmonotonic=5.000000001 nondecreasing=1\nrandom=a0a1a2a3a4a5a6a7\n"
    )


def test_real_clocks(backend):
    out = bytearray()
    assert run_guest(backend, "clocks_random", wasi.WasiConfig(stdout=out)) == 0
    lines = out.decode().splitlines()
    assert lines[0] == "res_ok=1" and lines[2].endswith("nondecreasing=1")
    assert int(lines[1].split("=")[1].split(".")[0]) > 1_600_000_000


def test_sleep_in_poll_oneoff(backend):
    out = bytearray()
    assert run_guest(backend, "sleep_poll", wasi.WasiConfig(argv=["p", "sleep", "30"], stdout=out)) == 0
    assert out == b"nanosleep=0 elapsed_ok=1\n"


def test_poll_stdin_with_data(backend):
    out = bytearray()
    config = wasi.WasiConfig(argv=["p", "stdin", "1000"], stdin=b"ready", stdout=out)
    assert run_guest(backend, "sleep_poll", config) == 0
    assert out == b"poll=1 in=1\ngot=ready\n"


def test_poll_stdin_times_out_on_a_silent_pipe(backend):
    out = bytearray()
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end, "rb", buffering=0, closefd=False) as stdin:
            config = wasi.WasiConfig(argv=["p", "stdin", "50"], stdin=stdin, stdout=out)
            assert run_guest(backend, "sleep_poll", config) == 0
    finally:
        os.close(read_end)
        os.close(write_end)
    assert out == b"poll=0 in=0\n"


def test_sync_call_of_a_sleeping_guest_is_a_clear_error():
    reason = engine_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    import asyncwasm

    module = asyncwasm.Module.from_file(str(guest_path("sleep_poll")))
    linker = asyncwasm.Linker()
    with wasi.WasiContext(wasi.WasiConfig(argv=["p", "sleep", "10"])) as ctx:
        for name, (functype, func) in ctx.imports().items():
            linker.define_func(wasi.WASI_MODULE, name, functype, func)
        instance = linker.instantiate(module)
        ctx.bind(instance.exports["memory"])
        with pytest.raises(RuntimeError, match="awaitable"):
            instance.exports["_start"]()


def test_trio_stream_stdio_suspends_only_the_guest_task():
    """stdin is a trio stream fed slowly by another task: the guest's reads
    suspend its fiber (the feeder keeps running), and stdout goes to a trio
    stream read by a third task."""
    reason = engine_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    import trio
    import trio.testing

    from .guests.harness import _run_asyncwasm

    to_guest, guest_stdin = trio.testing.memory_stream_one_way_pair()
    guest_stdout, from_guest = trio.testing.memory_stream_one_way_pair()
    received = bytearray()
    err = bytearray()

    async def feed():
        for chunk in (b"first ", b"second ", b"third"):
            await trio.sleep(0.01)
            await to_guest.send_all(chunk)
        await to_guest.aclose()

    async def drain():
        while data := await from_guest.receive_some(1024):
            received.extend(data)

    async def main():
        config = wasi.WasiConfig(argv=["stdio", "upper"], stdin=guest_stdin, stdout=guest_stdout, stderr=err)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            nursery.start_soon(drain)
            with trio.fail_after(10):
                code = await _run_asyncwasm(guest_path("stdio"), config)
            await guest_stdout.aclose()
        return code

    assert trio.run(main) == 0
    assert received == b"FIRST SECOND THIRD"
    assert err == b"read 18 bytes\n"
