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


def _callback_stdio(seen: dict[str, list]) -> dict:
    """Callable stdio (as handler mode passes) recording into ``seen``."""
    chunks = [b"first request's body", b""]
    return {"stdin": lambda n: chunks.pop(0) if chunks else b"",
            "stdout": seen.setdefault("out", []).append, "stderr": seen.setdefault("err", []).append}


def test_renew_reuses_stdio_entries_with_nothing_of_the_last_run():
    first: dict[str, list] = {}
    with FakeGuest(wasi.WasiConfig()) as guest:
        ctx = guest.ctx
        ctx.renew(**_callback_stdio(first))
        ctx.bind(guest.memory)
        entries = [ctx.fds.get(fd) for fd in range(3)]
        assert guest.read_fd(0, 5) == (Errno.SUCCESS, b"first")   # the rest waits as lookahead
        nonblock = int(wasi.abi.Fdflags.NONBLOCK | wasi.abi.Fdflags.APPEND)
        for fd in range(3):
            assert guest.call("fd_fdstat_set_flags", fd, nonblock) == Errno.SUCCESS
            assert guest.call("fd_fdstat_set_rights", fd, 0, 0) == Errno.SUCCESS
        ctx.close()
        assert first["out"] == [] and first["err"] == []

        second: list[bytes] = []
        errors: list[bytes] = []
        ctx.renew(stdin=lambda n: b"second", stdout=second.append, stderr=errors.append)
        ctx.bind(guest.memory)
        assert all(ctx.fds.get(fd) is entry for fd, entry in enumerate(entries))  # renewed in place
        for fd in range(3):
            _, (filetype, flags, base, inheriting) = guest.fdstat(fd)
            assert flags == 0 and base != 0 and inheriting == 0
        assert guest.read_fd(0, 100) == (Errno.SUCCESS, b"second")  # none of the first body's lookahead
        assert guest.write(1, b"out") == (Errno.SUCCESS, 3)
        assert guest.write(2, b"err") == (Errno.SUCCESS, 3)
        assert (second, errors) == ([b"out"], [b"err"])
        assert first["out"] == [] and first["err"] == []              # the old callbacks hear nothing


def test_renew_after_eof_and_bytes_stdin_starts_at_the_beginning():
    with FakeGuest(wasi.WasiConfig()) as guest:
        ctx = guest.ctx
        ctx.renew(stdin=b"one")
        ctx.bind(guest.memory)
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"one")
        ctx.renew(stdin=b"two!")
        ctx.bind(guest.memory)
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"two!")
        ctx.renew(stdin=lambda n: b"")                             # end of file at once
        ctx.bind(guest.memory)
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"")
        ctx.renew(stdin=lambda n: b"again")                        # the end of file is not remembered
        ctx.bind(guest.memory)
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"again")


def test_renew_after_the_guest_closed_or_moved_stdio_opens_new_entries():
    with FakeGuest(wasi.WasiConfig()) as guest:
        ctx = guest.ctx
        old_out: list[bytes] = []
        ctx.renew(stdin=b"x", stdout=old_out.append, stderr=old_out.append)
        ctx.bind(guest.memory)
        moved = ctx.fds.get(1)
        assert guest.call("fd_renumber", 1, 2) == Errno.SUCCESS     # stdout now at 2, 1 closed
        assert guest.call("fd_close", 0) == Errno.SUCCESS
        out: list[bytes] = []
        err: list[bytes] = []
        ctx.renew(stdin=b"y", stdout=out.append, stderr=err.append)
        ctx.bind(guest.memory)
        assert ctx.fds.get(2) is not moved                          # not reused at another fd
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"y")
        assert guest.write(1, b"1") == (Errno.SUCCESS, 1) and guest.write(2, b"2") == (Errno.SUCCESS, 1)
        assert (out, err, old_out) == ([b"1"], [b"2"], [])


def test_a_closed_context_keeps_no_stdio_callback_alive():
    import gc
    import weakref

    class Sink:
        def __call__(self, data: bytes) -> None:
            pass

    sink = Sink()
    gone = weakref.ref(sink)
    with FakeGuest(wasi.WasiConfig()) as guest:
        guest.ctx.renew(stdin=b"", stdout=sink, stderr=sink)
        guest.ctx.close()
        del sink
        gc.collect()
        assert gone() is None


def test_close_all_keeps_stdio_in_place_and_closes_the_rest_even_when_a_hook_fails():
    from asyncwasm.wasi.fdtable import Entry, FdTable
    from asyncwasm.wasi.stdio import NullEntry

    closed: list[str] = []

    class Other(Entry):
        def close(self) -> None:
            closed.append("other")

    table = FdTable()
    stdin, stdout, moved = NullEntry(0), NullEntry(0), NullEntry(0)
    for fd, entry in enumerate([stdin, stdout, moved, Other(0)]):
        table.put(fd, entry)

    def failing_hook() -> None:
        raise RuntimeError("hook failed")

    stdin.add_close_hook(failing_hook)
    with pytest.raises(RuntimeError, match="hook failed"):
        table.close_all([stdin, stdout, NullEntry(0)])   # fd 2 holds another entry: it closes
    assert closed == ["other"]
    assert len(table) == 2 and table.get(0) is stdin and table.get(1) is stdout
    assert "close_hooks" not in stdin.__dict__                # released: its hooks ran
    assert table.close_all([stdin, stdout]) == [stdin, stdout]
