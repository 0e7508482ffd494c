"""What handler mode needs from WASI: a callable stdin (bytes now, or an
awaitable of them) and WasiContext.renew (one context, fresh state per
instance, nothing left over)."""

from __future__ import annotations

import pytest
import trio

from asyncwasm import Trap

from .guests.harness import FakeGuest, load_wasi

wasi = load_wasi()
Errno = wasi.Errno


def test_callable_stdin_gives_bytes_then_end_of_file():
    chunks = [b"hello ", b"world", b""]
    asked: list[int] = []

    def source(n: int) -> bytes:
        asked.append(n)
        return chunks.pop(0)

    with FakeGuest(wasi.WasiConfig(stdin=source)) as guest:
        assert guest.read_fd(0, 3) == (Errno.SUCCESS, b"hel")   # the rest stays as lookahead
        assert guest.read_fd(0, 100) == (Errno.SUCCESS, b"lo ")
        assert guest.read_fd(0, 100) == (Errno.SUCCESS, b"world")
        assert guest.read_fd(0, 100) == (Errno.SUCCESS, b"")
        assert guest.read_fd(0, 100) == (Errno.SUCCESS, b"")     # end of file stays
    assert asked == [3, 100, 100]


@pytest.mark.trio
async def test_callable_stdin_may_make_the_guest_wait():
    arrived = trio.Event()

    async def later() -> bytes:
        await arrived.wait()
        return b"late data"

    with FakeGuest(wasi.WasiConfig(stdin=lambda n: later())) as guest:
        buf = guest.alloc(16)
        iovs, count = guest.iovecs([(buf, 16)])
        out = guest.alloc(4)
        pending = guest.call("fd_read", 0, iovs, count, out)
        assert not isinstance(pending, int)
        arrived.set()
        assert await pending == Errno.SUCCESS and guest.read(buf, guest.u32(out)) == b"late data"


def test_nonblocking_callable_stdin_says_again_without_leaking_the_wait():
    made: list[object] = []

    def source(n: int) -> object:
        coroutine = trio.sleep(1)
        made.append(coroutine)
        return coroutine

    with FakeGuest(wasi.WasiConfig(stdin=source)) as guest:
        guest.call("fd_fdstat_set_flags", 0, int(wasi.abi.Fdflags.NONBLOCK))
        assert guest.read_fd(0, 10)[0] == Errno.AGAIN
    assert made and made[0].cr_frame is None  # closed: no "never awaited" warning


def test_renew_starts_over_with_nothing_left(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    config = wasi.WasiConfig(env={"A": "1"}, preopens=[(str(tmp_path), "/data", False)], stdout=bytearray())
    with FakeGuest(config) as guest:
        errno, fd = guest.open(b"f.txt")
        assert errno == Errno.SUCCESS and fd == 4
        out = bytearray()
        guest.ctx.renew(env=[b"REQUEST_METHOD=GET"], stdin=b"body", stdout=out)
        guest.ctx.bind(guest.memory)
        assert guest.fdstat(fd)[0] == Errno.BADF                 # the opened file is gone
        assert guest.fdstat(3)[0] == Errno.SUCCESS               # the preopen is back, fresh
        assert guest.ctx.env == [b"REQUEST_METHOD=GET"]
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"body")
        guest.write(1, b"to the new stdout")
        assert out == b"to the new stdout"
        guest.ctx.renew()
        assert guest.ctx.env == [b"A=1"]                         # default: the config's
        with pytest.raises(Trap, match="memory"):
            guest.write(1, b"no memory bound yet")
